"""Tracking failures described in one line, and which of them are worth another try.

The exceptions are built as requests, urllib3 and MLflow raise them (MLflow raises its own inside
`except`, so the original is the __context__), without a server.
"""

import pytest
import requests
import urllib3
from mlflow.exceptions import MlflowException, RestException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, PERMISSION_DENIED, REQUEST_LIMIT_EXCEEDED

from synapse_ml_track.tracking import http
from synapse_ml_track.tracking.failures import describe_failure
from synapse_ml_track.tracking.retries import busy_status, is_transient
from synapse_ml_track.tracking.transfers import ArtifactTransferError

URI = "http://mlflow.example:5000"


def raised_by_mlflow(original: BaseException) -> MlflowException:
    """MLflow's http_request: `except Exception as e: raise MlflowException(f"... {e}")`."""
    try:
        try:
            raise original
        except Exception as error:  # noqa: BLE001 - as MLflow does
            raise MlflowException(f"API request to {URI}/api/2.0/mlflow/runs/create failed with exception {error}")  # noqa: B904
    except MlflowException as wrapped:
        return wrapped


def refused() -> BaseException:
    reason = urllib3.exceptions.NewConnectionError(None, "Failed to establish a new connection: [Errno 111] refused")
    return requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/x", reason))


def kept_failing(status: int) -> BaseException:
    reason = urllib3.exceptions.ResponseError(
        urllib3.exceptions.ResponseError.SPECIFIC_ERROR.format(status_code=status)
    )
    return requests.exceptions.RetryError(urllib3.exceptions.MaxRetryError(None, "/x", reason))


def dropped() -> BaseException:
    return requests.ConnectionError(urllib3.exceptions.ProtocolError("Connection aborted.", ConnectionResetError(104)))


def aml_refusal() -> RestException:
    return RestException({"error": {"code": "UserError", "message": "Bearer token not provided.",
                                    "innerError": {"code": "AuthorizationError"}}})  # fmt: skip


CASES = [
    (raised_by_mlflow(refused()), "cannot reach the MLflow tracking server at", True, None),
    (raised_by_mlflow(requests.ReadTimeout("Read timed out. (read timeout=10)")), "did not answer in time", True, None),
    (raised_by_mlflow(kept_failing(503)), "kept answering HTTP 503", True, 503),
    (raised_by_mlflow(kept_failing(429)), "kept answering HTTP 429", True, 429),
    (raised_by_mlflow(dropped()), "cannot reach the MLflow tracking server", True, None),
    (MlflowException("slow down", error_code=REQUEST_LIMIT_EXCEEDED), "kept answering HTTP 429", True, 429),
    (MlflowException("no", error_code=PERMISSION_DENIED), "refused the credentials (HTTP 403)", False, None),
    (aml_refusal(), "refused the credentials (AuthorizationError: Bearer token not provided.)", False, None),
    (MlflowException("bad filter", error_code=INVALID_PARAMETER_VALUE), "tracking server error at", False, None),
    (
        ArtifactTransferError("artifact upload did not finish within 6 s"),
        "did not finish within 6 s (tracking URI",
        False,
        None,
    ),
    (
        ValueError("surprise\nsecond line"),
        "tracking failed at http://mlflow.example:5000: ValueError: surprise",
        False,
        None,
    ),
]


@pytest.mark.parametrize(("exc", "words", "transient", "status"), CASES, ids=lambda c: type(c).__name__)
def test_failures_read_as_one_line_and_retry_only_when_transient(exc, words, transient, status):
    line = describe_failure(exc, URI)
    assert words in line and "\n" not in line and URI in line
    assert is_transient(exc) is transient
    assert busy_status(exc) == status


def test_a_busy_answer_with_aml_error_body_keeps_its_status(monkeypatch):
    """AML answers a failing store with 503 and its own error body, which names no MLflow error code:
    MLflow's verify_rest_response would raise INTERNAL_ERROR from it, the 503 lost, so the job
    neither asked again nor said the server was busy. The policy gives up with the status instead."""
    from mlflow.utils.rest_utils import MlflowHostCreds, call_endpoint

    body = (b'{"error": {"code": "SystemError", "message": "the store did not answer", '
            b'"innerError": {"code": "ServiceUnavailable"}}}')  # fmt: skip

    def aml_answers_503(host_creds, endpoint, method, **kwargs):
        response = requests.Response()
        response.status_code, response._content = 503, body
        response.url = host_creds.host + endpoint
        return response

    monkeypatch.setattr(http, "time", type("NoSleep", (), {"sleep": staticmethod(lambda s: None)}))
    monkeypatch.setattr("mlflow.utils.rest_utils.http_request", http._with_policy(aml_answers_503))
    with http.policy(retries=1), pytest.raises(Exception) as caught:
        call_endpoint(MlflowHostCreds(URI), "/api/2.0/mlflow/runs/update", "POST", '{"run_id": "r"}', None)

    assert busy_status(caught.value) == 503 and is_transient(caught.value)
    assert "kept answering HTTP 503" in describe_failure(caught.value, URI)
