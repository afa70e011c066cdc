"""Regression end to end, on data whose answer is known: y = 3·x1 − 2·x2 + effect(group) + noise.

The noise's standard deviation is NOISE, so no model can beat an rmse of about NOISE, and a model
that finds the relation explains all of the label's variance but the noise's: r2 ≈ 1 − NOISE² /
Var(y) ≈ 0.99 here. A wrong fit (a constant, a dropped feature) has r2 below 0.8.
"""

from __future__ import annotations

import mlflow
import mlflow.pyfunc
import numpy as np
import pandas as pd
import pytest
from mlflow.models import get_model_info
from mlflow.tracking import MlflowClient
from pyspark.ml.evaluation import RegressionEvaluator

from synapse_ml_track.spark.regression_evaluation import evaluate_regression
from synapse_ml_track.vocabulary import ERROR_TAG

from linear_data import EFFECT, NOISE, linear_rows
from support import train as tracked_train


@pytest.fixture(scope="module")
def linear_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("linear") / "linear.csv"
    linear_rows(800, seed=7).to_csv(path, index=False)
    return path


def train(run_cli, server, experiment, data, *extra):
    return tracked_train(
        run_cli, server, experiment, experiment, "--input", str(data), "--label", "y", "--task", "regression", *extra
    )


def test_linear_regression_finds_the_relation_and_logs_a_double_signature(run_cli, mlflow_server, linear_csv):
    result = train(run_cli, mlflow_server, "regression-linear", linear_csv)
    assert result.exit_code == 0, result.stderr
    summary = result.summary
    assert summary["status"] == "registered" and summary["model_version"] == "1"
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert (run.data.params["model.task"], run.data.params["model.type"]) == ("regression", "linear_regression")

    metrics = run.data.metrics
    assert {"rmse", "mae", "r2", "explained_variance", "test_rows", "train_rows"} <= set(metrics)
    assert not {"accuracy", "f1"} & set(metrics)
    assert metrics["r2"] > 0.97 and metrics["explained_variance"] > 0.97
    assert NOISE * 0.7 < metrics["rmse"] < NOISE * 1.3  # the noise, and only the noise, is left
    assert metrics["mae"] < metrics["rmse"]
    assert "rmse / r2:" in result.stdout

    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"residuals.png", "predicted_vs_actual.png", "regression_metrics.json", "coefficients.json", "model"} <= (
        artifacts
    )
    assert "confusion_matrix.png" not in artifacts
    coefficients = client.download_artifacts(run.info.run_id, "coefficients.json")
    weights = pd.read_json(coefficients, typ="series")
    assert weights["x1"] > 0 > weights["x2"] and weights["group=b"] > weights["group=a"] > weights["group=c"]

    # The signature says what the model answers: a number.
    mlflow.set_tracking_uri(mlflow_server.uri)  # unset again after the test (conftest.isolated_mlflow_uris)
    uri = "models:/regression-linear/1"
    (output,) = get_model_info(uri).signature.outputs.inputs
    assert (output.name, output.type.name) == ("prediction", "double")
    # Round trip through pyfunc: the predictions are the relation's values, give or take the noise.
    fresh = linear_rows(50, seed=99)
    predicted = mlflow.pyfunc.load_model(uri).predict(fresh[["x1", "x2", "group"]])
    truth = 3 * fresh.x1 - 2 * fresh.x2 + fresh.group.map(EFFECT)
    assert np.abs(np.asarray(predicted, dtype=float) - truth).max() < 4 * NOISE


@pytest.mark.parametrize(
    ("model_type", "params"),
    [("random_forest", ["--param", "numTrees=10", "--param", "maxDepth=6"]), ("gbt", ["--param", "maxIter=15"])],
)
def test_tree_regressors_learn_it_too(model_type, params, run_cli, mlflow_server, linear_csv):
    result = train(run_cli, mlflow_server, f"regression-{model_type}", linear_csv, "--model-type", model_type, *params)
    assert result.exit_code == 0, result.stderr
    run = MlflowClient(mlflow_server.uri).get_run(result.summary["run_id"])
    assert run.data.params["model.type"] == model_type
    assert run.data.metrics["r2"] > 0.7  # piecewise-constant fits of a plane: useful (a constant scores 0)
    assert "feature_importances.json" in {
        a.path for a in MlflowClient(mlflow_server.uri).list_artifacts(run.info.run_id)
    }


