"""The tracking layer (MLflow client, HTTP policy, runs, registry, AML, auth) runs without Spark, and
so does everything else outside synapse_ml_track/spark.

`pyspark in sys.modules` cannot be the test: MLflow itself imports pyspark whenever it is installed
(mlflow/types/schema.py line 32 in 3.15, mlflow/models/utils.py line 52 in 2.18, each inside a
`try: ... except ImportError`). So each module is imported in a fresh interpreter (a forked child
of one probe process, tests/spark_free.py) where pyspark, py4j, mlflow.spark and the package's
Spark-side modules cannot be imported, as in an environment without Spark, and every attempt the
package's own code makes to import one of them is recorded.
"""

import pytest
from spark_free import SPARK_FREE_MODULES, SPARK_SIDE_MODULES, EachWithoutSpark

SPARK_SIDE_PROBE = "synapse_ml_track.spark.training"


_started: list[EachWithoutSpark] = []


def start_probes() -> EachWithoutSpark:
    """Every module's probe, from one probe process, started once (tests/conftest.py starts it as soon
    as this file's tests are collected)."""
    if not _started:
        _started.append(EachWithoutSpark([*SPARK_FREE_MODULES, SPARK_SIDE_PROBE]))
    return _started[0]


@pytest.fixture(scope="module")
def outcomes() -> dict[str, dict]:
    return start_probes().outcomes()


def test_the_layers_are_the_sub_packages():
    """A module outside the three layer packages is shared by all of them, so it must stay Spark-free too."""
    layers = {name.split(".")[1] for name in SPARK_FREE_MODULES + SPARK_SIDE_MODULES if name.count(".") > 1}
    assert layers == {"deploy", "spark", "tracking"}
    assert "synapse_ml_track.tracking.runs" in SPARK_FREE_MODULES
    assert "synapse_ml_track.spark.training" in SPARK_SIDE_MODULES


@pytest.mark.parametrize("module", SPARK_FREE_MODULES)
def test_the_module_imports_without_spark(module, outcomes):
    assert outcomes[module] == {"code": 0, "requests": []}


def test_the_probe_sees_a_spark_side_import(outcomes):
    """The probe can fail: the training module asks for pyspark and the Spark side."""
    outcome = outcomes[SPARK_SIDE_PROBE]
    assert outcome["code"] != 0 and outcome["requests"]
