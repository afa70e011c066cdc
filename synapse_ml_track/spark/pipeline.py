"""The Spark ML pipeline: encode categoricals, assemble, scale, then classify and decode the class, or regress."""

from __future__ import annotations

import importlib
import re
from typing import Any

from pyspark.ml import Estimator, Pipeline, PipelineModel, Transformer
from pyspark.ml.feature import (
    IndexToString,
    OneHotEncoder,
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    StringIndexerModel,
    VectorAssembler,
)
from pyspark.sql import DataFrame

from synapse_ml_track.errors import ConfigError
from synapse_ml_track.spark.data import LABEL, RESERVED_PREFIX, FeatureSpec, quoted
from synapse_ml_track.vocabulary import MODEL_TYPES

# Every column the model adds is named with the reserved prefix, so no input column is overwritten,
# except the decoded class: the model's "prediction" column, which the pyfunc flavour returns, so
# Spark and pyfunc scoring both answer with the original class names.
LABEL_INDEX = RESERVED_PREFIX + "label_index"
PREDICTION_INDEX = RESERVED_PREFIX + "prediction_index"
PREDICTION = "prediction"
PROBABILITY = RESERVED_PREFIX + "probability"
RAW_PREDICTION = RESERVED_PREFIX + "raw_prediction"
FEATURES = RESERVED_PREFIX + "features"
ASSEMBLED = RESERVED_PREFIX + "assembled"
# The estimator's column parameters are the job's to set, not model.params.
COLUMN_PARAMS = ("featuresCol", "labelCol", "predictionCol", "probabilityCol", "rawPredictionCol")


def fit_label_indexer(train: DataFrame) -> StringIndexerModel:
    """Index the label (data.LABEL, the class as text) outside the logged pipeline, so scoring needs
    no label column."""
    indexer = StringIndexer(inputCol=LABEL, outputCol=LABEL_INDEX, stringOrderType="alphabetAsc")
    return indexer.fit(train)


def build_estimator(task: str, model_type: str, params: dict[str, Any], seed: int):
    module, _, name = MODEL_TYPES[task][model_type].estimator.rpartition(".")
    estimator_class = getattr(importlib.import_module(module), name)
    estimator = estimator_class()
    if task == "classification":
        columns = {"featuresCol": FEATURES, "labelCol": LABEL_INDEX, "predictionCol": PREDICTION_INDEX,
                   "probabilityCol": PROBABILITY, "rawPredictionCol": RAW_PREDICTION}  # fmt: skip
    else:
        columns = {"featuresCol": FEATURES, "labelCol": LABEL, "predictionCol": PREDICTION}
    for name, value in columns.items():
        estimator.set(estimator.getParam(name), value)
    if estimator.hasParam("seed"):
        estimator.setSeed(seed)
    for name, value in params.items():
        set_param(estimator, name, value, "model.params")
    return estimator


def set_param(estimator, name: str, value: Any, key: str) -> None:
    """Set one estimator parameter from configuration (`key` names where it came from)."""
    if not estimator.hasParam(name) or name in COLUMN_PARAMS:
        settable = sorted(p.name for p in estimator.params if p.name not in COLUMN_PARAMS)
        raise ConfigError(
            f"{key}.{name} is not a parameter of {type(estimator).__name__} (valid: {', '.join(settable)})"
        )
    param, estimator_name = estimator.getParam(name), type(estimator).__name__
    try:
        estimator.set(param, value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key}.{name}={value!r} is not valid for {estimator_name}: {exc}") from None
    try:
        # Spark checks a value against its range or choices only in the JVM, which sees it when the
        # estimator is copied (JavaParams.copy hands every value over) or fitted: after the data is read.
        estimator.copy()
    except Exception:  # noqa: BLE001 - the JVM's IllegalArgumentException, or py4j refusing a value Java cannot hold
        raise ConfigError(f"{key}.{name}={value!r} is not valid for {estimator_name}: {param.doc}") from None


def numeric_slot(index: int) -> str:
    return f"{RESERVED_PREFIX}num_{index}"


def categorical_slot(index: int) -> str:
    return f"{RESERVED_PREFIX}cat_{index}"


