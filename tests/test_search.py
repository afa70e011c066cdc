"""Hyperparameter search end to end: child runs per candidate, the best refitted, registered from the
parent, and an interrupted search resumed without refitting its finished candidates."""

from __future__ import annotations

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pyspark.ml.classification import LogisticRegression

from synapse_ml_track.config import SearchConfig
from synapse_ml_track.errors import ConfigError
from synapse_ml_track.spark import search as search_module
from synapse_ml_track.spark.search import candidates
from synapse_ml_track.tracking.search_runs import PARENT_TAG
from synapse_ml_track.vocabulary import CANDIDATE_TAG

from linear_data import linear_rows
from support import train, unique

GRID = (
    "--set",
    "model.search.params={regParam: [0.0, 0.3], elasticNetParam: [0.0, 1.0]}",
    "--set",
    "model.search.folds=2",
)


def children(client: MlflowClient, parent_id: str, experiment_id: str):
    return client.search_runs([experiment_id], f"tags.`{PARENT_TAG}` = '{parent_id}'")


def test_grid_search_gives_a_child_run_per_candidate_and_registers_the_best(run_cli, mlflow_server):
    experiment = unique("search-grid")
    result = train(run_cli, mlflow_server, experiment, experiment, *GRID, "--set", "model.search.parallelism=2")
    assert result.exit_code == 0, result.stderr
    summary = result.summary
    client = MlflowClient(mlflow_server.uri)
    parent = client.get_run(summary["run_id"])
    assert parent.info.status == "FINISHED"
    kids = children(client, parent.info.run_id, parent.info.experiment_id)
    assert len(kids) == 4 and {k.info.status for k in kids} == {"FINISHED"}
    assert {k.data.tags["smt.job"] for k in kids} == {"search-candidate"}
    grid = {(k.data.params["estimator.regParam"], k.data.params["estimator.elasticNetParam"]) for k in kids}
    assert grid == {("0.0", "0.0"), ("0.0", "1.0"), ("0.3", "0.0"), ("0.3", "1.0")}
    for kid in kids:
        assert {"f1", "f1_std", "accuracy", "accuracy_std"} <= set(kid.data.metrics)
        assert 0.0 <= kid.data.metrics["f1_std"] < 0.2

    # The best by mean validation f1 is what the parent refitted, tested, logged and registered.
    best = max(kids, key=lambda k: (k.data.metrics["f1"], -int(k.data.params["candidate.index"])))
    assert parent.data.params["best.regParam"] == best.data.params["estimator.regParam"]
    assert parent.data.params["best.elasticNetParam"] == best.data.params["estimator.elasticNetParam"]
    # The parent's estimator.* params are the refitted model's, not the estimator's before the search.
    for name in ("regParam", "elasticNetParam"):
        assert parent.data.params[f"estimator.{name}"] == best.data.params[f"estimator.{name}"]
    assert parent.data.params["search.candidates"] == "4" and parent.data.params["search.metric"] == "f1"
    assert parent.data.metrics["validation_f1"] == pytest.approx(best.data.metrics["f1"])
    assert {"f1", "accuracy", "test_rows"} <= set(parent.data.metrics)  # the held-out test split, as always
    (version,) = client.search_model_versions(f"name = '{experiment}'")
    assert version.run_id == parent.info.run_id and summary["model_version"] == "1"

    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "search")}
    assert artifacts == {"search/candidates.csv", "search/candidates.png"}
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "search/candidates.csv"))
    assert len(table) == 4 and table["best"].sum() == 1
    assert set(table["run_id"]) == {k.info.run_id for k in kids}

    # The runs report compares training runs: the candidates are not among them.
    report = run_cli(
        "report", "--tracking-uri", mlflow_server.uri, "--experiment-name", experiment, "--output-dir", "report"
    )
    assert report.exit_code == 0, report.stderr
    assert report.summary["runs"] == 1 and report.summary["best_run_id"] == parent.info.run_id