def test_gate_champion_scoring_and_report_for_a_regression(run_cli, mlflow_server, linear_csv, spark, tmp_path):
    experiment = "regression-lifecycle"
    strict = train(run_cli, mlflow_server, experiment, linear_csv, "--set", "gate.max_metrics.rmse=0.01")
    assert strict.exit_code == 0, strict.stderr
    assert strict.summary["status"] == "rejected"
    assert "above threshold: rmse" in strict.summary["reason"]

    # A heavily regularised model fits worse (higher rmse). It is the first, so it becomes the champion.
    weak = ("--param", "regParam=5.0")
    assert train(run_cli, mlflow_server, experiment, linear_csv, *weak).summary["model_version"] == "1"
    better = train(run_cli, mlflow_server, experiment, linear_csv)
    assert better.exit_code == 0, better.stderr
    assert (better.summary["model_version"], better.summary["promoted"]) == ("2", True)
    assert "beats the champion: rmse" in better.summary["reason"] and " < " in better.summary["reason"]
    # Lower rmse wins, though its r2, a score, is what a "higher is better" gate would have compared.
    worse = train(run_cli, mlflow_server, experiment, linear_csv, *weak)
    assert (worse.summary["status"], worse.summary["model_version"], worse.summary["promoted"]) == (
        "registered", "3", False
    )  # fmt: skip
    assert "does not beat the champion: rmse" in worse.summary["reason"] and " >= " in worse.summary["reason"]

    # Scoring with the champion: a number per row, no probabilities, the row it cannot score kept.
    fresh = linear_rows(40, seed=5)
    fresh.loc[3, "x2"] = None
    unseen = tmp_path / "unseen.csv"
    fresh.drop(columns=["y"]).to_csv(unseen, index=False)
    output = tmp_path / "scores"
    scored = run_cli(
        "score", "--tracking-uri", mlflow_server.uri, "--experiment-name", experiment,
        "--set", f"tracking.registered_model_name={experiment}", "--input", str(unseen), "--output-path", str(output),
    )  # fmt: skip
    assert scored.exit_code == 0, scored.stderr
    summary = scored.summary
    assert summary["model_version"] == "2"
    frame = spark.read.parquet(str(output)).toPandas()
    assert len(frame) == 40 and not [c for c in frame.columns if c.startswith("probability")]
    assert frame["prediction"].dtype == float
    assert frame.loc[frame["prediction"].isna(), "unscorable_reason"].tolist() == ["null in x2"]
    assert (summary["rows_in"], summary["rows_scored"], summary["predicted"]) == (40, 39, {})
    assert summary["prediction_stats"]["mean"] == pytest.approx(frame["prediction"].mean())
    run = MlflowClient(mlflow_server.uri).get_run(summary["run_id"])
    assert run.data.metrics["prediction_max"] == pytest.approx(frame["prediction"].max())
    assert summary["labelled"] is None  # no label column in the input: nothing to backtest

    # The same rows with their label: the model's errors, counted in the scoring pass (backtesting). The
    # label is the one the model was trained on (its run's data.label), not data.label's default, species.
    labelled_csv = tmp_path / "labelled.csv"
    fresh.to_csv(labelled_csv, index=False)
    backtest = run_cli(
        "score", "--tracking-uri", mlflow_server.uri, "--experiment-name", experiment,
        "--set", f"tracking.registered_model_name={experiment}",
        "--input", str(labelled_csv), "--output-path", str(tmp_path / "backtest"),
    )  # fmt: skip
    assert backtest.exit_code == 0, backtest.stderr
    errors = spark.read.parquet(str(tmp_path / "backtest")).toPandas().dropna(subset=["prediction"])
    labelled = backtest.summary["labelled"]
    assert labelled["rows"] == 39
    assert labelled["rmse"] == pytest.approx(float(np.sqrt(((errors["prediction"] - errors["y"]) ** 2).mean())))
    assert labelled["mae"] == pytest.approx(float((errors["prediction"] - errors["y"]).abs().mean()))
    assert labelled["r2"] > 0.97
    metrics = MlflowClient(mlflow_server.uri).get_run(backtest.summary["run_id"]).data.metrics
    assert metrics["labelled_rmse"] == pytest.approx(labelled["rmse"]) and metrics["labelled_rows"] == 39

    # The report ranks by rmse (the metric of the runs' task), lowest first.
    report = run_cli(
        "report", "--tracking-uri", mlflow_server.uri, "--experiment-name", experiment,
        "--model-name", experiment, "--output-dir", str(tmp_path / "report"),
    )  # fmt: skip
    assert report.exit_code == 0, report.stderr
    table = pd.read_csv(tmp_path / "report" / "runs.csv")
    assert len(table) == 4 and list(table["rmse"]) == sorted(table["rmse"])
    assert {"r2", "mae", "explained_variance"} <= set(table.columns)
    assert report.summary["metric"] == "rmse" and report.summary["best_value"] == pytest.approx(table.loc[0, "rmse"])
    # Drift over time: the two scoring runs above, oldest first, each feature's PSI as logged.
    drift = pd.read_csv(tmp_path / "report" / "drift.csv")
    assert list(drift["run_id"]) == [summary["run_id"], backtest.summary["run_id"]]
    assert {"x1", "x2", "group", "psi_max", "drift", "model_version"} <= set(drift.columns)
    assert drift.loc[1, "x1"] == pytest.approx(backtest.summary["drift"]["features"]["x1"]["psi"], abs=1e-6)
    assert (tmp_path / "report" / "drift.png").stat().st_size > 0


