"""A tracking failure as one line a user can act on, without MLflow's retry history."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import requests
from mlflow.exceptions import MlflowException

from synapse_ml_track.errors import TrackingError, first_line
from synapse_ml_track.tracking.http import (
    TRUST_HINT,
    RetryAfterTooLong,
    ServerKeptFailing,
    causes,
    connection_failed,
    timed_out,
    untrusted_certificate,
)
from synapse_ml_track.tracking.retries import busy_status
from synapse_ml_track.tracking.transfers import ArtifactTransferError


def describe_failure(exc: Exception, uri: str) -> str:
    """One line for a tracking failure, without MLflow's retry-history dump."""
    if isinstance(exc, ArtifactTransferError):
        return f"{exc} (tracking URI {uri})"
    throttled = next((c for c in causes(exc) if isinstance(c, RetryAfterTooLong)), None)
    if throttled is not None:
        hint = f" or raise {throttled.source}" if throttled.source.startswith("tracking.") else ""
        return f"the MLflow tracking server at {uri} {throttled}; try again later{hint}"
    status = busy_status(exc)
    if status:
        return f"the MLflow tracking server at {uri} kept answering HTTP {status} (busy or failing); try again later"
    untrusted = untrusted_certificate(exc)
    if untrusted:
        return f"the TLS certificate of the MLflow tracking server at {uri} is not trusted ({untrusted}); {TRUST_HINT}"
    if timed_out(exc):
        return f"the MLflow tracking server at {uri} did not answer in time"
    if connection_failed(exc):
        return (
            f"cannot reach the MLflow tracking server at {uri} (connection failed); is it running and is the URI right?"
        )
    if isinstance(exc, MlflowException):
        code = exc.get_http_status_code()
        aml_refusal = _aml_auth_error(exc)
        if code in (401, 403) or aml_refusal or exc.error_code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
            reason = f"HTTP {code}" if code in (401, 403) else (aml_refusal or exc.error_code)
            return (
                f"the tracking server at {uri} refused the credentials ({reason}); "
                "check the service principal and its role on the workspace"
            )
        return f"tracking server error at {uri}: {first_line(exc)[:300]}"
    return f"tracking failed at {uri}: {type(exc).__name__}: {first_line(exc)[:300]}"


def is_tracking_failure(exc: BaseException) -> bool:
    """A failure of the tracking server, its registry or its artifact store (not of the job's own work)."""
    return isinstance(
        exc,
        (
            MlflowException,
            ArtifactTransferError,
            RetryAfterTooLong,
            ServerKeptFailing,
            requests.RequestException,
            ConnectionError,
            TimeoutError,
        ),
    )


@contextlib.contextmanager
def tracking_errors(uri: str, hint: str | None = None) -> Iterator[None]:
    """Tracking failures inside become one TrackingError line (with the hint appended); the job's
    own errors pass through unchanged."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, TrackingError) or not is_tracking_failure(exc):
            raise
        raise TrackingError(describe_failure(exc, uri) + (f"; {hint}" if hint else "")) from None


# Codes in the JSON body AML answers a refused request with; MLflow reads that body as an
# INTERNAL_ERROR and the HTTP status is lost (mlflow/mlflow#5846).
_AML_AUTH_CODES = {
    "authorizationerror",
    "authenticationerror",
    "authorizationfailed",
    "authenticationfailed",
    "invalidauthenticationtoken",
    "expiredauthenticationtoken",
    "unauthorized",
    "forbidden",
}


def _aml_auth_error(exc: MlflowException) -> str | None:
    """'<code>: <message>' when the error body is AML's refusal of the token or the role, else None."""
    body = getattr(exc, "json", None)
    node = _lower_keys((_lower_keys(body) or {}).get("error"))
    error = node if isinstance(node, dict) else {}
    codes = []
    while isinstance(node, dict):
        if node.get("code"):
            codes.append(str(node["code"]))
        node = _lower_keys(node.get("innererror") or node.get("inner_error"))
    refusals = [c for c in codes if c.lower() in _AML_AUTH_CODES]
    if not refusals:
        return None
    message = str(error.get("message") or "").strip().splitlines()
    return f"{refusals[-1]}: {message[0][:200]}" if message else refusals[-1]


def _lower_keys(value: object) -> dict[str, Any] | None:
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else None
