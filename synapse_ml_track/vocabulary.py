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
