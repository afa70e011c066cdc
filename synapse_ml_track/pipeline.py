"""The Spark ML pipeline: encode categoricals, assemble, scale, classify, decode the label."""

from __future__ import annotations

import importlib
from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.feature import (
    IndexToString,
    OneHotEncoder,
    StandardScaler,
    StringIndexer,
    StringIndexerModel,
    VectorAssembler,
)
from pyspark.sql import DataFrame

from synapse_ml_track.data import FeatureSpec
from synapse_ml_track.errors import ConfigError
from synapse_ml_track.vocabulary import MODEL_TYPES

LABEL_INDEX = "label_index"
PREDICTION_INDEX = "prediction_index"
# The decoded class name is the model's "prediction" column: the pyfunc flavour returns that
# column, so Spark and pyfunc scoring both answer with the original class names.
PREDICTION = "prediction"
PROBABILITY = "probability"
FEATURES = "features"
ASSEMBLED = "features_raw"


def fit_label_indexer(train: DataFrame, label: str) -> StringIndexerModel:
    """Index the label outside the logged pipeline, so scoring needs no label column."""
    indexer = StringIndexer(inputCol=label, outputCol=LABEL_INDEX, stringOrderType="alphabetAsc")
    return indexer.fit(train)


def build_classifier(model_type: str, params: dict[str, Any], seed: int):
    module, _, name = MODEL_TYPES[model_type].estimator.rpartition(".")
    estimator_class = getattr(importlib.import_module(module), name)
    estimator = estimator_class(featuresCol=FEATURES, labelCol=LABEL_INDEX, predictionCol=PREDICTION_INDEX)
    if estimator.hasParam("seed"):
        estimator.setSeed(seed)
    for name, value in params.items():
        if not estimator.hasParam(name) or name in ("featuresCol", "labelCol", "predictionCol"):
            settable = sorted(
                p.name for p in estimator.params if p.name not in ("featuresCol", "labelCol", "predictionCol")
            )
            raise ConfigError(
                f"model.params.{name} is not a parameter of {estimator_class.__name__} (valid: {', '.join(settable)})"
            )
        try:
            estimator.set(estimator.getParam(name), value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"model.params.{name}={value!r} is not valid for {estimator_class.__name__}: {exc}"
            ) from None
    return estimator


def build_pipeline(spec: FeatureSpec, classifier, class_labels: list[str]) -> Pipeline:
    indexed = [f"{name}_index" for name in spec.categorical]
    encoded = [f"{name}_onehot" for name in spec.categorical]
    stages = []
    if spec.categorical:
        stages.append(
            StringIndexer(
                inputCols=list(spec.categorical),
                outputCols=indexed,
                handleInvalid="keep",
                stringOrderType="alphabetAsc",
            )
        )
        stages.append(OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep"))
    stages += [
        VectorAssembler(inputCols=list(spec.numeric) + encoded, outputCol=ASSEMBLED, handleInvalid="error"),
        StandardScaler(inputCol=ASSEMBLED, outputCol=FEATURES, withMean=False, withStd=True),
        classifier,
        IndexToString(inputCol=PREDICTION_INDEX, outputCol=PREDICTION, labels=class_labels),
    ]
    return Pipeline(stages=stages)


def classifier_params(model: PipelineModel) -> dict[str, str]:
    """The fitted classifier's parameters (defaults included), for tracking."""
    classifier = model.stages[-2]
    return {param.name: str(value) for param, value in classifier.extractParamMap().items()}


def feature_weights(model: PipelineModel, spec: FeatureSpec, data: DataFrame) -> dict[str, Any] | None:
    """Feature importances (trees) or coefficients (logistic regression), named by input feature.

    `data` is any frame the model can transform: the names come from the assembled vector's ML
    attributes, which the schema carries without running a Spark job.
    """
    classifier = model.stages[-2]
    names = assembled_feature_names(model.transform(data), spec)
    if hasattr(classifier, "featureImportances"):
        importances = classifier.featureImportances.toArray().tolist()
        return {"kind": "feature_importances", "values": dict(zip(names, importances, strict=True))}
    if hasattr(classifier, "coefficientMatrix"):
        matrix = classifier.coefficientMatrix.toArray().tolist()
        labels = model.stages[-1].getLabels()
        rows = matrix if len(matrix) == len(labels) else [matrix[0]]
        row_names = labels if len(matrix) == len(labels) else [f"{labels[1]} vs {labels[0]}"]
        return {
            "kind": "coefficients",
            "values": {cls: dict(zip(names, row, strict=True)) for cls, row in zip(row_names, rows, strict=True)},
        }
    return None


def assembled_feature_names(transformed: DataFrame, spec: FeatureSpec) -> list[str]:
    """One name per slot of the assembled feature vector: `column` for a number, `column=value` for a
    category, `column=(unseen)` for the slot the StringIndexer keeps for values not seen in training."""
    attributes = transformed.schema[ASSEMBLED].metadata["ml_attr"]["attrs"]
    slots = sorted((a for group in attributes.values() for a in group), key=lambda attribute: attribute["idx"])
    encoded = {f"{column}_onehot_": column for column in spec.categorical}
    names = []
    for slot in slots:
        prefix = next((p for p in encoded if slot["name"].startswith(p)), None)
        if prefix is None:
            names.append(slot["name"])
            continue
        value = slot["name"][len(prefix) :]
        names.append(f"{encoded[prefix]}={'(unseen)' if value == '__unknown' else value}")
    return names
