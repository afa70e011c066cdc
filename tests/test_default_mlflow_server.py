"""Every user path against a plain `mlflow server` in its default configuration (issue 21, defect 13).

Since MLflow 2.0 a server proxies artifacts unless told otherwise: an experiment's artifact location
is `mlflow-artifacts:/<id>`, and clients upload and download through the server. MLflow 2.18, the
Synapse runtime's, resolves such a location against the *global* tracking URI, whatever client
holds it (mlflow/store/artifact/mlflow_artifacts_repo.py, MlflowArtifactsRepository.__init__): a
job whose URI was never made global stopped at its first upload with exit 3. This module runs in
both environments (RUNTIME_TESTS in the Makefile).
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from synapse_ml_track.tracking import registry

from support import EXPECTED_ARTIFACTS, MlflowServer

GRID = (
    "--set", "model.search.params={regParam: [0.0, 0.3]}",
    "--set", "model.search.folds=2",
    "--set", "model.search.parallelism=2",
)  # fmt: skip


def stored_artifacts(server: MlflowServer, experiment_id: str, run_id: str) -> set[str]:
    """What the server wrote under its --artifacts-destination for a run: the top-level names."""
    run_dir = server.log_path.parent / "artifacts" / experiment_id / run_id / "artifacts"
    return {path.name for path in run_dir.iterdir()} if run_dir.is_dir() else set()


def test_every_user_path_against_a_server_in_its_default_configuration(
    run_cli, default_mlflow_server, monkeypatch, tmp_path
):
    server = default_mlflow_server
    suffix = uuid.uuid4().hex[:8]
    experiment, model = f"default-server-{suffix}", f"default-server-{suffix}"
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({
        "tracking": {"uri": server.uri, "experiment_name": experiment, "registered_model_name": model},
    }))  # fmt: skip

    def cli(*args: str):
        return run_cli(*args[:1], "--config", str(config), *args[1:])

    checked = cli("check")
    assert checked.exit_code == 0, checked.stderr
    client = MlflowClient(server.uri, server.uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    assert client.get_experiment(experiment_id).artifact_location == f"mlflow-artifacts:/{experiment_id}"

    first = cli("train")
    assert first.exit_code == 0, first.stderr
    assert first.summary["status"] == "registered" and first.summary["model_version"] == "1"
    assert stored_artifacts(server, experiment_id, first.summary["run_id"]) == EXPECTED_ARTIFACTS

    # Compared with the champion, downloaded through the server: the same data and seed, so not better.
    equal = cli("train", "--set", "gate.compare_to_champion=true")
    assert equal.exit_code == 0, equal.stderr
    assert (equal.summary["status"], equal.summary["model_version"], equal.summary["promoted"]) == (
        "registered",
        "2",
        False,
    )
    assert "does not beat the champion" in equal.summary["reason"]

    searched = cli("train", *GRID, "--no-register")
    assert searched.exit_code == 0, searched.stderr
    assert "search" in stored_artifacts(server, experiment_id, searched.summary["run_id"])

    # A pipeline activity fails at registration, then is retried with the same run key.
    real_register = registry.register

    def unavailable(*args, **kwargs):
        raise MlflowException("registry briefly unavailable")

    monkeypatch.setattr(registry, "register", unavailable)
    keyed = ("train", "--run-key", f"pipeline-{suffix}", "--model-type", "random_forest", "--param", "numTrees=5")
    interrupted = cli(*keyed)
    assert interrupted.exit_code == 3 and "the trained model and metrics are saved at" in interrupted.error_line
    monkeypatch.setattr(registry, "register", real_register)
    resumed = cli(*keyed)
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.summary["status"] == "registered" and resumed.summary["model_version"] == "3"
    runs_with_the_key = [
        run.info.run_id
        for run in client.search_runs([experiment_id])
        if run.data.tags.get("smt.run_key") == f"pipeline-{suffix}"
    ]
    assert runs_with_the_key == [resumed.summary["run_id"]]  # the interrupted run, resumed
    again = cli(*keyed)
    assert again.summary["status"] == "reused" and again.summary["run_id"] == resumed.summary["run_id"]

    scores = tmp_path / "scores"
    scored = cli("score", "--output-path", str(scores), "--output-format", "parquet", "--run-key", f"score-{suffix}")
    assert scored.exit_code == 0, scored.stderr
    champion = client.get_model_version_by_alias(model, "champion").version
    assert scored.summary["model_version"] == champion and scored.summary["rows_scored"] > 300
    assert set(pd.read_parquet(scores)["model_version"]) == {champion}

    report_dir = tmp_path / "report"
    reported = cli("report", "--experiment", experiment, "--model-name", model, "--output-dir", str(report_dir))
    assert reported.exit_code == 0, reported.stderr
    table = pd.read_csv(report_dir / "runs.csv", dtype=str)
    assert len(table) == 4  # first, equal, the search and the resumed run (counted once)
    assert set(table["model_version"].fillna("")) == {"1", "2", "3", ""}
    assert Path(reported.summary["files"]["plot"]).is_file()
