"""Quality gate, champion alias and idempotent reruns, against a real MLflow server."""

from __future__ import annotations

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from synapse_ml_track.tracking import registry

from support import train, unique


def test_gate_refuses_a_model_below_threshold_and_keeps_the_run(run_cli, mlflow_server):
    experiment, model = unique("gate"), unique("gated")
    result = train(run_cli, mlflow_server, experiment, model, "--set", "gate.min_metrics.f1=1.01")
    assert result.exit_code == 0, result.stderr
    summary = result.summary
    assert summary["status"] == "rejected" and summary["model_version"] is None
    assert "below threshold: f1" in summary["reason"]
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["smt.gate"] == "rejected" and "f1" in run.data.tags["smt.gate_reason"]
    assert client.search_model_versions(f"name='{model}'") == []

    strict = train(
        run_cli,
        mlflow_server,
        experiment,
        model,
        "--set",
        "gate.min_metrics.f1=1.01",
        "--set",
        "gate.fail_on_reject=true",
    )
    assert strict.exit_code == 5
    assert "model not registered: below threshold" in strict.error_line
    runs = client.search_runs([run.info.experiment_id])
    assert [r.info.status for r in runs] == ["FINISHED", "FINISHED"]
    assert client.search_model_versions(f"name='{model}'") == []


def test_alias_moves_only_when_the_challenger_beats_the_champion(run_cli, mlflow_server):
    experiment, model = unique("champion"), unique("champ")
    client = MlflowClient(mlflow_server.uri)
    weak = train(run_cli, mlflow_server, experiment, model, "--numeric-features", "body_mass_g", "--param", "maxIter=2")
    assert weak.exit_code == 0 and weak.summary["model_version"] == "1", weak.stderr
    assert client.get_model_version_by_alias(model, "champion").version == "1"

    strong = train(run_cli, mlflow_server, experiment, model)  # compared with the champion by default
    assert strong.exit_code == 0, strong.stderr
    assert (strong.summary["status"], strong.summary["promoted"]) == ("registered", True), strong.summary
    assert strong.summary["metrics"]["f1"] > weak.summary["metrics"]["f1"]
    assert client.get_model_version_by_alias(model, "champion").version == strong.summary["model_version"] == "2"

    equal = train(run_cli, mlflow_server, experiment, model)
    assert equal.exit_code == 0
    assert (equal.summary["status"], equal.summary["model_version"], equal.summary["promoted"]) == (
        "registered", "3", False
    )  # fmt: skip
    assert "does not beat the champion" in equal.summary["reason"]
    assert client.get_run(equal.summary["run_id"]).data.tags["smt.promotion"] == "not promoted"
    assert client.get_model_version_by_alias(model, "champion").version == "2"
    assert len(client.search_model_versions(f"name='{model}'")) == 3


def test_same_run_key_twice_leaves_one_run_and_one_version(run_cli, mlflow_server):
    experiment, model = unique("rerun"), unique("rerun-model")
    first = train(run_cli, mlflow_server, experiment, model, "--run-key", "pipeline-42")
    second = train(run_cli, mlflow_server, experiment, model, "--run-key", "pipeline-42")
    assert first.exit_code == second.exit_code == 0, second.stderr
    assert second.summary["status"] == "reused"
    assert second.summary["run_id"] == first.summary["run_id"]
    assert second.summary["model_version"] == first.summary["model_version"] == "1"
    client = MlflowClient(mlflow_server.uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    assert len(client.search_runs([experiment_id])) == 1
    assert len(client.search_model_versions(f"name='{model}'")) == 1

    forced = train(run_cli, mlflow_server, experiment, model, "--run-key", "pipeline-42", "--force")
    assert forced.summary["run_id"] != first.summary["run_id"] and forced.summary["model_version"] == "2"


def test_rerun_after_a_failure_resumes_the_same_run(run_cli, mlflow_server, monkeypatch):
    experiment, model = unique("resume"), unique("resume-model")
    real_register = registry.register

    def failing_register(*args, **kwargs):
        raise MlflowException("registry briefly unavailable")

    monkeypatch.setattr(registry, "register", failing_register)
    failed = train(run_cli, mlflow_server, experiment, model, "--run-key", "activity-7")
    assert failed.exit_code == 3 and "registry briefly unavailable" in failed.error_line
    assert "the trained model and metrics are saved at" in failed.error_line

    monkeypatch.setattr(registry, "register", real_register)
    resumed = train(run_cli, mlflow_server, experiment, model, "--run-key", "activity-7")
    assert resumed.exit_code == 0, resumed.stderr
    client = MlflowClient(mlflow_server.uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert [run.info.run_id for run in runs] == [resumed.summary["run_id"]]
    assert runs[0].info.status == "FINISHED" and "smt.error" not in runs[0].data.tags
    assert [v.version for v in client.search_model_versions(f"name='{model}'")] == ["1"]
