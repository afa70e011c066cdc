"""Metrics and evaluation artifacts from one pass over the test predictions."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark.ml.evaluation import BinaryClassificationEvaluator
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from synapse_ml_track.plots import new_figure
from synapse_ml_track.spark.pipeline import LABEL_INDEX, PREDICTION_INDEX, RAW_PREDICTION

# What MLflow accepts in a metric name on every platform (mlflow/utils/validation.py,
# validate_param_and_metric_name: letters, digits, _ - . space and /; the slash is left out here).
_NOT_IN_A_METRIC_NAME = re.compile(r"[^\w.\- ]")


def class_keys(labels: list[str]) -> dict[str, str]:
    """Each class's name as it can appear in a metric or column name (f1_<key>, probability_<key>):
    other characters become _, and classes that would then share a name are numbered."""
    keys: dict[str, str] = {}
    for label in labels:
        key = _NOT_IN_A_METRIC_NAME.sub("_", label).strip() or "_"
        taken, number = set(keys.values()), 2
        unique = key
        while unique in taken:
            unique, number = f"{key}_{number}", number + 1
        keys[label] = unique
    return keys


@dataclass
class Evaluation:
    labels: list[str]
    confusion: list[list[int]]  # rows: true class, columns: predicted class, in `labels` order
    metrics: dict[str, float] = field(default_factory=dict)
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def all_metrics(self) -> dict[str, float]:
        """The overall metrics and each class's precision, recall and f1 (f1_<class>, ...)."""
        keys = class_keys(self.labels)
        per_class = {
            f"{name}_{keys[label]}": value
            for label, scores in self.per_class.items()
            for name, value in scores.items()
            if name != "support"
        }
        return {**self.metrics, **per_class}

    def write(self, weights: dict | None, directory: Path) -> None:
        write_artifacts(self, weights, directory)


def evaluate(
    predictions: DataFrame, labels: list[str], prediction_col: str = PREDICTION_INDEX, raw_col: str = RAW_PREDICTION
) -> Evaluation:
    """Metrics from the confusion matrix, which one small aggregation yields.

    MulticlassClassificationEvaluator would scan the predictions once per metric; the matrix
    holds everything those scans compute. Pass a cached DataFrame when AUC is also wanted.
    """
    counts = predictions.groupBy(LABEL_INDEX, prediction_col).count().collect()
    size = len(labels)
    confusion = [[0] * size for _ in range(size)]
    for row in counts:
        confusion[int(row[LABEL_INDEX])][int(row[prediction_col])] += row["count"]
    evaluation = from_confusion(labels, confusion)
    if size == 2:
        auc = BinaryClassificationEvaluator(
            labelCol=LABEL_INDEX, rawPredictionCol=raw_col, metricName="areaUnderROC"
        ).evaluate(predictions)
        evaluation.metrics["auc"] = float(auc)
    return evaluation


def confusion_columns(actual: Column, predicted: Column, labels: list[str], prefix: str) -> list[Column]:
    """The confusion matrix as aggregates (an Observation's: scoring labelled data counts it while it
    writes), true class by predicted class; rows whose label is none of `labels` are not counted."""
    return [
        F.sum(((actual == truth) & (predicted == guess)).cast("long")).alias(f"{prefix}{i}_{j}")
        for i, truth in enumerate(labels)
        for j, guess in enumerate(labels)
    ]


def confusion_of(values: Mapping[str, Any], labels: list[str], prefix: str) -> list[list[int]]:
    size = range(len(labels))
    return [[int(values[f"{prefix}{i}_{j}"] or 0) for j in size] for i in size]


def from_confusion(labels: list[str], confusion: list[list[int]]) -> Evaluation:
    total = sum(map(sum, confusion))
    per_class: dict[str, dict[str, float]] = {}
    weighted = {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    for i, label in enumerate(labels):
        true_positive = confusion[i][i]
        support = sum(confusion[i])
        predicted = sum(row[i] for row in confusion)
        precision = true_positive / predicted if predicted else 0.0
        recall = true_positive / support if support else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": float(support)}
        for name, value in (("precision", precision), ("recall", recall), ("f1", f1)):
            weighted[name] += value * support / total if total else 0.0
    accuracy = sum(confusion[i][i] for i in range(len(labels))) / total if total else 0.0
    metrics = {"accuracy": accuracy, **weighted, "test_rows": float(total)}
    return Evaluation(labels=labels, confusion=confusion, metrics=metrics, per_class=per_class)


def classification_report_text(evaluation: Evaluation) -> str:
    width = max([len(label) for label in evaluation.labels] + [12])
    lines = [f"{'class':<{width}}  precision     recall         f1    support"]
    for label in evaluation.labels:
        scores = evaluation.per_class[label]
        lines.append(
            f"{label:<{width}}  {scores['precision']:9.4f}  {scores['recall']:9.4f}  {scores['f1']:9.4f}  "
            f"{int(scores['support']):9d}"
        )
    m = evaluation.metrics
    lines.append("")
    lines.append(f"{'accuracy':<{width}}  {'':9}  {'':9}  {m['accuracy']:9.4f}  {int(m['test_rows']):9d}")
    lines.append(
        f"{'weighted avg':<{width}}  {m['precision']:9.4f}  {m['recall']:9.4f}  {m['f1']:9.4f}  "
        f"{int(m['test_rows']):9d}"
    )
    if "auc" in m:
        lines.append(f"{'auc':<{width}}  {m['auc']:9.4f}")
    return "\n".join(lines) + "\n"


def write_artifacts(evaluation: Evaluation, weights: dict | None, directory: Path) -> None:
    """Confusion matrix PNG, classification report (text and JSON), feature weights."""
    directory.mkdir(parents=True, exist_ok=True)
    report = {
        "labels": evaluation.labels,
        "metrics": evaluation.metrics,
        "per_class": evaluation.per_class,
        "confusion_matrix": evaluation.confusion,
    }
    (directory / "classification_report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (directory / "classification_report.txt").write_text(classification_report_text(evaluation), encoding="utf-8")
    write_weights(weights, directory)
    plot_confusion_matrix(evaluation, directory / "confusion_matrix.png")


def write_weights(weights: dict | None, directory: Path) -> None:
    """Feature importances or coefficients (pipeline.feature_weights) as <kind>.json."""
    if weights is not None:
        (directory / f"{weights['kind']}.json").write_text(json.dumps(weights["values"], indent=2), encoding="utf-8")


def plot_confusion_matrix(evaluation: Evaluation, path: Path) -> None:
    size = len(evaluation.labels)
    figure, axes = new_figure((2 + 1.1 * size, 1.6 + 1.0 * size))
    image = axes.imshow(evaluation.confusion, cmap="Blues")
    axes.set_xticks(range(size), labels=evaluation.labels, rotation=45, ha="right")
    axes.set_yticks(range(size), labels=evaluation.labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title("Confusion matrix (test split)")
    peak = max(max(row) for row in evaluation.confusion) or 1
    for i, row in enumerate(evaluation.confusion):
        for j, count in enumerate(row):
            axes.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    figure.colorbar(image, ax=axes)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
