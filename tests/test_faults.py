"""The job against a flaky tracking server: retried without duplicates, failing fast and clearly.

A fault-injecting proxy (tests/fault_proxy.py) on 127.0.0.1 sits in front of a real MLflow
server; each test scripts its faults. "The server dies" is the proxy dying: open connections are
reset and new ones refused, exactly what the job would see, while the real server behind it
stays up so the test can read what it holds. The client's retry waits are recorded and shortened
(the `retries` fixture), so the tests assert on the retry mechanism rather than on wall-clock
time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import types
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import mlflow.spark
import pytest
import urllib3.util.retry
from mlflow.tracking import MlflowClient

from synapse_ml_track.config import build_config
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.spark.pipeline import build_estimator
from synapse_ml_track.spark.training import config_params
from synapse_ml_track.tracking import http
from synapse_ml_track.tracking.limits import MLFLOW_LIMITS
from synapse_ml_track.tracking.retries import create_once
from synapse_ml_track.tracking.runs import RunTracker
from synapse_ml_track.vocabulary import CHAMPION_TAG, ERROR_TAG, JOB_TAG, LEASE_TAG, RUN_KEY_TAG, TRAIN_JOB

from fault_proxy import FaultProxy, Rule
from support import VENV_BIN, free_port
from support import train as tracked_train

pytestmark = pytest.mark.timeout(240)

LOG_BATCH = r"/runs/log-batch$"
PARAMS = '"params"'
METRICS = '"metrics"'
MAX_RETRIES = 5  # tracking.max_retries default
HTTP_SETTINGS = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER",
)


@dataclass
class RetryLog:
    """What urllib3's retry policy decided during a test."""

    attempts: list[tuple[str, str, object, object]] = field(default_factory=list)  # (method, url, budget left, cause)
    waits: list[float] = field(default_factory=list)  # seconds the policy asked to sleep
    elsewhere: list[tuple[str, str]] = field(default_factory=list)  # not tracking API calls (e.g. MLflow telemetry)


@pytest.fixture(autouse=True)
def http_settings_restored(monkeypatch):
    """The job exports its HTTP retry settings to the environment; undo that after each test."""
    for key in HTTP_SETTINGS:
        if key in os.environ:
            monkeypatch.setenv(key, os.environ[key])
        else:
            monkeypatch.delenv(key, raising=False)


@pytest.fixture
def retries(monkeypatch) -> RetryLog:
    """Record each failed attempt (urllib3's retry decision, made once per attempt) and each wait
    the job's retry policy (synapse_ml_track/tracking/http.py) or urllib3 asks for; wait at most 50 ms for real."""
    record = RetryLog()
    original = urllib3.util.retry.Retry.increment

    def increment(self, method=None, url=None, response=None, error=None, *args, **kwargs):
        cause = type(error).__name__ if error is not None else getattr(response, "status", None)
        if str(url).startswith("/api/2.0/mlflow/"):
            record.attempts.append((method, url, self.total, cause))
        else:
            record.elsewhere.append((method, url))
        return original(self, method, url, response, error, *args, **kwargs)

    def sleep(seconds: float) -> None:
        record.waits.append(seconds)
        time.sleep(min(seconds, 0.05))

    monkeypatch.setattr(urllib3.util.retry.Retry, "increment", increment)
    monkeypatch.setattr(urllib3.util.retry, "time", types.SimpleNamespace(sleep=sleep, time=time.time))
    monkeypatch.setattr(http, "time", types.SimpleNamespace(sleep=sleep))
    return record


@pytest.fixture
def proxy(mlflow_server):
    with FaultProxy(mlflow_server.uri) as running:
        yield running


def train(run_cli, uri: str, name: str, *extra: str):
    return tracked_train(run_cli, uri, name, name, "--run-name", name, *extra)


def expected_params() -> dict[str, str]:
    config = build_config(environ={})
    estimator = build_estimator(config.model.task, config.model.type, config.model.params, config.data.seed)
    return {key: str(value) for key, value in config_params(config, estimator).items()}


