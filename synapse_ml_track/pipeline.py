"""The Spark ML pipeline: encode categoricals, assemble, scale, classify, decode the label."""

from __future__ import annotations

from typing import Any

from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.classification import GBTClassifier, LogisticRegression, RandomForestClassifier
from pyspark.ml.feature import IndexToString, OneHotEncoder, StandardScaler, StringIndexer, StringIndexerModel, VectorAssembler
from pyspark.sql import DataFrame

from synapse_ml_track.data import FeatureSpec
from synapse_ml_track.errors import ConfigError

LABEL_INDEX = "label_index"
PREDICTION_INDEX = "prediction_index"
# The decoded class name is the model's "prediction" column: the pyfunc flavour returns that
# column, so Spark and pyfunc scoring both answer with the original class names.
PREDICTION = "prediction"
PROBABILITY = "probability"
FEATURES = "features"

ESTIMATORS = {
    "logistic_regression": LogisticRegression,
    "random_forest": RandomForestClassifier,
    "gbt": GBTClassifier,
}


def fit_label_indexer(train: DataFrame, label: str) -> StringIndexerModel:
    """Index the label outside the logged pipeline, so scoring needs no label column."""
    indexer = StringIndexer(inputCol=label, outputCol=LABEL_INDEX, stringOrderType="alphabetAsc")
    return indexer.fit(train)


def build_classifier(model_type: str, params: dict[str, Any], seed: int):
    estimator_class = ESTIMATORS[model_type]
    estimator = estimator_class(featuresCol=FEATURES, labelCol=LABEL_INDEX, predictionCol=PREDICTION_INDEX)
    if estimator.hasParam("seed"):
        estimator.setSeed(seed)
    for name, value in params.items():
        if not estimator.hasParam(name) or name in ("featuresCol", "labelCol", "predictionCol"):
            settable = sorted(p.name for p in estimator.params if p.name not in ("featuresCol", "labelCol", "predictionCol"))
            raise ConfigError(
                f"model.params.{name} is not a parameter of {estimator_class.__name__} (valid: {', '.join(settable)})"
            )
        try:
            estimator.set(estimator.getParam(name), value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"model.params.{name}={value!r} is not valid for {estimator_class.__name__}: {exc}") from None
    return estimator


def build_pipeline(spec: FeatureSpec, classifier, class_labels: list[str]) -> Pipeline:
    indexed = [f"{name}_index" for name in spec.categorical]
    encoded = [f"{name}_onehot" for name in spec.categorical]
    stages = []
    if spec.categorical:
        stages.append(
            StringIndexer(inputCols=list(spec.categorical), outputCols=indexed, handleInvalid="keep", stringOrderType="alphabetAsc")
        )
        stages.append(OneHotEncoder(inputCols=indexed, outputCols=encoded, handleInvalid="keep"))
    stages += [
        VectorAssembler(inputCols=list(spec.numeric) + encoded, outputCol="features_raw", handleInvalid="error"),
        StandardScaler(inputCol="features_raw", outputCol=FEATURES, withMean=False, withStd=True),
        classifier,
        IndexToString(inputCol=PREDICTION_INDEX, outputCol=PREDICTION, labels=class_labels),
    ]
    return Pipeline(stages=stages)


def classifier_params(model: PipelineModel) -> dict[str, str]:
    """The fitted classifier's parameters (defaults included), for tracking."""
    classifier = model.stages[-2]
    return {param.name: str(value) for param, value in classifier.extractParamMap().items()}


def feature_weights(model: PipelineModel, spec: FeatureSpec) -> dict[str, Any] | None:
    """Feature importances (trees) or coefficients (logistic regression), named by input feature."""
    classifier = model.stages[-2]
    names = _assembled_feature_names(model, spec)
    if hasattr(classifier, "featureImportances"):
        importances = classifier.featureImportances.toArray().tolist()
        return {"kind": "feature_importances", "values": dict(zip(names, importances))}
    if hasattr(classifier, "coefficientMatrix"):
        matrix = classifier.coefficientMatrix.toArray().tolist()
        labels = model.stages[-1].getLabels()
        rows = matrix if len(matrix) == len(labels) else [matrix[0]]
        row_names = labels if len(matrix) == len(labels) else [f"{labels[1]} vs {labels[0]}"]
        return {"kind": "coefficients", "values": {cls: dict(zip(names, row)) for cls, row in zip(row_names, rows)}}
    return None


def _assembled_feature_names(model: PipelineModel, spec: FeatureSpec) -> list[str]:
    names = list(spec.numeric)
    if spec.categorical:
        indexer = model.stages[0]
        for column, labels in zip(spec.categorical, indexer.labelsArray):
            # handleInvalid=keep adds a slot for unseen values and dropLast removes it again,
            # so the encoded slots are exactly the categories seen in training.
            names += [f"{column}={value}" for value in labels]
    return names
