"""RunTracker against an in-process MLflow store (an sqlite file, no server): what a run holds after
the backend's limits are applied, and how many log_batch calls it cost.

The store cannot see our batching (MlflowClient.log_batch re-chunks to MLflow's own limits before
the store), so the client is wrapped to record each log_batch call: one call is one request to a
tracking server, as long as our limits are within MLflow's.
"""

from __future__ import annotations

import dataclasses
import uuid

import pytest
from mlflow.tracking import MlflowClient

from synapse_ml_track.redaction import MASK, Redactor
from synapse_ml_track.tracking.limits import AML_LIMITS, MLFLOW_LIMITS, Limits
from synapse_ml_track.tracking.runs import RunTracker
from synapse_ml_track.vocabulary import ATTEMPT_TAG, ERROR_TAG

from support import memory_dir, new_sqlite_store

pytestmark = pytest.mark.embedded_store

SECRET = "s3cr3t-value-of-the-service-principal"


class Recording:
    """The real client, with each create_run's tags and each log_batch call recorded."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client
        self.created_with: dict[str, str] = {}
        self.batches: list[dict[str, list]] = []

    def __getattr__(self, name: str):
        return getattr(self.client, name)

    def create_run(self, experiment_id, run_name=None, tags=None):
        self.created_with = dict(tags or {})
        return self.client.create_run(experiment_id, run_name=run_name, tags=tags)

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        self.batches.append({"metrics": list(metrics), "params": list(params), "tags": list(tags)})
        self.client.log_batch(run_id, metrics=metrics, params=params, tags=tags)

    def sizes(self, kind: str) -> list[int]:
        return [len(batch[kind]) for batch in self.batches]


@pytest.fixture(scope="module")
def store() -> MlflowClient:
    return MlflowClient(tracking_uri=new_sqlite_store(memory_dir("unit-store-")))


@pytest.fixture
def client(store) -> Recording:
    return Recording(store)


@pytest.fixture
def redactor() -> Redactor:
    redactor = Redactor()
    redactor.add(SECRET)
    return redactor


def start(client: Recording, limits: Limits, redactor: Redactor, tags=None) -> RunTracker:
    experiment_id = client.create_experiment(f"tracker-{uuid.uuid4().hex[:8]}")
    return RunTracker.start(client, experiment_id, "run", tags or {}, limits, redactor)


def stored(client: Recording, tracker: RunTracker):
    return client.get_run(tracker.run_id).data


def test_params_go_in_batches_of_the_backend_limit(client, redactor):
    tracker = start(client, Limits(params_per_batch=3), redactor)
    tracker.log_params({f"p{i}": i for i in range(7)})
    assert client.sizes("params") == [3, 3, 1]
    assert stored(client, tracker).params == {f"p{i}": str(i) for i in range(7)}


def test_mlflow_defaults_cost_one_call_per_hundred_params_and_thousand_metrics(client, redactor):
    tracker = start(client, MLFLOW_LIMITS, redactor)
    tracker.log_params({f"p{i:03}": i for i in range(250)})
    tracker.log_metrics({f"m{i:04}": i for i in range(1500)})
    assert client.sizes("params") == [100, 100, 50, 0, 0]
    assert client.sizes("metrics") == [0, 0, 0, 1000, 500]
    data = stored(client, tracker)
    assert (len(data.params), len(data.metrics)) == (250, 1500)


def test_metrics_go_in_batches_and_late_tags_with_the_first(client, redactor):
    tracker = start(client, Limits(metrics_per_batch=4), redactor)
    tracker.log_metrics({f"m{i}": i / 10 for i in range(10)}, tags={"smt.gate": "passed"})
    assert client.sizes("metrics") == [4, 4, 2]
    assert client.sizes("tags") == [1, 0, 0]
    data = stored(client, tracker)
    assert data.metrics == {f"m{i}": pytest.approx(i / 10) for i in range(10)}
    assert data.tags["smt.gate"] == "passed"


def test_late_tags_without_metrics_are_one_call(client, redactor):
    tracker = start(client, MLFLOW_LIMITS, redactor)
    tracker.log_metrics({}, tags={"smt.gate": "passed"})
    assert [(len(b["metrics"]), [t.key for t in b["tags"]]) for b in client.batches] == [(0, ["smt.gate"])]


def test_source_tags_come_after_creation_with_the_first_batch(client, redactor):
    tags = {"mlflow.source.name": "train.py", "mlflow.source.type": "JOB", "smt.job": "train"}
    tracker = start(client, MLFLOW_LIMITS, redactor, tags)
    assert set(client.created_with) == {"smt.job", ATTEMPT_TAG}  # AML drops source tags sent at creation
    assert client.batches == []
    tracker.log_params({"alpha": 1})
    tracker.log_metrics({"f1": 0.5})
    assert [sorted(t.key for t in b["tags"]) for b in client.batches] == [
        ["mlflow.source.name", "mlflow.source.type"],
        [],
    ]
    assert stored(client, tracker).tags["mlflow.source.name"] == "train.py"


def test_source_tags_are_sent_on_finish_when_nothing_else_was(client, redactor):
    tracker = start(client, MLFLOW_LIMITS, redactor, {"mlflow.source.name": "train.py"})
    tracker.finish()
    assert [[t.key for t in b["tags"]] for b in client.batches] == [["mlflow.source.name"]]
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.source.name"] == "train.py"


def test_aml_tag_cap_keeps_the_run_within_50_tags(client, redactor, caplog):
    tags = {f"smt.t{i:02}": "v" for i in range(60)}
    tracker = start(client, AML_LIMITS, redactor, tags)
    kept = [f"smt.t{i:02}" for i in range(44)]  # 50 - the attempt tag - 5 for MLflow's own
    assert set(client.created_with) == {*kept, ATTEMPT_TAG}
    assert "not logging: smt.t44, smt.t45" in caplog.text and "smt.t59" in caplog.text
    tracker.log_metrics({"f1": 0.5}, tags={"smt.late": "v"})  # no room left
    data = stored(client, tracker)
    assert "smt.late" not in data.tags and "smt.t44" not in data.tags
    assert len(data.tags) <= AML_LIMITS.tags_per_run


def test_aml_metric_name_cap_refuses_new_names_only(client, redactor, caplog):
    tracker = start(client, AML_LIMITS, redactor)
    tracker.log_metrics({f"m{i:02}": i for i in range(60)})
    tracker.log_metrics({"m00": 100.0, "m59": 100.0})
    data = stored(client, tracker)
    assert set(data.metrics) == {f"m{i:02}" for i in range(50)}
    assert data.metrics["m00"] == 100.0  # a name the run holds is still logged
    assert "allows 50 metric names a run; not logging metric m59" in caplog.text


def test_the_param_cap_counts_across_calls(client, redactor):
    tracker = start(client, Limits(params_per_run=3), redactor)
    tracker.log_params({"a": 1, "b": 2})
    tracker.log_params({"c": 3, "d": 4})
    assert stored(client, tracker).params == {"a": "1", "b": "2", "c": "3"}


def test_a_resumed_run_counts_what_it_already_holds(client, redactor):
    limits = Limits(metric_names_per_run=2, params_per_run=1)
    tracker = start(client, limits, redactor)
    tracker.log_params({"a": 1})
    tracker.log_metrics({"m1": 1.0, "m2": 2.0})
    tracker.fail("boom")
    assert client.get_run(tracker.run_id).data.tags[ERROR_TAG] == "boom"

    resumed = RunTracker.resume(client, client.get_run(tracker.run_id), limits, redactor)
    resumed.log_params({"b": 2})
    resumed.log_metrics({"m1": 10.0, "m3": 3.0})
    run = client.get_run(tracker.run_id)
    assert run.info.status == "RUNNING" and ERROR_TAG not in run.data.tags
    assert run.data.params == {"a": "1"}
    assert run.data.metrics == {"m1": 10.0, "m2": 2.0}


def test_long_names_are_shortened_and_long_values_cut(client, redactor, caplog):
    # MLflow cuts param values at 6000 itself (sqlite store): a tighter limit shows our own cut.
    limits = dataclasses.replace(AML_LIMITS, param_value_length=5000)
    tracker = start(client, limits, redactor, {"k" * 150: "v" * 1500})
    tracker.log_params({"p" * 300: "x" * 7000})
    tracker.log_metrics({"m" * 300: 1.0})
    tracker.set_tag("t" * 150, "w" * 1500)
    data = stored(client, tracker)
    shortened_tags = {k: v for k, v in data.tags.items() if k.startswith(("k" * 91, "t" * 91))}
    assert sorted(map(len, shortened_tags)) == [100, 100]
    assert sorted(shortened_tags.values()) == ["v" * 1000, "w" * 1000]
    [(param, value)] = data.params.items()
    assert (len(param), param[:241], value) == (250, "p" * 241, "x" * 5000)
    [metric] = data.metrics
    assert (len(metric), metric[:241]) == (250, "m" * 241)
    assert "name longer than 100 characters shortened" in caplog.text
    assert "name longer than 250 characters shortened" in caplog.text


def test_secrets_are_masked_in_tags_and_params(client, redactor):
    tracker = start(client, MLFLOW_LIMITS, redactor, {"smt.config": f"key={SECRET}"})
    tracker.log_params({"data.path": f"abfss://c@a.dfs.core.windows.net/x?sig={SECRET[:5]}xyz&se=1"})
    tracker.log_metrics({}, tags={"smt.note": f"late {SECRET}"})
    tracker.set_tag("smt.other", f"set {SECRET}")
    data = stored(client, tracker)
    assert data.tags["smt.config"] == f"key={MASK}"
    assert data.params["data.path"] == f"abfss://c@a.dfs.core.windows.net/x?sig={MASK}&se=1"
    assert (data.tags["smt.note"], data.tags["smt.other"]) == (f"late {MASK}", f"set {MASK}")


def test_params_equal_once_shortened_do_not_fail_the_batch(client, redactor):
    tracker = start(client, Limits(key_length=5), redactor)
    tracker.log_params({"abcdeX": 1, "abcdeY": 2})  # MLflow refuses duplicate param keys in a batch
    assert sorted(stored(client, tracker).params.values()) == ["1", "2"]


def test_metrics_and_tags_equal_once_shortened_are_kept_apart(client, redactor):
    limits = Limits(key_length=20, tag_key_length=20)
    tracker = start(client, limits, redactor, {"smt.long.tag.name.one": "a", "smt.long.tag.name.two": "b"})
    tracker.log_metrics({"eval.long.metric.name.auc": 0.9, "eval.long.metric.name.f1": 0.8})
    tracker.log_metrics({"eval.long.metric.name.auc": 0.95})  # the same name again: the same key
    data = stored(client, tracker)
    assert sorted(data.metrics.values()) == [pytest.approx(0.8), pytest.approx(0.95)]
    assert all(len(key) <= 20 for key in data.metrics)
    assert sorted(v for k, v in data.tags.items() if k.startswith("smt.long")) == ["a", "b"]
