"""The retry loops above single requests: the preflight's probe, what must reach the server after a
failure (settle), and creates that must not land twice (create_once). Each request inside still goes
through the job's policy (http.py); these decide whether to ask again after it gave up, and wait as
the same policy says (RetryPolicy.backoff_for)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TypeVar

import urllib3
from mlflow.exceptions import MlflowException

from synapse_ml_track.tracking import http
from synapse_ml_track.tracking.http import (
    ServerKeptFailing,
    answer_timed_out,
    causes,
    connection_failed,
    dropped,
    timed_out,
)

T = TypeVar("T")


# urllib3 gives up on a retryable status with ResponseError(SPECIFIC_ERROR): the status is only in that text.
_TOO_MANY_STATUS = re.compile(
    re.escape(urllib3.exceptions.ResponseError.SPECIFIC_ERROR).replace(re.escape("{status_code}"), r"(\d{3})")
)


def busy_status(exc: BaseException) -> int | None:
    """The HTTP status when the server answered but was busy or failing (worth another try)."""
    for cause in causes(exc):
        if isinstance(cause, ServerKeptFailing):
            return cause.status
        if isinstance(cause, urllib3.exceptions.ResponseError):  # urllib3 gave up on a retryable status
            match = _TOO_MANY_STATUS.search(str(cause))
            if match and int(match.group(1)) in http.RETRYABLE_STATUS:
                return int(match.group(1))
        if isinstance(cause, MlflowException) and cause.error_code in (
            "REQUEST_LIMIT_EXCEEDED",
            "TEMPORARILY_UNAVAILABLE",
        ):
            status: int = cause.get_http_status_code()
            return status
    return None


def is_transient(exc: BaseException) -> bool:
    """A busy answer, a dropped connection or a timeout; not a refusal or a bad request."""
    return bool(busy_status(exc)) or timed_out(exc) or connection_failed(exc)


def probe(call: Callable[[], T], timeout: float, attempts: int, *, deadline: float) -> T:
    """Ask with a short timeout; a busy answer (429/5xx) or a connection dropped after the server took
    it is asked again, a few times, and a slow answer (the server took the request, its answer did
    not come in time) is asked again with twice the timeout, none after `deadline` (time.monotonic();
    the first attempt gets its whole timeout).

    A refused connection, a name that does not resolve, an untrusted certificate or a connection that
    is never accepted fails at once, instead of after MLflow's retries.
    """
    attempt = 0
    while True:
        try:
            with http.policy(retries=0, timeout=timeout):
                return call()
        except Exception as exc:
            attempt += 1
            # A throttled answer was already retried as long as its Retry-After allowed.
            busy = busy_status(exc) not in (None, http.THROTTLED)
            slow = answer_timed_out(exc)
            remaining = deadline - time.monotonic()
            if not (busy or slow or dropped(exc)) or attempt >= attempts or remaining < 1.0:
                raise
            if slow:
                timeout = min(timeout * 2, remaining)
                continue  # the slow answer was the wait
        time.sleep(min(http.current_policy().backoff_for(attempt), max(0.0, deadline - time.monotonic())))


def worth_asking_again(exc: BaseException) -> bool:
    """A busy answer, a connection dropped after the server took it, or a timeout: the server is
    there. Not a refused connection (nothing listens) or a refusal."""
    return bool(busy_status(exc)) or dropped(exc) or timed_out(exc)


DEADLINE = "the time left for this request"


def settle(call: Callable[[], T], seconds: float) -> T:
    """An idempotent request asked until it is answered, for at most `seconds`: a busy answer, a
    dropped connection and a timeout are asked again; a refused connection (nothing listens) or a
    refusal ends it at once. For what must reach the server after a failure: ending a run FAILED."""
    deadline = time.monotonic() + seconds
    attempt = 0
    while True:
        remaining = deadline - time.monotonic()
        try:
            timeout = max(1.0, min(http.current_policy().timeout, remaining))
            with http.policy(retries=0, timeout=timeout, max_wait=max(0.0, remaining), max_wait_source=DEADLINE):
                return call()
        except Exception as exc:
            attempt += 1
            remaining = deadline - time.monotonic()
            if not worth_asking_again(exc) or remaining < 1.0:
                raise
            pause = min(http.current_policy().backoff_for(attempt), remaining - 1.0)
        time.sleep(pause)


def create_once(create: Callable[[], T], find: Callable[[], T | None], attempts: int) -> T:
    """Call a non-idempotent create, retrying only after checking the earlier call did not land.

    MLflow's HTTP layer would resend a create whose response was lost, making a second run or
    model version. Here each attempt is sent once; after a transient failure, `find` looks for
    what the lost attempt may have created before another is sent.
    """
    attempt = 0
    while True:
        try:
            with http.policy(retries=0):  # a throttled create is resent: the server did not process it
                return create()
        except Exception as exc:
            attempt += 1
            if not is_transient(exc):
                raise
            time.sleep(http.current_policy().backoff_for(attempt))
            found = find()  # the lost attempt may have landed, the last one too
            if found is not None:
                return found
            if attempt >= attempts:
                raise