def assert_tracked_exactly_once(uri: str, name: str, summary: dict) -> None:
    """One finished run holding every param and metric once, and one READY champion version."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    assert [r.info.run_id for r in runs] == [summary["run_id"]], "a retried request created another run"
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params == expected_params()
    assert run.data.metrics == pytest.approx(summary["metrics"])
    histories = {key: len(client.get_metric_history(run.info.run_id, key)) for key in run.data.metrics}
    assert histories == {key: 1 for key in summary["metrics"]}, "a metric was stored more than once"
    assert len(run.inputs.dataset_inputs) == 1
    versions = client.search_model_versions(f"name='{name}'")
    assert [(v.version, v.run_id, v.status) for v in versions] == [("1", run.info.run_id, "READY")]
    assert client.get_model_version_by_alias(name, "champion").version == "1"


def assert_all_faults_fired(proxy: FaultProxy) -> None:
    unused = [rule for rule in proxy.rules if rule.used < rule.times]
    assert not unused, f"faults never triggered (the job's requests changed?): {unused}"


def saved_at(error_line: str) -> Path:
    assert "saved at " in error_line, error_line
    return Path(error_line.rsplit("saved at ", 1)[1].strip())


# ---------------------------------------------------------------------------------------------
# transient faults: the job completes and the run holds everything exactly once


def test_bursts_of_429_and_503_are_retried_and_logged_once(run_cli, proxy, mlflow_server, retries):
    proxy.add(
        Rule("respond", r"/runs/create$", status=429, retry_after="1", times=2),
        Rule("respond", LOG_BATCH, body_contains=PARAMS, status=503, times=3),
        Rule("respond", LOG_BATCH, body_contains=METRICS, status=429, times=2),
        Rule("respond", r"/model-versions/create$", status=503, times=2),
        Rule("respond", r"/registered-models/alias$", status=503, times=1),
    )
    result = train(run_cli, proxy.url, "faults-bursts")

    assert result.exit_code == 0, result.stderr
    assert_all_faults_fired(proxy)
    assert_tracked_exactly_once(mlflow_server.uri, "faults-bursts", result.summary)
    # Each injected answer cost exactly one retry, and the waits between them stayed short.
    assert len(proxy.faults()) == 10
    assert sorted(cause for *_, cause in retries.attempts) == sorted([429] * 4 + [503] * 6)
    assert len(retries.waits) <= 10 and max(retries.waits, default=0) <= 60


def test_dropped_connections_and_slow_responses_do_not_duplicate(run_cli, proxy, mlflow_server, retries):
    proxy.add(
        # the connection drops before the server sees the request
        Rule("drop", r"/runs/log-inputs$"),
        # the server applies the request, the response is lost: the retry repeats an applied request
        Rule("drop", LOG_BATCH, body_contains=METRICS, forward=True),
        # slow, but within the request timeout
        Rule("delay", LOG_BATCH, body_contains=PARAMS, delay=2),
        # slower than the timeout: the client gives up and retries; the original still arrives later
        Rule("delay", r"/runs/update$", delay=10),
    )
    result = train(run_cli, proxy.url, "faults-drops", "--set", "tracking.request_timeout=8")
    assert proxy.wait_idle(30)

    assert result.exit_code == 0, result.stderr
    assert_all_faults_fired(proxy)
    assert len(proxy.forwarded(r"POST .*/runs/log-batch$")) == 3  # params once, metrics twice
    assert len(proxy.forwarded(r"POST .*/runs/update$")) == 2
    assert_tracked_exactly_once(mlflow_server.uri, "faults-drops", result.summary)
    assert {cause for *_, cause in retries.attempts} <= {"ProtocolError", "ReadTimeoutError"}


# ---------------------------------------------------------------------------------------------
# the server is not there at the start: fail fast, clearly, leaving nothing behind


def test_server_refusing_connections_at_start_fails_at_once(run_cli, tmp_path, retries):
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    result = train(run_cli, uri, "faults-down")

    assert result.exit_code == 3
    assert result.error_line.startswith(f"error: cannot reach the MLflow tracking server at {uri}")
    assert "Traceback" not in result.stderr
    # The mechanism that bounds the wait: one attempt, and no backoff.
    assert len(retries.attempts) == 1 and retries.waits == []
    assert not (tmp_path / "mlruns").exists(), "nothing is written locally before the server answered"


def test_server_dying_at_the_first_request_fails_at_once(run_cli, proxy, mlflow_server, tmp_path, retries):
    proxy.add(Rule("die", r"/experiments/get-by-name$"))
    result = train(run_cli, proxy.url, "faults-dies-first")

    assert result.exit_code == 3
    assert result.error_line.startswith(f"error: cannot reach the MLflow tracking server at {proxy.url}")
    # The reset is asked about once more (a dropped connection may be a proxy restarting); the
    # second attempt is refused at once: nothing listens any more.
    assert len(proxy.snapshot()) == 1 and len(retries.attempts) <= 2 and retries.waits == []
    assert MlflowClient(mlflow_server.uri).get_experiment_by_name("faults-dies-first") is None
    assert not (tmp_path / "mlruns").exists()


def test_server_hanging_at_start_fails_after_the_preflight_budget(run_cli, proxy, mlflow_server, tmp_path, retries):
    proxy.add(Rule("delay", r"/experiments/get-by-name$", delay=5, times=5))
    budget = ("--set", "tracking.preflight_timeout=1", "--set", "tracking.preflight_budget=2.5")
    result = train(run_cli, proxy.url, "faults-hangs", *budget)

    assert result.exit_code == 3
    assert result.error_line == f"error: the MLflow tracking server at {proxy.url} did not answer in time"
    assert "Traceback" not in result.stderr
    # Asked again once, waiting twice as long, then the budget was spent; no sleep between the two.
    assert [cause for *_, cause in retries.attempts] == ["ReadTimeoutError"] * 2 and retries.waits == []
    assert not (tmp_path / "mlruns").exists()
    assert proxy.wait_idle(15)
    assert MlflowClient(mlflow_server.uri).get_experiment_by_name("faults-hangs") is None


def test_one_slow_answer_at_start_is_waited_out_within_the_preflight_budget(run_cli, proxy, mlflow_server, retries):
    """A workspace slow to answer once (a cold start, a busy moment) is not a dead one: the preflight
    asks again with a longer timeout. A 10 s preflight outlasted by one slow answer failed three of
    the soak's jobs."""
    proxy.add(Rule("delay", r"/experiments/get-by-name$", delay=3))
    result = train(run_cli, proxy.url, "faults-slow-once", "--set", "tracking.preflight_timeout=1")

    assert result.exit_code == 0, result.stderr
    assert [cause for *_, cause in retries.attempts] == ["ReadTimeoutError"]
    assert proxy.faults(), "the first answer was not slowed: the test saw nothing"