def build_pipeline(spec: FeatureSpec, estimator, class_labels: list[str] | None) -> Pipeline:
    """The logged model: input columns by their own names, however they are spelled.

    Spark ML stages resolve a column name as an expression (a dot reads as a struct field), so the
    first stage, an SQL SELECT with every name quoted, copies each feature to a plain internal name
    (numeric as double, categorical as text, booleans included) for the stages after it.
    A classifier's pipeline ends by decoding the predicted class (`class_labels`); a regressor's
    writes its prediction directly.
    """
    numeric = [numeric_slot(i) for i in range(len(spec.numeric))]
    categorical = [categorical_slot(i) for i in range(len(spec.categorical))]
    copies = [f"CAST({quoted(c)} AS DOUBLE) AS {slot}" for c, slot in zip(spec.numeric, numeric, strict=True)]
    copies += [f"CAST({quoted(c)} AS STRING) AS {slot}" for c, slot in zip(spec.categorical, categorical, strict=True)]
    stages: list[Estimator | Transformer] = [SQLTransformer(statement=f"SELECT *, {', '.join(copies)} FROM __THIS__")]
    encoded = [f"{slot}_onehot" for slot in categorical]
    if categorical:
        indexed = [f"{slot}_index" for slot in categorical]
        stages.append(
            StringIndexer(
                inputCols=categorical, outputCols=indexed, handleInvalid="keep", stringOrderType="alphabetAsc"
            )
        )
        stages.append(OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep"))
    stages += [
        VectorAssembler(inputCols=numeric + encoded, outputCol=ASSEMBLED, handleInvalid="error"),
        StandardScaler(inputCol=ASSEMBLED, outputCol=FEATURES, withMean=False, withStd=True),
        estimator,
    ]
    if class_labels is not None:
        stages.append(IndexToString(inputCol=PREDICTION_INDEX, outputCol=PREDICTION, labels=class_labels))
    return Pipeline(stages=stages)


def predictor(model: PipelineModel):
    """The fitted classifier or regressor: the one stage that reads the assembled features."""
    return next(stage for stage in model.stages if stage.hasParam("featuresCol"))


def class_labels(model: PipelineModel) -> list[str] | None:
    """The classes a classification pipeline decodes its prediction to; None for a regression."""
    last = model.stages[-1]
    return list(last.getLabels()) if isinstance(last, IndexToString) else None


# How build_pipeline's first stage copies a categorical feature to its slot: CAST(`name` AS STRING) AS slot.
_CATEGORICAL_COPY = re.compile(r"CAST\(`((?:[^`]|``)*)` AS STRING\) AS (\w+)")


def known_categories(model: PipelineModel) -> dict[str, list[str]]:
    """Each categorical feature, by its input name, and the categories the model learned from its
    training split; a value outside them is scored as one shared unknown category (handleInvalid keep).
    A model built otherwise than build_pipeline builds it (no copy stage) has none to tell."""
    copy = next((stage for stage in model.stages if isinstance(stage, SQLTransformer)), None)
    indexer = next((stage for stage in model.stages if isinstance(stage, StringIndexerModel)), None)
    if copy is None or indexer is None:
        return {}
    names = {slot: name.replace("``", "`") for name, slot in _CATEGORICAL_COPY.findall(copy.getStatement())}
    learned = zip(indexer.getInputCols(), indexer.labelsArray, strict=True)
    return {names[slot]: list(labels) for slot, labels in learned if slot in names}


def feature_weights(model: PipelineModel, spec: FeatureSpec, data: DataFrame) -> dict[str, Any] | None:
    """Feature importances (trees) or coefficients (linear models), named by input feature.

    `data` is any frame the model can transform: the names come from the assembled vector's ML
    attributes, which the schema carries without running a Spark job.
    """
    fitted = predictor(model)
    names = assembled_feature_names(model.transform(data), spec)
    if hasattr(fitted, "featureImportances"):
        importances = fitted.featureImportances.toArray().tolist()
        return {"kind": "feature_importances", "values": dict(zip(names, importances, strict=True))}
    if hasattr(fitted, "coefficientMatrix"):
        matrix = fitted.coefficientMatrix.toArray().tolist()
        labels = class_labels(model) or []  # a coefficient matrix is a classifier's
        rows = matrix if len(matrix) == len(labels) else [matrix[0]]
        row_names = labels if len(matrix) == len(labels) else [f"{labels[1]} vs {labels[0]}"]
        return {
            "kind": "coefficients",
            "values": {cls: dict(zip(names, row, strict=True)) for cls, row in zip(row_names, rows, strict=True)},
        }
    if hasattr(fitted, "coefficients"):
        values = dict(zip(names, fitted.coefficients.toArray().tolist(), strict=True))
        return {"kind": "coefficients", "values": {**values, "(intercept)": float(fitted.intercept)}}
    return None


def assembled_feature_names(transformed: DataFrame, spec: FeatureSpec) -> list[str]:
    """One name per slot of the assembled feature vector: `column` for a number, `column=value` for a
    category, `column=(unseen)` for the slot the StringIndexer keeps for values not seen in training."""
    attributes = transformed.schema[ASSEMBLED].metadata["ml_attr"]["attrs"]
    slots = sorted((a for group in attributes.values() for a in group), key=lambda attribute: attribute["idx"])
    numeric = {numeric_slot(i): name for i, name in enumerate(spec.numeric)}
    encoded = {f"{categorical_slot(i)}_onehot_": name for i, name in enumerate(spec.categorical)}
    names = []
    for slot in slots:
        prefix = next((p for p in encoded if slot["name"].startswith(p)), None)
        if prefix is None:
            names.append(numeric[slot["name"]])
            continue
        value = slot["name"][len(prefix) :]
        names.append(f"{encoded[prefix]}={'(unseen)' if value == '__unknown' else value}")
    return names
