"""Quality gate, champion alias and idempotent reruns, against a real MLflow server."""

from __future__ import annotations

import threading
import time

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from synapse_ml_track.redaction import Redactor
from synapse_ml_track.tracking import registry
from synapse_ml_track.tracking.limits import limits_for
from synapse_ml_track.tracking.runs import RunTracker
from synapse_ml_track.vocabulary import JOB_TAG, LEASE_TAG, RUN_KEY_TAG, TRAIN_JOB

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

    # The champion reads columns this challenger leaves out, so it cannot be scored on the challenger's
    # test split: not beaten, so not promoted, and the reason says why and how to promote anyway.
    fewer = train(run_cli, mlflow_server, experiment, model, "--numeric-features", "body_mass_g")
    assert fewer.exit_code == 0, fewer.stderr
    assert (fewer.summary["status"], fewer.summary["model_version"], fewer.summary["promoted"]) == (
        "registered", "4", False
    )  # fmt: skip
    assert "not compared with the champion: version 2 reads bill_length_mm, bill_depth_mm" in fewer.summary["reason"]
    assert "--no-compare-to-champion promotes it" in fewer.summary["reason"]
    assert client.get_model_version_by_alias(model, "champion").version == "2"


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


def test_two_trainings_of_one_pipeline_run_each_train_and_each_retry_finds_its_own(run_cli, mlflow_server):
    """A ForEach over regions: every training activity gets the same @pipeline().RunId as its run key.
    The second reported the first's run ("reused", exit 0) and its own model was never trained."""
    experiment = unique("foreach")
    activities = [(unique("region-a"), ()), (unique("region-b"), ("--model-type", "random_forest"))]

    def each(*extra: str) -> list:
        return [train(run_cli, mlflow_server, experiment, model, "--run-key", "pipeline-43", *args, *extra)
                for model, args in activities]  # fmt: skip

    first = each()
    assert [(r.exit_code, r.summary["status"]) for r in first] == [(0, "registered")] * 2, first[1].stderr
    retried = each()
    assert [r.summary["status"] for r in retried] == ["reused"] * 2
    assert [r.summary["run_id"] for r in retried] == [r.summary["run_id"] for r in first]
    assert len({r.summary["run_id"] for r in first}) == 2
    client = MlflowClient(mlflow_server.uri)
    assert [len(client.search_model_versions(f"name='{model}'")) for model, _ in activities] == [1, 1]


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


# ---- two jobs of one run key at once (tracking/leases.py) --------------------------------------------


def _live_attempt(uri: str, experiment: str, run_key: str, lease_seconds: float) -> RunTracker:
    """What a job of this run key leaves while it runs: its training run, with its lease renewed."""
    client = MlflowClient(uri)
    experiment_id = client.create_experiment(experiment)
    tags = {RUN_KEY_TAG: run_key, JOB_TAG: TRAIN_JOB}
    return RunTracker.start(client, experiment_id, None, tags, limits_for(uri), Redactor(), lease_seconds=lease_seconds)


def test_a_rerun_writes_nothing_into_a_run_another_job_still_writes_and_resumes_it_once_ended(run_cli, mlflow_server):
    """Seen in the soak: a rerun started three seconds after the job it reruns resumed the live run, and
    both logged its metrics. The live job here renews a 3 s lease for 15 s (so renewals are what keeps
    it live), then fails; the rerun must write nothing before that, then resume the run and finish it."""
    experiment, model = unique("live"), unique("live-model")
    live = _live_attempt(mlflow_server.uri, experiment, "activity-3", lease_seconds=3)
    client = MlflowClient(mlflow_server.uri)
    seen_while_live: list = []

    def end_the_live_job() -> None:
        time.sleep(15)  # the rerun's first look comes well before, even on a loaded machine
        seen_while_live.append(client.get_run(live.run_id).data)
        live.fail("the other job's own failure")

    ender = threading.Thread(target=end_the_live_job)
    ender.start()
    rerun = train(run_cli, mlflow_server, experiment, model, "--run-key", "activity-3")
    ender.join()
    assert f"run {live.run_id} is running in another job; waiting" in rerun.stderr
    before = seen_while_live[0]
    assert (before.params, before.metrics) == ({}, {}), "the rerun wrote into a run another job still wrote"
    assert rerun.exit_code == 0, rerun.stderr
    assert rerun.summary["run_id"] == live.run_id and rerun.summary["model_version"] == "1"
    run = client.get_run(live.run_id)
    assert run.info.status == "FINISHED" and "smt.error" not in run.data.tags
    assert len(client.search_runs([run.info.experiment_id])) == 1


def test_a_rerun_takes_over_a_run_whose_job_stopped_renewing_its_lease(run_cli, mlflow_server):
    """A killed job leaves its run RUNNING with a lease that is no longer renewed: the rerun waits only
    until it expires, then resumes the run under its own lease."""
    experiment, model = unique("killed"), unique("killed-model")
    client = MlflowClient(mlflow_server.uri)
    experiment_id = client.create_experiment(experiment)
    lease = f"killedjob {time.time() + 12:.0f}"  # expires after the rerun's first look
    killed = client.create_run(experiment_id, tags={RUN_KEY_TAG: "activity-4", JOB_TAG: TRAIN_JOB, LEASE_TAG: lease})
    rerun = train(run_cli, mlflow_server, experiment, model, "--run-key", "activity-4")
    assert rerun.exit_code == 0, rerun.stderr
    assert "is running in another job; waiting" in rerun.stderr
    assert rerun.summary["run_id"] == killed.info.run_id
    run = client.get_run(killed.info.run_id)
    assert run.info.status == "FINISHED" and not run.data.tags[LEASE_TAG].startswith("killedjob ")


def test_a_rerun_that_outwaits_live_run_wait_stops_in_one_line_and_touches_nothing(run_cli, mlflow_server):
    experiment, model = unique("held"), unique("held-model")
    live = _live_attempt(mlflow_server.uri, experiment, "activity-5", lease_seconds=60)
    try:
        rerun = train(
            run_cli, mlflow_server, experiment, model, "--run-key", "activity-5", "--set", "tracking.live_run_wait=1"
        )  # fmt: skip
        assert rerun.exit_code == 6, rerun.stderr
        assert rerun.error_line == (
            f"error: run key activity-5: run {live.run_id} is still running in another job after 1 s of waiting "
            "(tracking.live_run_wait); let that job end, then run this again"
        )
        run = MlflowClient(mlflow_server.uri).get_run(live.run_id)
        assert run.info.status == "RUNNING" and (run.data.params, run.data.metrics) == ({}, {})
        assert len(MlflowClient(mlflow_server.uri).search_runs([run.info.experiment_id])) == 1
    finally:
        live.finish()