# ---------------------------------------------------------------------------------------------
# the server dies mid-run: non-zero exit, clear message, the result kept locally, nothing half-registered


def test_server_dying_after_training_keeps_the_result_locally(run_cli, proxy, mlflow_server, retries):
    proxy.add(Rule("die", LOG_BATCH, body_contains=METRICS))
    result = train(run_cli, proxy.url, "faults-dies-mid-run")

    assert result.exit_code == 3
    assert result.error_line.startswith(f"error: cannot reach the MLflow tracking server at {proxy.url}")
    # The trained model and its metrics are on disk, at the path the message prints.
    directory = saved_at(result.error_line)
    assert directory.is_absolute() and (directory / "model" / "MLmodel").is_file()
    metrics = json.loads((directory / "metrics.json").read_text())
    assert 0.9 <= metrics["accuracy"] <= 1.0 and "f1_Adelie" in metrics
    assert (directory / "evaluation" / "classification_report.json").is_file()
    assert mlflow.spark.load_model(str(directory / "model")).stages[-1].getLabels() == ["Adelie", "Chinstrap", "Gentoo"]
    # Nothing registered; the run never reached FINISHED.
    client = MlflowClient(mlflow_server.uri)
    assert client.get_run(directory.name).info.status == "RUNNING"
    assert client.search_model_versions("name='faults-dies-mid-run'") == []
    # Bounded: the failing call and the attempt to mark the run FAILED each used at most their retry budget.
    assert 0 < len(retries.attempts) <= 2 * (MAX_RETRIES + 1)


