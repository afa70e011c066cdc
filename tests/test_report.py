"""The runs report against a real MLflow server: table matches the runs, plot is a PNG, AML-safe searches."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from PIL import Image

from synapse_ml_track.tracking import report

from support import unique

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_report_matches_the_runs_and_their_model_versions(run_cli, mlflow_server, tmp_path, monkeypatch):
    experiment, model = unique("report"), unique("reported")
    common = ("--tracking-uri", mlflow_server.uri, "--experiment-name", experiment)
    trainings = [
        run_cli("train", *common, "--registered-model-name", model),
        run_cli(
            "train",
            *common,
            "--registered-model-name",
            model,
            "--model-type",
            "random_forest",
            "--param",
            "numTrees=3",
            "--no-compare-to-champion",
        ),  # fmt: skip
    ]
    assert all(t.exit_code == 0 for t in trainings), trainings[-1].stderr
    client = MlflowClient(mlflow_server.uri)
    experiment_id = trainings[0].summary["experiment_id"]
    # A scoring run in the same experiment is not a training run to compare.
    client.create_run(experiment_id, tags={"smt.job": "score"})
    runs = {r.info.run_id: r for r in client.search_runs([experiment_id]) if r.data.tags.get("smt.job") != "score"}
    searches = []
    search_runs = MlflowClient.search_runs
    monkeypatch.setattr(
        MlflowClient, "search_runs", lambda self, *a, **kw: searches.append(kw) or search_runs(self, *a, **kw)
    )
    monkeypatch.setattr(report, "PAGE_SIZE", 2)

    result = run_cli(
        "report",
        "--tracking-uri",
        mlflow_server.uri,
        "--experiment",
        experiment,
        "--model-name",
        model,
        "--output-dir",
        "out",
    )

    assert result.exit_code == 0, result.stderr
    table = pd.read_csv(tmp_path / "out" / "runs.csv", dtype={"model_version": str})
    assert set(table.run_id) == set(runs) == {t.summary["run_id"] for t in trainings}
    for row in table.itertuples():
        assert row.f1 == pytest.approx(runs[row.run_id].data.metrics["f1"])
        assert row.accuracy == pytest.approx(runs[row.run_id].data.metrics["accuracy"])
        assert row.model_type == runs[row.run_id].data.params["model.type"]
    assert list(table.f1) == sorted(table.f1, reverse=True)
    versions = {t.summary["run_id"]: t.summary["model_version"] for t in trainings}
    assert dict(zip(table.run_id, table.model_version, strict=True)) == versions
    assert dict(zip(table.model_version, table.aliases.fillna(""), strict=True)) == {"1": "", "2": "champion"}
    # AML serves neither ordering by metrics nor OR: the report pages through unordered searches,
    # once for the training runs and once for the scoring runs' drift.
    assert [s.get("page_token") is None for s in searches] == [True, False, True, False]
    assert all(not s.get("order_by") and " OR " not in s.get("filter_string", "").upper() for s in searches)

    markdown = (tmp_path / "out" / "runs.md").read_text()
    assert markdown.startswith("| run_id | run_name |") and all(run_id in markdown for run_id in runs)
    plot = tmp_path / "out" / "f1.png"
    assert plot.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width >= 500 and image.height >= 300
    summary = result.summary
    assert (summary["runs"], summary["metric"], summary["best_run_id"]) == (2, "f1", table.run_id[0])
    assert summary["files"]["plot"] == "out/f1.png"

    newest = run_cli(
        "report",
        "--tracking-uri",
        mlflow_server.uri,
        "--experiment",
        experiment,
        "--max-runs",
        "1",
        "--output-dir",
        "one",
    )
    assert newest.exit_code == 0, newest.stderr
    assert list(pd.read_csv(tmp_path / "one" / "runs.csv").run_id) == [trainings[1].summary["run_id"]]


def test_report_refuses_an_unknown_experiment_or_metric_without_creating_anything(run_cli, mlflow_server):
    client = MlflowClient(mlflow_server.uri)
    missing = unique("no-such-experiment")
    result = run_cli("report", "--tracking-uri", mlflow_server.uri, "--experiment", missing)
    assert result.exit_code == 2
    assert result.error_line == f"error: experiment '{missing}' not found at {mlflow_server.uri}"
    assert client.get_experiment_by_name(missing) is None

    experiment = unique("report-metric")
    run = client.create_run(client.create_experiment(experiment))
    client.log_metric(run.info.run_id, "accuracy", 0.9)
    result = run_cli("report", "--tracking-uri", mlflow_server.uri, "--experiment", experiment, "--metric", "auc")
    assert result.exit_code == 2
    assert result.error_line == f"error: no run of experiment '{experiment}' logged metric 'auc' (logged: accuracy)"


def test_the_metric_defaults_to_the_runs_task(run_cli, mlflow_server, tmp_path):
    """A regression experiment is ranked by rmse without --metric (it used to stop at "no run logged
    metric 'f1'"); a config that names the task and its gate metric still decides."""
    client = MlflowClient(mlflow_server.uri)
    experiment = unique("report-regression")
    experiment_id = client.create_experiment(experiment)
    for rmse, r2 in ((9.0, 0.5), (4.0, 0.9)):
        run = client.create_run(experiment_id, tags={"smt.job": "train"})
        client.log_param(run.info.run_id, "model.task", "regression")
        client.log_metric(run.info.run_id, "rmse", rmse)
        client.log_metric(run.info.run_id, "r2", r2)
    common = ("report", "--tracking-uri", mlflow_server.uri, "--experiment", experiment)

    result = run_cli(*common, "--output-dir", "by-task")
    assert result.exit_code == 0, result.stderr
    assert (result.summary["metric"], result.summary["best_value"]) == ("rmse", 4.0)
    assert (tmp_path / "by-task" / "rmse.png").is_file()

    configured = run_cli(*common, "--set", "model.task=regression", "--set", "gate.champion_metric=r2")
    assert configured.exit_code == 0, configured.stderr
    assert (configured.summary["metric"], configured.summary["best_value"]) == ("r2", 0.9)

    classifier = client.create_run(experiment_id, tags={"smt.job": "train"})
    client.log_param(classifier.info.run_id, "model.task", "classification")
    mixed = run_cli(*common, "--output-dir", "mixed")
    assert mixed.exit_code == 2
    assert mixed.error_line == (
        f"error: the runs of experiment '{experiment}' are of tasks classification, regression: "
        "choose the metric to rank them by with --metric"
    )
