"""Regression metrics from one aggregation over the test predictions, and the residual plots."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from synapse_ml_track.plots import new_figure
from synapse_ml_track.spark.evaluation import write_weights
from synapse_ml_track.spark.session import one_row

PLOT_POINTS = 2000  # test rows drawn in the plots; the metrics use every row


@dataclass
class RegressionEvaluation:
    metrics: dict[str, float]
    points: pd.DataFrame  # actual and predicted values of up to PLOT_POINTS test rows

    @property
    def all_metrics(self) -> dict[str, float]:
        return dict(self.metrics)

    def write(self, weights: dict | None, directory: Path) -> None:
        """Metrics JSON, residual and predicted-vs-actual plots, feature weights."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "regression_metrics.json").write_text(json.dumps(self.metrics, indent=2), encoding="utf-8")
        write_weights(weights, directory)
        plot_residuals(self.points, directory / "residuals.png")
        plot_predicted_vs_actual(self.points, directory / "predicted_vs_actual.png")


def evaluate_regression(
    predictions: DataFrame, label_col: str, prediction_col: str, seed: int, plot_points: int = PLOT_POINTS
) -> RegressionEvaluation:
    """rmse, mae, r2 and explained variance, as Spark's RegressionEvaluator defines them.

    Spark's RegressionEvaluator scans the predictions once per metric; the variances of the label
    and of the error hold all four. explained_variance is 1 - Var(error) / Var(label) (the usual
    fraction, as scikit-learn's explained_variance_score), not RegressionEvaluator's "var", which is
    an absolute variance of the predictions. Pass a cached DataFrame: the plot sample (up to
    `plot_points` rows; none when 0) reads it again.
    """
    row = one_row(predictions.select(*moment_columns(F.col(label_col), F.col(prediction_col))))
    metrics = metrics_from_moments(row.asDict())
    n = row["n"]
    if not n:
        return RegressionEvaluation(metrics, pd.DataFrame({"actual": [], "predicted": []}))
    sample = predictions.select(F.col(label_col).alias("actual"), F.col(prediction_col).alias("predicted"))
    if not plot_points:
        return RegressionEvaluation(metrics, sample.limit(0).toPandas())
    fraction = min(1.0, plot_points / n)
    points = (sample.sample(fraction=fraction, seed=seed) if fraction < 1 else sample).limit(plot_points).toPandas()
    return RegressionEvaluation(metrics, points)


def moment_columns(actual: Column, predicted: Column, prefix: str = "") -> list[Column]:
    """The aggregates the regression metrics come from, over the rows with both values: a select's
    columns, or an Observation's (scoring labelled data computes them while it writes)."""
    both = actual.isNotNull() & predicted.isNotNull()
    error = F.when(both, predicted - actual)
    return [
        F.count(error).alias(f"{prefix}n"),
        F.avg(error * error).alias(f"{prefix}mse"),
        F.avg(F.abs(error)).alias(f"{prefix}mae"),
        F.var_pop(F.when(both, actual)).alias(f"{prefix}label_variance"),
        F.var_pop(error).alias(f"{prefix}error_variance"),
    ]


def metrics_from_moments(row: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """rmse, mae, r2, explained_variance and the rows counted, from moment_columns' values."""
    n = row[f"{prefix}n"]
    if not n:
        return {"test_rows": 0.0}
    variance = row[f"{prefix}label_variance"]
    return {
        "rmse": math.sqrt(row[f"{prefix}mse"]),
        "mae": row[f"{prefix}mae"],
        "r2": 1 - row[f"{prefix}mse"] / variance if variance else math.nan,
        "explained_variance": 1 - row[f"{prefix}error_variance"] / variance if variance else math.nan,
        "test_rows": float(n),
    }


def plot_residuals(points: pd.DataFrame, path: Path) -> None:
    figure, axes = new_figure((6, 4.5))
    axes.scatter(points["predicted"], points["actual"] - points["predicted"], s=8, alpha=0.5)
    axes.axhline(0.0, color="tab:red", linewidth=1)
    axes.set_xlabel("predicted")
    axes.set_ylabel("residual (actual - predicted)")
    axes.set_title(f"Residuals (test split, {len(points)} rows)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def plot_predicted_vs_actual(points: pd.DataFrame, path: Path) -> None:
    figure, axes = new_figure((5.5, 5.5))
    axes.scatter(points["actual"], points["predicted"], s=8, alpha=0.5)
    if len(points):
        low = float(min(points["actual"].min(), points["predicted"].min()))
        high = float(max(points["actual"].max(), points["predicted"].max()))
        axes.plot([low, high], [low, high], color="tab:red", linewidth=1, label="predicted = actual")
        axes.legend(loc="upper left")
    axes.set_xlabel("actual")
    axes.set_ylabel("predicted")
    axes.set_title(f"Predicted vs actual (test split, {len(points)} rows)")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