def test_server_dying_during_registration_leaves_no_version(run_cli, proxy, mlflow_server, retries):
    proxy.add(Rule("die", r"/model-versions/create$"))
    result = train(run_cli, proxy.url, "faults-dies-registering")

    assert result.exit_code == 3
    directory = saved_at(result.error_line)
    assert (directory / "model" / "MLmodel").is_file()
    client = MlflowClient(mlflow_server.uri)
    assert client.search_model_versions("name='faults-dies-registering'") == []
    run = client.get_run(directory.name)
    assert run.info.status == "RUNNING"
    # The model files a version would have pointed at were complete before registration began.
    assert (Path(run.info.artifact_uri.removeprefix("file://")) / "model" / "MLmodel").is_file()


# ---------------------------------------------------------------------------------------------
# faults that MLflow's own HTTP layer handles badly, and the library handles for it


def test_a_retry_after_beyond_the_bound_fails_at_once_instead_of_stalling(run_cli, proxy, mlflow_server, retries):
    proxy.add(Rule("respond", r"/runs/create$", status=429, retry_after="3600"))
    result = train(run_cli, proxy.url, "faults-retry-after", "--no-register")

    assert result.exit_code == 3
    assert result.error_line.startswith(f"error: the MLflow tracking server at {proxy.url} asked to wait 3600 s")
    assert "more than tracking.max_retry_wait (300 s)" in result.error_line
    assert retries.waits == [], f"waited {retries.waits} s"
    experiment = MlflowClient(mlflow_server.uri).get_experiment_by_name("faults-retry-after")
    assert MlflowClient(mlflow_server.uri).search_runs([experiment.experiment_id]) == []


def test_a_retry_after_within_the_bound_is_waited_for(run_cli, proxy, mlflow_server, retries):
    proxy.add(Rule("respond", r"/runs/create$", status=429, retry_after="7", times=3))
    result = train(run_cli, proxy.url, "faults-retry-after-7", "--no-register", "--set", "tracking.max_retries=1")

    assert result.exit_code == 0, result.stderr
    assert retries.waits == [7, 7, 7]  # three throttled answers, each waited as asked: not counted as failures
    assert_all_faults_fired(proxy)
    client = MlflowClient(mlflow_server.uri)
    runs = client.search_runs([client.get_experiment_by_name("faults-retry-after-7").experiment_id])
    assert [(r.info.run_id, r.info.status) for r in runs] == [(result.summary["run_id"], "FINISHED")]


def test_one_busy_answer_at_start_is_retried(run_cli, proxy, mlflow_server, retries):
    proxy.add(Rule("respond", r"/experiments/get-by-name$", status=503))
    result = train(run_cli, proxy.url, "faults-busy-at-start", "--no-register")

    assert result.exit_code == 0, result.error_line


def test_lost_responses_to_creates_make_no_duplicates(run_cli, proxy, mlflow_server, retries):
    proxy.add(
        Rule("drop", r"/runs/create$", forward=True),
        Rule("drop", r"/model-versions/create$", forward=True),
    )
    result = train(run_cli, proxy.url, "faults-lost-creates")

    assert result.exit_code == 0, result.stderr
    assert_tracked_exactly_once(mlflow_server.uri, "faults-lost-creates", result.summary)


def test_server_dying_before_training_gives_a_clear_message_and_one_attempt_to_mark_the_run(run_cli, proxy, retries):
    proxy.add(Rule("die", LOG_BATCH, body_contains=PARAMS))
    result = train(run_cli, proxy.url, "faults-dies-early", "--no-register")

    assert result.exit_code == 3, result.error_line
    assert result.error_line.startswith(f"error: cannot reach the MLflow tracking server at {proxy.url}")
    marking = [url for _, url, *_ in retries.attempts if url.endswith(("/runs/set-tag", "/runs/update"))]
    assert len(marking) <= 2, f"{len(marking)} attempts to mark the run FAILED: {marking}"