def test_an_interrupted_search_resumes_without_refitting_finished_candidates(run_cli, mlflow_server, monkeypatch):
    experiment = unique("search-resume")
    real = search_module.validation_metrics
    fitted: list[int] = []

    def failing_at_the_third(pipeline, estimator, candidate, splits, evaluate):
        if candidate.index == 2:
            raise RuntimeError("executor lost (injected)")
        fitted.append(candidate.index)
        return real(pipeline, estimator, candidate, splits, evaluate)

    monkeypatch.setattr(search_module, "validation_metrics", failing_at_the_third)
    failed = train(run_cli, mlflow_server, experiment, experiment, *GRID, "--run-key", "sweep-1")
    assert failed.exit_code == 1 and "executor lost (injected)" in failed.error_line
    assert fitted == [0, 1]
    client = MlflowClient(mlflow_server.uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    (parent,) = client.search_runs([experiment_id], "tags.`smt.job` = 'train'")
    assert parent.info.status == "FAILED"
    first_kids = {k.data.tags[CANDIDATE_TAG]: k for k in children(client, parent.info.run_id, experiment_id)}
    assert sorted(k.info.status for k in first_kids.values()) == ["FAILED", "FINISHED", "FINISHED"]
    assert client.search_model_versions(f"name = '{experiment}'") == []  # nothing half-registered

    fitted.clear()
    monkeypatch.setattr(search_module, "validation_metrics", lambda *args: fitted.append(args[2].index) or real(*args))
    resumed = train(run_cli, mlflow_server, experiment, experiment, *GRID, "--run-key", "sweep-1")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.summary["run_id"] == parent.info.run_id and resumed.summary["model_version"] == "1"
    assert fitted == [2, 3]  # the finished ones were not fitted again
    kids = children(client, parent.info.run_id, experiment_id)
    finished = {k.data.tags[CANDIDATE_TAG]: k.info.run_id for k in kids if k.info.status == "FINISHED"}
    assert len(finished) == 4
    kept = {key for key, run in first_kids.items() if run.info.status == "FINISHED"}
    assert all(finished[key] == first_kids[key].info.run_id for key in kept)  # the same child runs, reused
    table = pd.read_csv(client.download_artifacts(parent.info.run_id, "search/candidates.csv"))
    assert sorted(table.loc[table["reused"], "candidate"]) == [0, 1]


def test_a_random_search_over_a_regression_with_a_validation_split(run_cli, mlflow_server, tmp_path):
    data = tmp_path / "linear.csv"
    linear_rows(300, seed=11).to_csv(data, index=False)
    experiment = unique("search-random")
    result = train(
        run_cli, mlflow_server, experiment, experiment, "--input", str(data), "--label", "y", "--task", "regression",
        "--set", "model.search.method=random", "--set", "model.search.samples=3",
        "--set", "model.search.validation=train_validation_split",
        "--set", "model.search.params={regParam: {low: 0.0001, high: 10, log: true}, maxIter: [5, 50]}",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    client = MlflowClient(mlflow_server.uri)
    parent = client.get_run(result.summary["run_id"])
    kids = children(client, parent.info.run_id, parent.info.experiment_id)
    assert len(kids) == 3
    assert all(0.0001 <= float(k.data.params["estimator.regParam"]) <= 10 for k in kids)
    assert not any("rmse_std" in k.data.metrics for k in kids)  # one validation split: no spread to report
    best = min(kids, key=lambda k: k.data.metrics["rmse"])  # rmse: lower is better
    assert parent.data.params["best.regParam"] == best.data.params["estimator.regParam"]
    assert parent.data.params["search.metric"] == "rmse" and parent.data.params["search.folds"] == "1"


def test_candidates_are_seeded_and_checked_before_anything_is_fitted(spark):
    estimator = LogisticRegression()
    grid = SearchConfig(params={"regParam": [0.0, 0.1, 1.0], "maxIter": [10, 20]})
    assert [c.params for c in candidates(grid, estimator, seed=1)][:2] == [
        {"maxIter": 10, "regParam": 0.0}, {"maxIter": 10, "regParam": 0.1},
    ]  # fmt: skip
    assert len(candidates(grid, estimator, seed=1)) == 6
    sampled = SearchConfig(params=grid.params, method="random", samples=4)
    assert candidates(sampled, estimator, seed=1) == candidates(sampled, estimator, seed=1)
    assert len({c.key for c in candidates(sampled, estimator, seed=1)}) == 4  # drawn without repeats
    assert candidates(sampled, estimator, seed=1) != candidates(sampled, estimator, seed=2)
    ranged = SearchConfig(params={"regParam": {"low": 0.01, "high": 1.0, "log": True}}, method="random", samples=5)
    assert all(0.01 <= c.params["regParam"] <= 1.0 for c in candidates(ranged, estimator, seed=3))


@pytest.mark.parametrize(
    ("params", "method", "message"),
    [
        ({"regParm": [0.1]}, "grid", "model.search.params.regParm is not a parameter of LogisticRegression"),
        ({"regParam": {"low": 0, "high": 1}}, "grid", "ranges need model.search.method=random"),
        ({"regParam": {"low": 0, "high": 1, "log": True}}, "random", "a log range needs low > 0"),
        ({"maxIter": ["many"]}, "grid", "model.search.params.maxIter='many' is not valid"),
        ({"maxIter": [10, -1]}, "grid", "model.search.params.maxIter=-1 is not valid for LogisticRegression"),
        ({"elasticNetParam": {"low": 0.5, "high": 2}}, "random", "model.search.params.elasticNetParam=1."),
        ({"regParam": []}, "grid", "must list values"),
    ],
)
def test_a_bad_search_is_refused_in_one_line(params, method, message, spark):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        candidates(SearchConfig(params=params, method=method), LogisticRegression(), seed=1)
