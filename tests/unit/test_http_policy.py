"""The job's HTTP retry policy (synapse_ml_track/tracking/http.py): what is retried, how long it waits, and
that a policy set in one thread stays in that thread. Answers are scripted requests.Responses; the
waits are recorded instead of slept."""

from __future__ import annotations

import threading
import types

import pytest
import requests

from synapse_ml_track.tracking import http
from synapse_ml_track.tracking.failures import describe_failure
from synapse_ml_track.tracking.http import RetryAfterTooLong, RetryPolicy, ServerKeptFailing, send_with_retries
from synapse_ml_track.tracking.retries import settle


@pytest.fixture
def waits(monkeypatch) -> list[float]:
    """The waits, recorded instead of slept; without jitter, so each is the policy's exact backoff."""
    slept: list[float] = []
    monkeypatch.setattr(http, "time", types.SimpleNamespace(sleep=slept.append))
    monkeypatch.setattr(http, "random", types.SimpleNamespace(uniform=lambda low, high: low))
    return slept


def answers(*statuses: int | tuple[int, str]):
    """A send() that answers with these statuses in turn ((status, retry_after) for a Retry-After)."""
    pending = list(statuses)
    sent: list[int] = []

    def send() -> requests.Response:
        status, retry_after = pending.pop(0) if isinstance(pending[0], tuple) else (pending.pop(0), None)
        response = requests.Response()
        response.status_code = status
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        sent.append(status)
        return response

    send.sent = sent
    return send


def test_throttled_answers_are_waited_for_as_asked_and_do_not_use_up_the_retries(waits):
    send = answers((429, "4"), (429, "4"), (429, "4"), 200)
    assert send_with_retries(send, RetryPolicy(retries=0, max_wait=30)).status_code == 200
    assert waits == [4, 4, 4]


def test_a_retry_after_longer_than_the_bound_fails_at_once(waits):
    with pytest.raises(RetryAfterTooLong, match=r"asked to wait 3600 s .* tracking.max_retry_wait \(30 s\)"):
        send_with_retries(answers((429, "3600")), RetryPolicy(max_wait=30))
    assert waits == []


def test_the_waits_of_one_request_stay_within_the_bound(waits):
    send = answers(*[(429, "10")] * 5)
    with pytest.raises(ServerKeptFailing, match="HTTP 429") as caught:
        send_with_retries(send, RetryPolicy(max_wait=25))
    assert caught.value.status == 429
    assert waits == [10, 10] and len(send.sent) == 3


def test_failures_are_retried_with_backoff_up_to_the_retries(waits):
    send = answers(503, 502, 500, 200)
    with pytest.raises(ServerKeptFailing, match="HTTP 500"):
        send_with_retries(send, RetryPolicy(retries=2))
    assert waits == [1, 2] and send.sent == [503, 502, 500]


def test_a_refusal_is_not_retried(waits):
    assert send_with_retries(answers(400), RetryPolicy()).status_code == 400
    assert waits == []


def test_a_dropped_connection_is_retried_only_when_the_policy_allows(waits):
    def dropped() -> requests.Response:
        raise requests.ConnectionError("connection reset")

    with pytest.raises(requests.ConnectionError):
        send_with_retries(dropped, RetryPolicy(retries=0))
    assert waits == []
    with pytest.raises(requests.ConnectionError):
        send_with_retries(dropped, RetryPolicy(retries=2))
    assert waits == [1, 2]


def test_a_policy_set_in_one_thread_is_not_seen_by_another():
    """Two threads inside their own single-attempt blocks at once; a third thread sees the process policy."""
    both_inside = threading.Barrier(3, timeout=10)
    seen: dict[str, RetryPolicy] = {}
    process = http.current_policy()

    def inside(name: str, timeout: float) -> None:
        with http.policy(retries=0, timeout=timeout):
            both_inside.wait()
            seen[name] = http.current_policy()
            both_inside.wait()

    workers = [threading.Thread(target=inside, args=(name, t)) for name, t in (("a", 1.0), ("b", 2.0))]
    for worker in workers:
        worker.start()
    both_inside.wait()
    seen["main"] = http.current_policy()
    both_inside.wait()
    for worker in workers:
        worker.join(10)
    assert (seen["a"].retries, seen["a"].timeout) == (0, 1.0)
    assert (seen["b"].retries, seen["b"].timeout) == (0, 2.0)
    assert seen["main"] == process and process.retries != 0


