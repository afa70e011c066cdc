"""The Spark-free probe: a fresh interpreter where pyspark, py4j, mlflow.spark and the package's
Spark-side modules cannot be imported, recording every attempt the package's own code makes.

`pyspark in sys.modules` cannot be the test: MLflow itself imports pyspark whenever it is installed
(mlflow/types/schema.py line 32 in 3.15, mlflow/models/utils.py line 52 in 2.18, each inside a
`try: ... except ImportError`), so the probe blocks the imports instead.
"""

import json
import subprocess
import sys

from support import REPO

PACKAGE = REPO / "synapse_ml_track"
# Only the Spark side may import pyspark. The rest of the package, the tracking layer
# (synapse_ml_track/tracking) and the deployment (synapse_ml_track/deploy) first, imports without it.
SPARK_SIDE = "synapse_ml_track.spark"


def package_modules() -> list[str]:
    """Every module of the package but the CLI's (tests/unit/test_cli_layers.py holds those to their rule)."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.startswith("synapse_ml_track.cli"):
            names.append(name)
    return names


SPARK_SIDE_MODULES = [name for name in package_modules() if name.startswith(SPARK_SIDE + ".")]
SPARK_FREE_MODULES = [name for name in package_modules() if name not in SPARK_SIDE_MODULES]

PROBE = """
import importlib, json, sys, traceback
blocked, package_dir, action = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
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
print(json.dumps({"code": code, "requests": requests}))
"""


def without_spark(module: str | None = None, args: tuple[str, ...] = (), cwd=REPO) -> dict:
    """Run the probe: import `module` (itself never blocked), or run the CLI with `args`."""
    blocked = ["pyspark", "py4j", "mlflow.spark", *(name for name in SPARK_SIDE_MODULES if name != module)]
    action = json.dumps({"module": module, "args": list(args)})
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(blocked), str(REPO / "synapse_ml_track"), action],
        capture_output=True, text=True, cwd=cwd, timeout=120,
    )  # fmt: skip
    assert result.stdout.strip(), result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
