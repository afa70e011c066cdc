"""The layers: the tracking layer (MLflow client, HTTP policy, runs, registry, AML, auth) runs without
Spark, and so does everything else outside synapse_ml_track/spark but the training job (train_job.py),
which runs the Spark side; the Spark side of training knows nothing of tracking; no module imports
one from a layer above its own.

`pyspark in sys.modules` cannot be the test: MLflow itself imports pyspark whenever it is installed
(mlflow/types/schema.py line 32 in 3.15, mlflow/models/utils.py line 52 in 2.18, each inside a
`try: ... except ImportError`). So each module is imported in a fresh interpreter (a forked child
of one probe process, tests/spark_free.py) where pyspark, py4j, mlflow.spark and the package's
Spark-side modules cannot be imported, as in an environment without Spark, and every attempt the
package's own code makes to import one of them is recorded. The import rules between the package's
own modules are read from the source (every import statement, those inside functions or under
TYPE_CHECKING too).
"""

import pytest
from spark_free import SPARK_FREE_MODULES, SPARK_SIDE_MODULES, TRAIN_JOB, EachWithoutSpark

from support import imported_names, package_module_files

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
    """A module outside the three layer packages is shared by all of them, so it must stay Spark-free
    too; but for the training job, which sits above the Spark side and tracking, and runs them both."""
    layers = {name.split(".")[1] for name in SPARK_FREE_MODULES + SPARK_SIDE_MODULES if name.count(".") > 1}
    assert layers == {"deploy", "spark", "tracking"}
    assert "synapse_ml_track.tracking.runs" in SPARK_FREE_MODULES
    assert "synapse_ml_track.spark.training" in SPARK_SIDE_MODULES
    assert TRAIN_JOB in SPARK_SIDE_MODULES and layer_of(TRAIN_JOB) == "the training job"


@pytest.mark.parametrize("module", SPARK_FREE_MODULES)
def test_the_module_imports_without_spark(module, outcomes):
    assert outcomes[module] == {"code": 0, "requests": []}


def test_the_probe_sees_a_spark_side_import(outcomes):
    """The probe can fail: the training module asks for pyspark and the Spark side."""
    outcome = outcomes[SPARK_SIDE_PROBE]
    assert outcome["code"] != 0 and outcome["requests"]


# The package's layers, top to bottom: a module imports from its own layer and those below, never from
# one above. The Spark side, tracking and deployment sit side by side; the modules no layer names
# (config, errors, vocabulary, redaction, plots...) are shared by all of them.
LAYERS = {
    "the command line": ("synapse_ml_track.cli",),
    "the Python API": ("synapse_ml_track.api", "synapse_ml_track.entrypoint"),
    "the training job": (TRAIN_JOB,),
    "the Spark side, tracking and deployment": (
        "synapse_ml_track.spark",
        "synapse_ml_track.tracking",
        "synapse_ml_track.deploy",
    ),
    "shared": ("synapse_ml_track",),
}
# errors.failure_line reads a Spark error with the Spark side's reader, imported only once Spark raised one.
# The package's __init__ is the API's front door: it names the API for type checkers (TYPE_CHECKING)
# and serves it on first use.
UPWARD_IMPORTS = {
    ("synapse_ml_track.errors", "synapse_ml_track.spark.session"),
    ("synapse_ml_track", "synapse_ml_track.api"),
    ("synapse_ml_track", "synapse_ml_track.train_job"),
}
# The training job's Spark work returns plain results; train_job.py records them.
UNTRACKED = ("synapse_ml_track.spark.training", "synapse_ml_track.spark.search")


def layer_of(module: str) -> str:
    """The layer of the longest name in LAYERS that is `module` or a package holding it."""
    named = [
        (len(prefix), layer)
        for layer, prefixes in LAYERS.items()
        for prefix in prefixes
        if module == prefix or module.startswith(prefix + ".")
    ]
    return max(named)[1]


SOURCES = package_module_files()


def package_imports(module: str) -> set[str]:
    """The package's modules (and names in them) that `module` imports, wherever the import statement is."""
    return {
        name
        for name in imported_names(SOURCES[module])
        if name == "synapse_ml_track" or name.startswith("synapse_ml_track.")
    }


def test_the_spark_side_of_training_imports_nothing_of_tracking():
    for module in UNTRACKED:
        tracking = sorted(name for name in package_imports(module) if name.startswith("synapse_ml_track.tracking"))
        assert tracking == [], f"{module} imports {', '.join(tracking)}: pass plain results to train_job instead"


ORDER = list(LAYERS)


@pytest.mark.parametrize("module", sorted(SOURCES))
def test_no_module_imports_from_a_layer_above_its_own(module):
    upward = sorted(
        name
        for name in package_imports(module)
        if ORDER.index(layer_of(name)) < ORDER.index(layer_of(module))
        and not any(name.startswith(target) for source, target in UPWARD_IMPORTS if source == module)
    )
    assert upward == [], f"{module} ({layer_of(module)}) imports {', '.join(upward)} from above"
