"""The Spark-free probe: a fresh interpreter where pyspark, py4j, mlflow.spark and the package's
Spark-side modules cannot be imported, recording every attempt the package's own code makes.

`pyspark in sys.modules` cannot be the test: MLflow itself imports pyspark whenever it is installed
(mlflow/types/schema.py line 32 in 3.15, mlflow/models/utils.py line 52 in 2.18, each inside a
`try: ... except ImportError`), so the probe blocks the imports instead.

One process probes many modules (tests/forked.py): it blocks the imports, imports MLflow (which the
package's own code never is, so the requests recorded are the same), then forks a child for each
module, which imports it from scratch with no module of the package loaded.
"""

from forked import FreshRuns

from support import REPO, package_module_files

PACKAGE = REPO / "synapse_ml_track"
# Only the Spark side may import pyspark, and the training job, which runs it (train_job.py, above
# the Spark side and the tracking layer). The rest of the package, the tracking layer
# (synapse_ml_track/tracking) and the deployment (synapse_ml_track/deploy) first, imports without it.
SPARK_SIDE = "synapse_ml_track.spark"
TRAIN_JOB = "synapse_ml_track.train_job"
ALWAYS_BLOCKED = ("pyspark", "py4j", "mlflow.spark")
# Imported before the fork, with the same imports blocked: what every child would import first anyway.
PRELOADED = ("mlflow", "mlflow.tracking")


def package_modules() -> list[str]:
    """Every module of the package but the CLI's (tests/unit/test_cli_layers.py holds those to their rule)."""
    return [name for name in package_module_files() if not name.startswith("synapse_ml_track.cli")]


SPARK_SIDE_MODULES = [name for name in package_modules() if name.startswith(SPARK_SIDE + ".") or name == TRAIN_JOB]
SPARK_FREE_MODULES = [name for name in package_modules() if name not in SPARK_SIDE_MODULES]

SETUP = """
import importlib, json, sys, traceback
package_dir = %r
blocked = %r
requests = []


class NoSpark:
    def find_spec(self, name, path=None, target=None):
        if not any(name == b or name.startswith(b + ".") for b in blocked):
            return None
        importer = next(f.filename for f in reversed(traceback.extract_stack()[:-1]) if not f.filename.startswith("<"))
        if importer.startswith(package_dir):
            requests.append([name, importer[len(package_dir):]])
        raise ModuleNotFoundError(f"No module named {name!r} (blocked by the probe)", name=name)


sys.meta_path.insert(0, NoSpark())
for name in %r:
    importlib.import_module(name)
assert not any(name.startswith("synapse_ml_track") for name in sys.modules)
"""

CASE = """
blocked, action = case["blocked"], case["action"]
code = 0
try:
    if action["module"]:
        importlib.import_module(action["module"])
    else:
        from synapse_ml_track.cli import main
        code = main(action["args"])
except SystemExit as exit:
    code = exit.code
except ImportError as exc:
    code = f"ImportError: {exc}"
outcome = {"code": code, "requests": requests}
"""


def _case(module: str | None, args: tuple[str, ...]) -> dict:
    blocked = [*ALWAYS_BLOCKED, *(name for name in SPARK_SIDE_MODULES if name != module)]
    return {"blocked": blocked, "action": {"module": module, "args": list(args)}}


def _probe(cases: list[dict], cwd) -> FreshRuns:
    setup = SETUP % (str(PACKAGE), [*ALWAYS_BLOCKED, *SPARK_SIDE_MODULES], list(PRELOADED))
    return FreshRuns(setup, CASE, cases, cwd=cwd, timeout=300)


def without_spark(module: str | None = None, args: tuple[str, ...] = (), cwd=REPO) -> dict:
    """Run the probe: import `module` (itself never blocked), or run the CLI with `args`."""
    return _probe([_case(module, args)], cwd).outcomes()[0]


class EachWithoutSpark:
    """The probe for each module, each in a child of its own, started at once: `outcomes()` gives
    {module: what without_spark(module) gives}."""

    def __init__(self, modules: list[str]):
        self.modules = modules
        self._runs = _probe([_case(module, ()) for module in modules], REPO)

    def outcomes(self) -> dict[str, dict]:
        return dict(zip(self.modules, self._runs.outcomes(), strict=True))
