"""The job's one retry policy (RetryPolicy): every retry decision of its tracking requests.

MLflow's REST calls (send_with_retries, below), the preflight's probe, ending a failed run (settle)
and creating a run or version once (create_once, in retries.py) all ask the policy how long to wait
before the next attempt, or whether to give up: exponential backoff with jitter, every failure and
every 429 without a Retry-After counted, a positive Retry-After honoured within a bound, a budget
of waiting per request and one per job. Its defaults follow azure-core's RetryPolicy
(azure/core/pipeline/policies/_retry.py: backoff_factor * 2 ** (n - 1) up to backoff_max, Retry-After
honoured, 429 and 503 counted) and MLflow's REST retries (mlflow/environment_variables.py
MLFLOW_HTTP_REQUEST_MAX_RETRIES, _BACKOFF_FACTOR, _BACKOFF_JITTER, _TIMEOUT), scaled to a batch job
that must end within its pipeline's timeout.

MLflow reads its retry settings (MLFLOW_HTTP_REQUEST_*) from the process environment at every
request, so changing them for one call changes them for every thread. Instead `configure_process`
runs once, at the job's entry point: it sets the environment and wraps MLflow's `http_request`,
through which every tracking and registry call goes (`mlflow.utils.rest_utils.call_endpoint`, used
by MLflow's REST stores and by azureml-mlflow's, in MLflow 2.18 and 3.15 alike). The wrapper sends
each attempt without MLflow's own retries and retries here, under the policy of the calling thread
(`policy(...)` changes it for one block of one thread only).

Retries honour Retry-After, as Azure's own clients do (azure-core's RetryPolicy,
azure/core/pipeline/policies/_retry.py `get_retry_after`; Azure Resource Manager's "Request limits
and throttling": wait the Retry-After seconds, a request sent earlier is not processed), and all
waits of one request together stay within `max_wait` seconds (tracking.max_retry_wait).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypedDict, Unpack

import requests
import urllib3

from synapse_ml_track.config import TrackingConfig

# What MLflow's client retries (mlflow/utils/rest_utils.py _TRANSIENT_FAILURE_RESPONSE_CODES).
RETRYABLE_STATUS = frozenset((408, 429, 500, 502, 503, 504))
THROTTLED = 429  # the server refused the request unprocessed (RFC 6585, section 4): always safe to resend


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5  # further attempts after a failure (5xx, dropped connection, timeout); 0: one attempt
    timeout: float = 30.0  # seconds to connect and to wait for the answer, each attempt
    max_wait: float = 300.0  # seconds of waiting between attempts, all retries of one request together
    # What sets max_wait, as a refused Retry-After names it: the setting, or a caller's own deadline.
    max_wait_source: str = "tracking.max_retry_wait"
    backoff: float = 1.0  # first wait when the server gives no Retry-After; doubled each failure
    # The longest backoff. Its exponent counts failures only: counting throttled answers too made one
    # 503 after a long 429 window wait for minutes.
    backoff_max: float = 30.0
    # Whether its waits count against the job's (tracking.max_job_retry_wait). A lease's renewals do
    # not: under throttling they would spend the job's budget beside the job's own requests.
    job_budget: bool = True
    # Up to this many seconds added to each backoff at random (urllib3's backoff_jitter, which MLflow
    # sets to 1 s): parallel candidates and jobs that failed together do not all ask again together.
    jitter: float = 0.5

    @property
    def attempts_seconds(self) -> float:
        """Seconds the attempts of one request may take together, waits between them left out."""
        return self.timeout * (self.retries + 1)

    def backoff_for(self, failures: int) -> float:
        """The wait after the `failures`-th failure in a row, without a Retry-After."""
        return min(self.backoff * 2.0 ** max(0, failures - 1), self.backoff_max) + random.uniform(0, self.jitter)

    def next_wait(self, failures: int, waited: float, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt of a request that has failed `failures` times and
        waited `waited` seconds so far, or None to give up: past its retries, past its own budget
        (max_wait), or past the job's (tracking.max_job_retry_wait). A Retry-After is waited as asked."""
        if failures > self.retries:
            return None
        pause = self.backoff_for(failures) if retry_after is None else retry_after
        if waited + pause > self.max_wait or (self.job_budget and not _job_budget.spend(pause)):
            return None
        return pause