def test_a_run_is_marked_failed_even_when_the_server_is_slow_to_take_it(run_cli, proxy, mlflow_server):
    """The job fails (the server refuses its metrics); marking the run FAILED meets a server slower
    than one request timeout: asked again, not given up after one timed-out attempt."""
    proxy.add(
        Rule("respond", LOG_BATCH, body_contains=METRICS, status=400),
        Rule("delay", r"/runs/update$", delay=12),
    )
    result = train(run_cli, proxy.url, "faults-slow-to-fail", "--no-register", "--set", "tracking.request_timeout=5")

    assert result.exit_code == 3, result.stderr
    assert_all_faults_fired(proxy)
    assert proxy.wait_idle(30)
    client = MlflowClient(mlflow_server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("faults-slow-to-fail").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["smt.error"] == result.error_line.removeprefix("error: ")
    assert "stays RUNNING" not in result.stderr


def test_a_run_is_marked_failed_through_a_busy_spell_longer_than_two_request_timeouts(run_cli, proxy, mlflow_server):
    """Seen in the soak: the server that failed the job stayed busy while the job ended its run,
    longer than the two request timeouts ending it was allowed, and the run stayed RUNNING. Ending
    a run FAILED now gets as long as any request of the job (all its attempts)."""
    proxy.add(
        Rule("respond", LOG_BATCH, body_contains=METRICS, status=400),
        Rule("respond", r"/runs/update$", body_contains='"FAILED"', status=503, times=4),
    )
    result = train(run_cli, proxy.url, "faults-busy-to-fail", "--no-register", "--set", "tracking.request_timeout=5")

    assert result.exit_code == 3, result.stderr
    assert_all_faults_fired(proxy)
    client = MlflowClient(mlflow_server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name("faults-busy-to-fail").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["smt.error"] == result.error_line.removeprefix("error: ")


# ---------------------------------------------------------------------------------------------
# a retry policy is per request: one thread's single-attempt section changes nothing for the others


def test_overlapping_single_attempt_creates_leave_every_other_request_its_retries(run_cli, proxy, mlflow_server):
    """Two search workers each send a create as one attempt (create_once), at the same time: a
    request sent afterwards from another thread still gets the job's retries, and the process
    environment is as the job's entry point left it."""
    assert run_cli("check", "--tracking-uri", proxy.url, "--experiment-name", "faults-overlap").exit_code == 0
    configured = {key: os.environ.get(key) for key in HTTP_SETTINGS}
    both_inside = threading.Barrier(2, timeout=30)
    first_out = threading.Event()
    created: list[str] = []

    def worker(name: str) -> None:
        def create() -> str:
            both_inside.wait()  # both workers are inside their single-attempt section
            if name == "second":
                assert first_out.wait(30)  # and the first leaves it before the second does
            return name

        created.append(create_once(create, lambda: None, attempts=1))
        if name == "first":
            first_out.set()

    workers = [threading.Thread(target=worker, args=(name,)) for name in ("first", "second")]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(60)
    assert sorted(created) == ["first", "second"]

    proxy.add(Rule("respond", r"/experiments/get-by-name$", status=503, times=1))
    outcome: dict[str, object] = {}

    def later_request() -> None:
        try:
            outcome["experiment"] = MlflowClient(proxy.url).get_experiment_by_name("faults-overlap")
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=later_request)
    thread.start()
    thread.join(60)
    assert "error" not in outcome, f"the 503 was not retried: {outcome.get('error')}"
    assert outcome["experiment"] is not None
    assert_all_faults_fired(proxy)
    assert {key: os.environ.get(key) for key in HTTP_SETTINGS} == configured


def test_a_model_download_that_keeps_failing_names_the_failure_not_a_wrong_path(
    run_cli, default_mlflow_server, tmp_path, retries
):
    """MLflow 3's `runs:/` download (RunsArtifactRepository.download_artifacts) logs the real failure at
    debug level and says "please ensure that the path is correct"; the 50-job soak showed jobs failing
    on injected faults with that line. Here the server's proxied artifacts answer 503 on the model's files."""
    with FaultProxy(default_mlflow_server.uri) as proxy:
        trained = train(run_cli, proxy.url, "faults-download", "--no-register")
        assert trained.exit_code == 0, trained.stderr
        # Every attempt at every file: with fewer, which file fails depends on the download threads' order.
        proxy.add(Rule("respond", r"/mlflow-artifacts/artifacts/.*/model/", status=503, times=10_000))
        scored = run_cli(
            "score", "--tracking-uri", proxy.url, "--experiment-name", "faults-download",
            "--model-uri", f"runs:/{trained.summary['run_id']}/model", "--output-path", str(tmp_path / "scores"),
        )  # fmt: skip

    assert scored.exit_code == 3
    assert "ensure that the path is correct" not in scored.error_line
    assert "503" in scored.error_line, scored.error_line
    assert not (tmp_path / "scores").exists()


def _processes_with(marker: str) -> list[int]:
    """The processes whose environment holds `marker`: a job's Python and the JVM it launched."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes():
                found.append(int(environ.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


def test_a_job_stopped_by_a_dead_server_leaves_no_jvm_to_print_after_its_error(tmp_path):
    """Spark starts beside the tracking set-up (spark.spark_starting). A job that fails before it
    uses Spark stops the session it started: its error line stays the last line, no JVM outlives it."""
    marker = f"smt-probe-{uuid.uuid4().hex}"
    env = {**os.environ, "SMT_TEST_MARKER": marker}
    env.pop("MLFLOW_TRACKING_URI", None)
    uri = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with (tmp_path / "stderr").open("w") as stderr:
        completed = subprocess.run(
            [str(VENV_BIN / "synapse-ml-track"), "train", "--tracking-uri", uri],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True, timeout=300,
        )  # fmt: skip
    assert completed.returncode == 3
    deadline = time.monotonic() + 60
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _processes_with(marker), "a process of the job outlived it"
    lines = (tmp_path / "stderr").read_text().strip().splitlines()
    assert lines[-1].startswith(f"error: cannot reach the MLflow tracking server at {uri}"), lines[-3:]
    assert not (tmp_path / "mlruns").exists()


def test_a_run_ended_from_a_worker_thread_leaves_the_processs_stdout_alone(proxy):
    """Search candidates end their runs in worker threads. Ending a run used to swap sys.stdout for a
    StringIO (to keep MLflow 2's "View run" link out of the job's output) for as long as its requests
    took, and sys.stdout is one per process: a summary line printed meanwhile by another thread went
    into that StringIO and was lost. Here ending the run is slowed by the proxy, and the main thread
    watches sys.stdout the whole time."""
    client = MlflowClient(proxy.url)
    experiment_id = client.create_experiment(f"stdout-{uuid.uuid4().hex[:8]}")
    tracker = RunTracker.start(client, experiment_id, "candidate", {}, MLFLOW_LIMITS, Redactor())
    proxy.add(Rule("delay", r"/runs/update$", delay=2.0))
    original = sys.stdout
    ending = threading.Thread(target=tracker.finish)
    ending.start()
    seen = set()
    while ending.is_alive():
        seen.add(id(sys.stdout))
        time.sleep(0.005)
    ending.join()
    assert seen == {id(original)}
    assert proxy.faults(), "the proxy did not slow the run's end: the test watched nothing"
    run = client.get_run(tracker.run_id)
    assert run.info.status == "FINISHED" and run.info.end_time


@pytest.mark.parametrize(
    "refused",
    [
        Rule("respond", r"/runs/update$", body_contains='"FINISHED"', status=400),
        Rule("respond", r"/registered-models/alias$", method="POST", status=400),
    ],
    ids=["finishing the run", "moving the alias"],
)
def test_a_challenger_whose_job_fails_does_not_take_the_champion(run_cli, proxy, mlflow_server, refused):
    """The champion is what the deployed score job loads: it must never be the version of a run that
    ended FAILED. Here the challenger beats the champion, and the server refuses to mark its run
    FINISHED, or, once it is, to move the alias (after the champion marks have moved: they are put
    back). The champion stays where it was, and the challenger's run ends FAILED."""
    name = f"faults-unfinished-{uuid.uuid4().hex[:6]}"
    gate = ("--set", "gate.min_metrics.f1=0.1")
    first = train(run_cli, proxy.url, name, *gate, "--param", "regParam=3.0")
    assert first.exit_code == 0 and first.summary["promoted"], first.stderr
    proxy.add(refused)
    second = train(run_cli, proxy.url, name, *gate)

    assert second.exit_code == 3, second.stderr
    assert proxy.faults(), "the run's end was never refused: the test saw nothing"
    client = MlflowClient(mlflow_server.uri)
    assert client.get_registered_model(name).aliases == {"champion": first.summary["model_version"]}
    versions = {v.version: v for v in client.search_model_versions(f"name='{name}'")}
    challenger = next(v for v in versions.values() if v.version != first.summary["model_version"])
    assert CHAMPION_TAG not in challenger.tags
    assert versions[first.summary["model_version"]].tags.get(CHAMPION_TAG) == "champion"
    assert client.get_run(challenger.run_id).info.status == "FAILED"


def test_a_resumed_runs_error_tag_deleted_twice_is_deleted(run_cli, proxy, mlflow_server):
    """A rerun by run key clears its run's error tag. When the server deletes it and the answer is
    lost, the resent delete is told the tag does not exist: that is done, not a failure that leaves
    the resumed run RUNNING (it came before the job's failing-run handler)."""
    name = f"faults-untag-{uuid.uuid4().hex[:6]}"
    key = ("--run-key", name)
    proxy.add(Rule("respond", LOG_BATCH, body_contains=METRICS, status=400))
    failed = train(run_cli, proxy.url, name, *key)
    assert failed.exit_code == 3, failed.stderr
    proxy.add(Rule("drop", r"/runs/delete-tag$", forward=True))
    resumed = train(run_cli, proxy.url, name, *key)

    assert resumed.exit_code == 0, resumed.stderr
    assert proxy.forwarded(r"POST .*/runs/delete-tag$"), "the error tag was never deleted: the test saw nothing"
    run = MlflowClient(mlflow_server.uri).get_run(resumed.summary["run_id"])
    assert run.info.status == "FINISHED" and ERROR_TAG not in run.data.tags


def test_a_rerun_waiting_on_a_run_rides_out_a_look_that_failed_with_all_its_retries(
    run_cli, proxy, mlflow_server, retries
):
    """Seen in the 50-job soak: two reruns waited on a killed job's lease, their looks the only traffic
    left, and met every fault of a busy spell. One look failed with all its retries, both reruns
    exited 3, and the killed job's run stayed RUNNING. While waiting, a failed look is taken again."""
    client = MlflowClient(mlflow_server.uri)
    experiment_id = client.create_experiment("faults-waiting")
    lease = f"killedjob {time.time() + 12:.0f}"  # expires after the first look
    killed = client.create_run(experiment_id, tags={RUN_KEY_TAG: "activity-8", JOB_TAG: TRAIN_JOB, LEASE_TAG: lease})
    # The first look finds the run live; the next meets one more 503 than a request's attempts.
    proxy.add(Rule("respond", r"/runs/search$", body_contains="activity-8", status=503, skip=1, times=MAX_RETRIES + 2))
    result = train(run_cli, proxy.url, "faults-waiting", "--no-register", "--run-key", "activity-8")

    assert result.exit_code == 0, result.stderr
    assert_all_faults_fired(proxy)
    assert f"could not look at run {killed.info.run_id}: " in result.stderr
    assert result.summary["run_id"] == killed.info.run_id
    assert client.get_run(killed.info.run_id).info.status == "FINISHED"


def test_a_rerun_taking_over_a_run_waits_out_a_throttled_answer_to_its_lease(run_cli, proxy, mlflow_server, retries):
    """Seen in the short soak: a rerun wrote its lease on a killed job's run within a renewal's third of
    a lease, and a 429 asking for longer than what was left of it failed the job (exit 3), leaving the
    killed job's run RUNNING. Taking a run over is the job's own request, under the job's policy."""
    client = MlflowClient(mlflow_server.uri)
    experiment_id = client.create_experiment("faults-claim")
    lease = f"killedjob {time.time() - 1:.0f} {time.time() - 61:.0f}"
    killed = client.create_run(experiment_id, tags={RUN_KEY_TAG: "activity-9", JOB_TAG: TRAIN_JOB, LEASE_TAG: lease})
    proxy.add(Rule("respond", r"/runs/set-tag$", body_contains=LEASE_TAG, status=429, retry_after="6"))
    result = train(
        run_cli, proxy.url, "faults-claim", "--no-register", "--run-key", "activity-9",
        "--set", "tracking.lease_seconds=15",
    )  # fmt: skip

    assert result.exit_code == 0, result.stderr
    assert_all_faults_fired(proxy)
    assert 6 in retries.waits
    assert result.summary["run_id"] == killed.info.run_id
    assert client.get_run(killed.info.run_id).info.status == "FINISHED"