def test_the_backoff_after_a_long_throttle_counts_failures_only(waits):
    """A 503 after ten throttled answers waits as a first failure does, not 2**10 s (seen in the soak)."""
    send = answers(*[(429, "2")] * 10, 503, 503, 200)
    assert send_with_retries(send, RetryPolicy(retries=5, backoff=1.0, max_wait=300)).status_code == 200
    assert waits == [2] * 10 + [1.0, 2.0]


def test_the_backoff_is_capped(waits):
    send = answers(*[503] * 9, 200)
    assert send_with_retries(send, RetryPolicy(retries=9, backoff=1.0, max_wait=10_000)).status_code == 200
    assert max(waits) == RetryPolicy().backoff_max


@pytest.mark.parametrize("retry_after", ["0", "-5", "Thu, 01 Jan 2015 00:00:00 GMT"], ids=["zero", "negative", "past"])
def test_a_retry_after_of_no_time_backs_off_and_counts_as_a_failure(waits, retry_after):
    """azure-core reads a Retry-After of 0 (or a date already past) as none given. Waiting what it
    asks, nothing, resent at once for ever: a reproduction made 20,000 attempts in a second."""
    send = answers(*[(429, retry_after)] * 50)
    with pytest.raises(ServerKeptFailing, match="HTTP 429"):
        send_with_retries(send, RetryPolicy(retries=3, backoff=1.0, max_wait=300))
    assert waits == [1.0, 2.0, 4.0] and len(send.sent) == 4


def test_a_throttled_answer_without_retry_after_backs_off_and_counts_as_a_failure(waits):
    """As azure-core's RetryPolicy does: without a Retry-After a 429 is a failure like a 503, so
    parallel candidates and several jobs back off instead of asking a throttled workspace every second."""
    send = answers(*[429] * 50)
    with pytest.raises(ServerKeptFailing, match="HTTP 429"):
        send_with_retries(send, RetryPolicy(retries=5, backoff=1.0, max_wait=300))
    assert waits == [1.0, 2.0, 4.0, 8.0, 16.0] and len(send.sent) == 6


def test_each_backoff_gets_its_own_jitter_within_the_bound(monkeypatch):
    """Jobs and candidates that failed together do not all ask again at the same moment."""
    slept: list[float] = []
    monkeypatch.setattr(http, "time", types.SimpleNamespace(sleep=slept.append))
    send = answers(*[503] * 4, 200)
    assert send_with_retries(send, RetryPolicy(retries=4, backoff=1.0, jitter=0.5)).status_code == 200
    jitters = [wait - base for wait, base in zip(slept, [1, 2, 4, 8], strict=True)]
    assert all(0 <= jitter <= 0.5 for jitter in jitters), slept
    assert len({round(jitter, 6) for jitter in jitters}) > 1, slept


def test_the_jobs_requests_share_one_budget_of_waiting(waits, monkeypatch):
    """tracking.max_job_retry_wait: every request's waits count against the job's, whatever thread
    sends it, and the request that would pass it gives up at once."""
    monkeypatch.setattr(http, "_job_budget", http.JobRetryBudget(5.0))
    policy = RetryPolicy(retries=5, backoff=1.0, max_wait=300)
    assert send_with_retries(answers(503, 503, 200), policy).status_code == 200
    with pytest.raises(ServerKeptFailing, match="HTTP 503"):
        send_with_retries(answers(503, 503, 200), policy)
    assert waits == [1.0, 2.0, 1.0]


def test_a_policy_outside_the_jobs_budget_neither_spends_nor_is_refused_by_it(waits, monkeypatch):
    """A lease's renewals (RetryPolicy.job_budget False) wait as their own policy says, and leave the
    job's budget to the job's requests."""
    budget = http.JobRetryBudget(2.0)
    monkeypatch.setattr(http, "_job_budget", budget)
    renewal = RetryPolicy(retries=5, backoff=1.0, max_wait=300, job_budget=False)
    assert send_with_retries(answers(503, 503, 503, 200), renewal).status_code == 200
    assert (waits, budget.spent) == ([1.0, 2.0, 4.0], 0.0)


def test_a_retry_after_past_a_callers_deadline_names_that_deadline_not_the_setting(waits):
    with pytest.raises(RetryAfterTooLong) as caught:
        settle(lambda: send_with_retries(answers((429, "600")), http.current_policy()), 20)
    line = describe_failure(caught.value, "http://tracking")
    assert "more than the time left for this request (" in line
    assert "tracking.max_retry_wait" not in line
    assert line.endswith("; try again later")
