"""Regression metrics from one aggregation over the test predictions, and the residual plots."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pyspark.sql import DataFrame
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
    error = F.col(prediction_col) - F.col(label_col)
    row = one_row(
        predictions.select(
            F.count(F.lit(1)).alias("n"),
            F.avg(error * error).alias("mse"),
            F.avg(F.abs(error)).alias("mae"),
            F.var_pop(label_col).alias("label_variance"),
            F.var_pop(error).alias("error_variance"),
        )
    )
    n = row["n"]
    if not n:
        return RegressionEvaluation({"test_rows": 0.0}, pd.DataFrame({"actual": [], "predicted": []}))
    variance = row["label_variance"]
    metrics = {
        "rmse": math.sqrt(row["mse"]),
        "mae": row["mae"],
        "r2": 1 - row["mse"] / variance if variance else math.nan,
        "explained_variance": 1 - row["error_variance"] / variance if variance else math.nan,
        "test_rows": float(n),
    }
    sample = predictions.select(F.col(label_col).alias("actual"), F.col(prediction_col).alias("predicted"))
    if not plot_points:
        return RegressionEvaluation(metrics, sample.limit(0).toPandas())
    fraction = min(1.0, plot_points / n)
    points = (sample.sample(fraction=fraction, seed=seed) if fraction < 1 else sample).limit(plot_points).toPandas()
    return RegressionEvaluation(metrics, points)


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
