"""The job's vocabulary, each defined once: model types, data formats, tracking backends.

Argument choices, configuration checks, the estimator table and the documentation's lists all
read these tables; nothing here imports Spark or MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlparse

TASKS = ("classification", "regression")


@dataclass(frozen=True)
class ModelType:
    estimator: str  # the Spark ML estimator class, "module.Class", imported only when a model is built
    binary_only: bool = False  # refuses more than two classes


# model.type names per model.task.
MODEL_TYPES: dict[str, dict[str, ModelType]] = {
    "classification": {
        "logistic_regression": ModelType("pyspark.ml.classification.LogisticRegression"),
        "random_forest": ModelType("pyspark.ml.classification.RandomForestClassifier"),
        "gbt": ModelType("pyspark.ml.classification.GBTClassifier", binary_only=True),
    },
    "regression": {
        "linear_regression": ModelType("pyspark.ml.regression.LinearRegression"),
        "random_forest": ModelType("pyspark.ml.regression.RandomForestRegressor"),
        "gbt": ModelType("pyspark.ml.regression.GBTRegressor"),
    },
}
MODEL_TYPE_NAMES = tuple(dict.fromkeys(name for types in MODEL_TYPES.values() for name in types))
DEFAULT_MODEL_TYPE = {"classification": "logistic_regression", "regression": "linear_regression"}
# What the gate compares with the champion and a search ranks by, unless configured.
DEFAULT_METRIC = {"classification": "f1", "regression": "rmse"}
# The metrics a summary shows first, per task.
HEADLINE_METRICS = {
    "classification": ("accuracy", "f1", "precision", "recall"),
    "regression": ("rmse", "r2", "mae", "explained_variance"),
}
# What a search can rank candidates by: the metrics computed on each validation fold.
VALIDATION_METRICS = {
    "classification": ("accuracy", "f1", "precision", "recall", "auc"),  # auc: binary labels only
    "regression": ("rmse", "mae", "r2", "explained_variance"),
}
# Error metrics: lower is better. Every other metric the job logs (accuracy, f1, r2, ...) is a score.
LOWER_IS_BETTER = frozenset({"rmse", "mae", "mse"})


def higher_is_better(metric: str) -> bool:
    return metric not in LOWER_IS_BETTER


@dataclass(frozen=True)
class DataFormat:
    suffixes: tuple[str, ...]  # file name endings that name the format
    readable: bool = True  # training and scoring can read it
    writable: bool = False  # scoring can write its output in it


DATA_FORMATS: dict[str, DataFormat] = {
    "csv": DataFormat((".csv", ".txt")),
    "parquet": DataFormat((".parquet",), writable=True),
    "delta": DataFormat((), writable=True),  # a directory with a _delta_log
}
INPUT_FORMATS = tuple(name for name, spec in DATA_FORMATS.items() if spec.readable)
OUTPUT_FORMATS = tuple(name for name, spec in DATA_FORMATS.items() if spec.writable)
DATAFRAME = "dataframe"  # the format of an input handed over as a DataFrame (the Python API's data=)
# What scoring does when its output exists; merge (an upsert on a key column) needs Delta.
WRITE_MODES = ("errorifexists", "overwrite", "append", "merge")
# What scoring does with a row that has a null model input: keep it without a prediction, drop it, or
# refuse the input.
UNSCORABLE_POLICIES = ("keep", "drop", "reject")


def format_of_suffix(suffix: str) -> str | None:
    return next((name for name, spec in DATA_FORMATS.items() if suffix.lower() in spec.suffixes), None)


# Where runs are tracked, by the tracking URI's scheme.
EMBEDDED, MLFLOW_SERVER, AZURE_ML = "embedded", "mlflow-server", "azureml"
TRACKING_BACKENDS = {"sqlite": EMBEDDED, "file": EMBEDDED, "": EMBEDDED, "http": MLFLOW_SERVER,
                     "https": MLFLOW_SERVER, "azureml": AZURE_ML}  # fmt: skip


def tracking_backend(uri: str) -> str:
    """embedded (a local store, no server), mlflow-server or azureml; other schemes count as servers."""
    return TRACKING_BACKENDS.get(urlparse(uri).scheme, MLFLOW_SERVER)


def is_aml_uri(uri: str) -> bool:
    return tracking_backend(uri) == AZURE_ML


# Run tags the job writes and reads back (besides MLflow's own mlflow.*), each named here only.
JOB_TAG = "smt.job"  # which job made the run: one of JOBS
TRAIN_JOB, SCORE_JOB, SEARCH_CANDIDATE_JOB = "train", "score", "search-candidate"  # the report shows TRAIN_JOB runs
JOBS = (TRAIN_JOB, SCORE_JOB, SEARCH_CANDIDATE_JOB)
RUN_KEY_TAG = "smt.run_key"  # a rerun of the same pipeline activity finds its earlier run by it
ATTEMPT_TAG = "smt.attempt_id"  # finds a run whose creation response was lost
ERROR_TAG = "smt.error"  # why a run FAILED
LEASE_TAG = "smt.lease"  # "<holder> <until>": the job writing the run, renewed until it ends (tracking/leases.py)
PACKAGE_VERSION_TAG = "smt.package_version"
SPARK_VERSION_TAG = "smt.spark_version"
MANY_VALUED_TAG = "smt.many_valued_features"  # categorical features over data.max_categories
CANDIDATE_TAG = "smt.candidate"  # a digest of a search candidate's parameter values
GATE_TAG = "smt.gate"  # "passed" or "rejected"
GATE_REASON_TAG = "smt.gate_reason"
DRIFT_TAG = "smt.drift"  # on a scoring run: ok, warn or fail, its largest PSI against drift.warn and drift.fail
DRIFTED_TAG = "smt.drift_features"  # the features at or over drift.warn, largest PSI first
PROMOTION_TAG = "smt.promotion"  # on a registered run: whether its version took the champion alias
MODEL_PATH_TAG = "smt.model_path"  # set only when a resumed run's model is not under the default path
# Tags on a registered model version.
CHAMPION_TAG = "smt.champion"  # the champion's alias name, where the registry has no aliases
CHAMPION_STANDING_TAG = "smt.champion_standing"  # "<metric>=<value>" of a promoted version, on its test split
ARTIFACT_PATH_TAG = "smt.artifact_path"  # where in its run a version's model files are
# Fields of a scoring output's Delta commit (its commitInfo.userMetadata).
RUN_KEY_FIELD = RUN_KEY_TAG  # the same name as the run tag
RUN_ID_FIELD = "smt.mlflow_run_id"
# What a scoring write is (a digest of its run key, input, model URI, target and mode): the commit's
# field, and the scoring run's tag, by which a retry finds its earlier commit and its earlier run.
WRITE_FIELD = WRITE_TAG = "smt.write"
# What a training is (a digest of its run key, input, how it is read and split, the model, the gate and the
# registered model): the training run's tag, by which a rerun finds its run and another training
# activity of the same pipeline run (the same run key) does not.
TRAINING_TAG = "smt.training"
MODEL_FIELD = "smt.model"  # the commit's model: name, version, run id, artifact path
INPUT_FIELD = "smt.input"  # the commit's input: its path or table, where a Delta input was read...
INPUT_VERSION_FIELD = "smt.input_version"  # ...and the version read (incremental scoring starts after it)
INPUT_ID_FIELD = "smt.input_id"  # ...and its Delta table id (a name or path may come to hold another table)
# On an incremental scoring run's dataset input: the first input version whose changes it read (its
# last, the pinned version, is the input's own); absent when it read the whole input.
CHANGES_FROM_TAG = "smt.changes_from"
# Run params read back by the runs report (a training run logs them with the rest of its settings).
TASK_PARAM = "model.task"
MODEL_TYPE_PARAM = "model.type"
