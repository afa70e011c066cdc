"""When an artifact transfer is asked again: a busy workspace, yes; a busy blob store mid-upload, no."""

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest

from synapse_ml_track.tracking import http, transfers
from synapse_ml_track.tracking.transfers import StoreBusy, bounded_transfer, while_busy

WORKSPACE = (
    "https://westeurope.api.azureml.ms/history/v1.0/subscriptions/s/experiments/e/runs/r/artifacts/batch/metadata"
)
BLOB = "https://account.blob.core.windows.net/azureml/ExperimentRun/dcid.r/model/MLmodel?sv=2019-07-07&sig=abc"


class Answer:
    """What azure-core's HttpResponseError reads of a response: its status, headers and request."""

    def __init__(self, url: str, status: int) -> None:
        self.request = HttpRequest("PUT", url)
        self.status_code, self.reason, self.headers = status, "Too Many Requests", {"Retry-After": "1"}

    def text(self) -> str:
        return ""


def refused(url: str, status: int = 429):
    def call() -> None:
        raise HttpResponseError(message="The request was throttled", response=Answer(url, status))

    return call


@pytest.mark.parametrize(("url", "content"), [(WORKSPACE, False), (BLOB, True)])
def test_a_busy_answer_says_whether_it_refused_a_files_content(url, content):
    with pytest.raises(StoreBusy) as busy:
        bounded_transfer(refused(url), 5, "upload")
    assert (busy.value.content, busy.value.retry_after) == (content, 1.0)
    assert str(busy.value).startswith("artifact upload failed: HTTP 429")


@pytest.fixture
def no_sleep(monkeypatch):
    waits: list[float] = []
    monkeypatch.setattr(transfers.time, "sleep", waits.append)
    return waits


def test_an_upload_the_workspace_refused_is_sent_again(no_sleep):
    attempts = []

    def upload() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            bounded_transfer(refused(WORKSPACE), 5, "upload")
        return "uploaded"

    with http.policy(retries=5, max_wait=60):
        assert while_busy(upload, "upload", uploading=True) == "uploaded"
    assert (len(attempts), no_sleep) == (3, [1.0, 1.0])


def test_an_upload_the_blob_store_refused_is_not_sent_again(no_sleep):
    """The workspace created the file's (empty) entry before its content was refused: the entry is
    write-once, so sending the file again would fail or leave it empty. Only a download is asked again."""
    attempts = []

    def transfer() -> None:
        attempts.append(1)
        bounded_transfer(refused(BLOB, 503), 5, "upload")

    with http.policy(retries=5, max_wait=60), pytest.raises(StoreBusy):
        while_busy(transfer, "upload", uploading=True)
    assert (len(attempts), no_sleep) == (1, [])

    with http.policy(max_wait=2), pytest.raises(StoreBusy):  # Retry-After answers: bounded by the wait
        while_busy(transfer, "download")
    assert (len(attempts), no_sleep) == (4, [1.0, 1.0])
