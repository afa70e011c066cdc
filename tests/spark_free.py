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

# What tracks, checks and reports: none of it may need Spark.
TRACKING_LAYER = (
    "aml", "auth", "config", "config_schema", "entrypoint", "errors", "gate", "http", "redaction",
    "registry", "report", "runs", "session", "tracking", "vocabulary",
)  # fmt: skip
# Spark-free too, but not tracking: the package's version, the report's plots, deployment to Synapse
# (the plan, and its Azure SDK target), and the Python API (it reaches the Spark side only when train
# or score is called).
OTHER_SPARK_FREE = ("__init__", "api", "deploy", "plots", "synapse_target")
# What reads data, fits, evaluates, scores and saves or loads Spark models.
SPARK_SIDE = (
    "context", "data", "delta", "delta_tables", "evaluation", "pipeline", "regression_evaluation",
    "scoring", "search", "spark", "spark_models", "training",
)  # fmt: skip

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
    spark_side = (f"synapse_ml_track.{name}" for name in SPARK_SIDE)
    blocked = ["pyspark", "py4j", "mlflow.spark", *(name for name in spark_side if name != module)]
    action = json.dumps({"module": module, "args": list(args)})
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(blocked), str(REPO / "synapse_ml_track"), action],
        capture_output=True, text=True, cwd=cwd, timeout=120,
    )  # fmt: skip
    assert result.stdout.strip(), result.stderr[-2000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
