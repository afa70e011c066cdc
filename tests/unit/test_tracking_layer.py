"""The tracking layer (MLflow client, HTTP policy, runs, registry, AML, auth) runs without Spark.

`pyspark in sys.modules` cannot be the test: MLflow itself imports pyspark whenever it is installed
(mlflow/types/schema.py line 32 in 3.15, mlflow/models/utils.py line 52 in 2.18, each inside a
`try: ... except ImportError`). So each probe runs in a fresh interpreter where pyspark, py4j,
mlflow.spark and the package's Spark-side modules cannot be imported, as in an environment without
Spark, and records every attempt the package's own code makes to import one of them.
"""

import pytest
from spark_free import OTHER_SPARK_FREE, REPO, SPARK_SIDE, TRACKING_LAYER, without_spark


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