class JobRetryBudget:
    """Seconds all requests of one job may spend waiting to retry, together (tracking.max_job_retry_wait):
    a workspace that keeps throttling ends the job, within its pipeline's timeout, instead of each
    request waiting out its own max_wait in turn. Shared by the job's threads."""

    def __init__(self, seconds: float = float("inf")) -> None:
        self.seconds, self.spent = seconds, 0.0
        self._lock = threading.Lock()

    def spend(self, pause: float) -> bool:
        with self._lock:
            if self.spent + pause > self.seconds:
                return False
            self.spent += pause
            return True


class PolicyChanges(TypedDict, total=False):
    retries: int
    timeout: float
    max_wait: float
    max_wait_source: str
    backoff: float
    job_budget: bool


class RetryAfterTooLong(Exception):
    """The server asked to wait longer than the policy allows before trying again."""

    def __init__(self, status: int, seconds: float, bound: float, source: str) -> None:
        self.status, self.seconds, self.bound, self.source = status, seconds, bound, source
        super().__init__(
            f"asked to wait {seconds:.0f} s before the next request (HTTP {status}, Retry-After), "
            f"more than {source} ({bound:.0f} s)"
        )


class ServerKeptFailing(Exception):
    """The server answered a retryable status (429, 5xx) until the policy gave up.

    Raised instead of handing the last answer back to MLflow: from a JSON body MLflow builds a
    RestException whose code comes from the body, and AML's error body (`{"error": {"code":
    "SystemError", ...}}`) carries none, so a 503 read as INTERNAL_ERROR, its status lost, and was
    neither retried nor described as the busy answer it is."""

    def __init__(self, status: int, url: str, body: str) -> None:
        self.status = status
        super().__init__(f"HTTP {status} from {url}: {' '.join(body.split())[:300]}")


_process_policy = RetryPolicy()
_job_budget = JobRetryBudget()
_thread_policy: contextvars.ContextVar[RetryPolicy | None] = contextvars.ContextVar("smt_http_policy", default=None)


def current_policy() -> RetryPolicy:
    return _thread_policy.get() or _process_policy


@contextlib.contextmanager
def policy(**changes: Unpack[PolicyChanges]) -> Iterator[RetryPolicy]:
    """The current policy with `changes`, for the requests this thread sends inside the block."""
    changed = replace(current_policy(), **changes)
    token = _thread_policy.set(changed)
    try:
        yield changed
    finally:
        _thread_policy.reset(token)


def policy_for(tracking: TrackingConfig) -> RetryPolicy:
    return RetryPolicy(retries=tracking.max_retries, timeout=tracking.request_timeout, max_wait=tracking.max_retry_wait)


