"""The tracking layer (MLflow client, HTTP policy, runs, registry, AML, auth) runs without Spark.

`pyspark in sys.modules` cannot be the test: MLflow itself imports pyspark whenever it is installed
(mlflow/types/schema.py line 32 in 3.15, mlflow/models/utils.py line 52 in 2.18, each inside a
`try: ... except ImportError`). So each probe runs in a fresh interpreter where pyspark, py4j,
mlflow.spark and the package's Spark-side modules cannot be imported, as in an environment without
Spark, and records every attempt the package's own code makes to import one of them.
"""

import json
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from synapse_ml_track.vocabulary import JOB_TAG, TASK_PARAM, TRAIN_JOB

from support import REPO

# What tracks, checks and reports: none of it may need Spark.
TRACKING_LAYER = (
    "aml", "auth", "config", "config_schema", "entrypoint", "errors", "gate", "http", "redaction",
    "registry", "report", "runs", "session", "tracking", "vocabulary",
)  # fmt: skip
# Spark-free too, but not tracking: the package's version, the report's plots, deployment to Synapse,
# and the Python API (it reaches the Spark side only when train or score is called).
OTHER_SPARK_FREE = ("__init__", "api", "deploy", "plots")
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


def test_every_module_is_on_one_side():
    modules = sorted(path.stem for path in (REPO / "synapse_ml_track").glob("*.py"))
    sides = [*TRACKING_LAYER, *OTHER_SPARK_FREE, *SPARK_SIDE]
    assert len(sides) == len(set(sides))
    assert modules == sorted(sides), "classify the new module as tracking layer, other Spark-free or Spark side"


@pytest.mark.parametrize("name", [*TRACKING_LAYER, *OTHER_SPARK_FREE])
def test_the_module_imports_without_spark(name):
    module = "synapse_ml_track" if name == "__init__" else f"synapse_ml_track.{name}"
    assert without_spark(module) == {"code": 0, "requests": []}


def test_the_probe_sees_a_spark_side_import():
    """The probe can fail: the training module asks for pyspark and the Spark side."""
    outcome = without_spark("synapse_ml_track.training")
    assert outcome["code"] != 0 and outcome["requests"]


def test_check_and_report_run_without_spark(mlflow_server, tmp_path):
    """`check` and `report`, end to end against a real MLflow server, in a process without Spark."""
    client = MlflowClient(mlflow_server.uri)
    experiment = f"spark-free-{tmp_path.name}"
    experiment_id = client.create_experiment(experiment)
    run = client.create_run(experiment_id, tags={JOB_TAG: TRAIN_JOB})
    client.log_param(run.info.run_id, TASK_PARAM, "classification")
    client.log_metric(run.info.run_id, "f1", 0.9)
    client.set_terminated(run.info.run_id)
    common = ("--tracking-uri", mlflow_server.uri, "--experiment-name", experiment)

    assert without_spark(args=("check", *common), cwd=tmp_path) == {"code": 0, "requests": []}
    assert without_spark(args=("report", *common, "--output-dir", str(tmp_path)), cwd=tmp_path) == {
        "code": 0,
        "requests": [],
    }
    assert (tmp_path / "runs.csv").read_text().count(run.info.run_id) == 1