def test_a_worse_model_is_registered_but_does_not_take_the_champion(run_cli, mlflow_server, linear_csv, tmp_path):
    """As a new user would, with the defaults: a linear regression first, then a random forest that does
    worse on the same test split. It is registered, the run says why it was not promoted, and the
    champion (which the score job loads by default) stays the linear one."""
    experiment = "regression-champion-defaults"
    client = MlflowClient(mlflow_server.uri)
    linear = train(run_cli, mlflow_server, experiment, linear_csv)
    assert linear.exit_code == 0, linear.stderr
    assert linear.summary["model_version"] == "1"
    assert client.get_model_version_by_alias(experiment, "champion").version == "1"

    forest = train(run_cli, mlflow_server, experiment, linear_csv, "--model-type", "random_forest")
    assert forest.exit_code == 0, forest.stderr
    summary = forest.summary
    assert forest.summary["metrics"]["rmse"] > linear.summary["metrics"]["rmse"]
    assert client.get_model_version_by_alias(experiment, "champion").version == "1"
    assert (summary["status"], summary["model_version"], summary["promoted"]) == ("registered", "2", False)
    assert "does not beat the champion: rmse" in summary["reason"] and "not promoted: " in forest.stdout
    tags = client.get_run(summary["run_id"]).data.tags
    assert (tags["smt.gate"], tags["smt.promotion"]) == ("passed", "not promoted")
    assert tags["smt.gate_reason"] == summary["reason"]
    assert linear.summary["promoted"] is True

    unseen = tmp_path / "unseen.csv"
    linear_rows(20, seed=3).drop(columns=["y"]).to_csv(unseen, index=False)
    scored = run_cli(
        "score", "--tracking-uri", mlflow_server.uri, "--experiment-name", experiment,
        "--set", f"tracking.registered_model_name={experiment}", "--input", str(unseen),
        "--output-path", str(tmp_path / "scores"),
    )  # fmt: skip
    assert scored.exit_code == 0, scored.stderr
    assert scored.summary["model_version"] == "1"

    # Turned off explicitly, the comparison is skipped and the worse model takes the alias.
    forced = train(run_cli, mlflow_server, experiment, linear_csv, "--model-type", "random_forest",
                   "--no-compare-to-champion")  # fmt: skip
    assert forced.exit_code == 0, forced.stderr
    assert (forced.summary["model_version"], forced.summary["promoted"], forced.summary["reason"]) == ("3", True, None)
    assert client.get_model_version_by_alias(experiment, "champion").version == "3"


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (pd.DataFrame({"x1": range(60), "y": ["low", "mid", "high"] * 20}), "a regression needs a numeric"),
        (pd.DataFrame({"x1": range(60), "y": [4.0] * 60}), "has a single value (4.0) in the training"),
    ],
    ids=["text label", "constant label"],
)
def test_a_label_no_regression_can_learn_is_refused_in_one_line(frame, message, run_cli, mlflow_server, tmp_path):
    path = tmp_path / "bad.csv"
    frame.to_csv(path, index=False)
    result = train(run_cli, mlflow_server, "regression-bad-label", path)
    assert result.exit_code != 0
    assert message in result.error_line
    client = MlflowClient(mlflow_server.uri)
    experiment = client.get_experiment_by_name("regression-bad-label")
    runs = client.search_runs([experiment.experiment_id], order_by=["attributes.start_time DESC"])
    assert runs[0].info.status == "FAILED" and message in runs[0].data.tags[ERROR_TAG]
    assert client.search_model_versions("name = 'regression-bad-label'") == []


def test_metrics_match_spark_s_own_evaluator(spark):
    rng = np.random.default_rng(3)
    label = rng.normal(10, 3, 500)
    predicted = label + rng.normal(0.5, 1.0, 500)  # biased: explained variance differs from r2
    frame = spark.createDataFrame(pd.DataFrame({"label": label, "prediction": predicted}))
    evaluation = evaluate_regression(frame, "label", "prediction", seed=1)
    for metric in ("rmse", "mae", "r2"):
        expected = RegressionEvaluator(labelCol="label", predictionCol="prediction", metricName=metric).evaluate(frame)
        assert evaluation.metrics[metric] == pytest.approx(expected, rel=1e-9)
    errors = predicted - label
    assert evaluation.metrics["explained_variance"] == pytest.approx(1 - errors.var() / label.var(), rel=1e-9)
    assert evaluation.metrics["explained_variance"] > evaluation.metrics["r2"]  # the bias counts against r2 only
    assert len(evaluation.points) == 500