def configure_process(tracking: TrackingConfig) -> None:
    """The job's process-wide HTTP settings. Call once, at the entry point, before any request."""
    global _process_policy, _job_budget
    _process_policy = policy_for(tracking)
    _job_budget = JobRetryBudget(tracking.max_job_retry_wait)
    timeout = str(max(1, int(tracking.request_timeout)))
    # For MLflow's requests that do not go through call_endpoint (the mlflow-artifacts: repository):
    # urllib3's retries, honouring Retry-After; those transfers run under transfer_deadline.
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(tracking.max_retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = timeout
    os.environ["MLFLOW_HTTP_RESPECT_RETRY_AFTER_HEADER"] = "true"
    # set_terminated would fetch the run again only to print a "View run" link to stdout.
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    # azureml-mlflow's artifact client does not use MLflow's HTTP layer: azure-core (which honours
    # Retry-After) with a 300 s timeout per request (azureml/mlflow/_client/artifact/
    # run_artifact_client.py reads AZUREML_HTTP_REQUEST_TIMEOUT) and 300 s to wait for a batch of
    # uploads (base_artifact_client.py reads AZUREML_ARTIFACTS_DEFAULT_TIMEOUT). Its retry counts
    # cannot be set from outside: every transfer also runs under transfer_deadline.
    os.environ["AZUREML_HTTP_REQUEST_TIMEOUT"] = timeout
    os.environ["AZUREML_ARTIFACTS_DEFAULT_TIMEOUT"] = str(int(transfer_deadline(_process_policy)))
    _wrap_mlflow_http_request()


@contextlib.contextmanager
def configured_process(tracking: TrackingConfig) -> Iterator[None]:
    """configure_process for one block: afterwards MLflow's `http_request` and the process policy are
    as they were, so the calls a notebook makes itself keep MLflow's own retries and timeouts (the
    environment configure_process sets is the caller's to put back)."""
    global _process_policy, _job_budget
    from mlflow.utils import rest_utils

    send, before = rest_utils.http_request, (_process_policy, _job_budget)
    configure_process(tracking)
    try:
        yield
    finally:
        rest_utils.http_request, (_process_policy, _job_budget) = send, before


# Files per request the AML artifact client sends (base_artifact_client.ARTIFACTS_BATCH_SIZE_DEFAULT).
ARTIFACT_BATCH_FILES = 50


def transfer_deadline(retry: RetryPolicy, files: int = 1) -> float:
    """Seconds an artifact transfer may take: each batch of up to 50 files gets as long as one
    request with all its attempts."""
    batches = max(1, -(-files // ARTIFACT_BATCH_FILES))
    return retry.attempts_seconds * batches


def _wrap_mlflow_http_request() -> None:
    from mlflow.utils import rest_utils

    if getattr(rest_utils.http_request, "smt_policy", False):
        return
    rest_utils.http_request = _with_policy(rest_utils.http_request)


def _with_policy(send: Callable[..., requests.Response]) -> Callable[..., requests.Response]:
    @functools.wraps(send)
    def http_request(host_creds: Any, endpoint: str, method: str, **kwargs: Any) -> requests.Response:
        if "max_retries" in kwargs:  # MLflow chose this call's retries itself (its /version probe)
            return send(host_creds, endpoint, method, **kwargs)
        return send_with_retries(lambda: send(host_creds, endpoint, method, **_one_attempt(kwargs)), current_policy())

    http_request.smt_policy = True  # type: ignore[attr-defined]  # mypy types no attributes set on a function
    return http_request


def _one_attempt(kwargs: dict[str, Any]) -> dict[str, Any]:
    """MLflow's http_request arguments for one attempt, its answer returned whatever the status."""
    return {
        **kwargs,
        "max_retries": 0,
        "timeout": kwargs.get("timeout") or current_policy().timeout,
        "raise_on_status": False,
        "respect_retry_after_header": False,
    }


def send_with_retries(send: Callable[[], requests.Response], retry: RetryPolicy) -> requests.Response:
    """`send()` until it answers with a status not worth retrying, within the policy: a failure
    counts against `retries`, a throttled answer only against `max_wait`. A retryable status
    still answered when the policy gives up raises ServerKeptFailing."""
    failures, waited = 0, 0.0
    while True:
        try:
            response = send()
        except Exception as exc:
            if not (timed_out(exc) or connection_failed(exc)):
                raise
            failures += 1
            pause = retry.next_wait(failures, waited)
            if pause is None:
                raise
        else:
            status = response.status_code
            if status not in RETRYABLE_STATUS:
                return response
            asked = retry_after(response)
            if asked is not None and asked > retry.max_wait:
                raise RetryAfterTooLong(status, asked, retry.max_wait, retry.max_wait_source)
            # Only a throttled answer that says how long to wait is not a failure: without a
            # Retry-After it is counted and backed off from, as azure-core's RetryPolicy does.
            failures += status != THROTTLED or asked is None
            pause = retry.next_wait(failures, waited, asked)
            if pause is None:
                raise ServerKeptFailing(status, response.url, response.text)
        time.sleep(pause)
        waited += pause


def retry_after(response: requests.Response) -> float | None:
    """Seconds the server's Retry-After asks for (a number or an HTTP date), None without one."""
    return retry_after_header(response.headers)


def retry_after_header(headers: Mapping[str, str]) -> float | None:
    """Seconds a Retry-After header in `headers` asks for (a number or an HTTP date), None without one:
    a response's of requests, or of azure-core (an artifact store's answer).

    A wait of no time (0, negative, a date already past) is read as none given, as azure-core does
    (azure/core/pipeline/policies/_retry.py `_sleep_for_retry` sleeps a Retry-After only when it is
    above 0, and backs off otherwise): honoured, it resent at once, for ever."""
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds: float = urllib3.util.Retry().parse_retry_after(value)
    except urllib3.exceptions.InvalidHeader:
        return None
    return seconds if seconds > 0 else None


def causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what it was raised from or during (MLflow raises inside `except`), and what
    requests and urllib3 wrap (a MaxRetryError's reason)."""
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        reason = getattr(current, "reason", None)  # an ssl.SSLError's is a string
        pending += [current.__cause__, current.__context__, reason if isinstance(reason, BaseException) else None]
        pending += [arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException)]


def untrusted_certificate(exc: BaseException) -> str | None:
    """Why the server's TLS certificate was not trusted, or None when that is not the failure.
    azure-identity keeps only the text of the ssl error, so the text is read too."""
    for cause in causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return str(cause.verify_message or cause)
        found = _CERTIFICATE_VERIFY_FAILED.search(str(cause))
        if found:
            return found.group(1).strip()
    return None


_CERTIFICATE_VERIFY_FAILED = re.compile(r"certificate verify failed: ([^(]+)")
# What fixes an untrusted certificate: a TLS-inspecting proxy or a private endpoint's own CA signs it.
TRUST_HINT = "if a proxy or a private CA signs it, point REQUESTS_CA_BUNDLE at a bundle that holds that CA"


def timed_out(exc: BaseException) -> bool:
    # urllib3's NewConnectionError (a refused connection) subclasses its ConnectTimeoutError.
    return any(
        isinstance(c, (requests.Timeout, urllib3.exceptions.TimeoutError, TimeoutError))
        and not isinstance(c, urllib3.exceptions.NewConnectionError)
        for c in causes(exc)
    )


def answer_timed_out(exc: BaseException) -> bool:
    """The server took the request and its answer did not come in time (not a connection never accepted)."""
    return any(isinstance(c, (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError)) for c in causes(exc))


def dropped(exc: BaseException) -> bool:
    """A connection the server accepted and then closed or reset before its answer (a proxy or load
    balancer restarting): worth asking again, unlike a refused connection (nothing is listening)."""
    found = list(causes(exc))
    return (
        any(isinstance(c, (urllib3.exceptions.ProtocolError, ConnectionResetError)) for c in found)
        and not any(isinstance(c, urllib3.exceptions.NewConnectionError) for c in found)
        and not timed_out(exc)
    )


def connection_failed(exc: BaseException) -> bool:
    """No connection, or one that dropped before the answer: refused, reset, closed mid-response."""
    return any(
        isinstance(
            c,
            (
                urllib3.exceptions.NewConnectionError,
                urllib3.exceptions.ProtocolError,
                requests.ConnectionError,
                ConnectionError,
            ),
        )
        for c in causes(exc)
    ) and not timed_out(exc)
