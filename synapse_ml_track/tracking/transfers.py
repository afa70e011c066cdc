"""Artifact transfers bounded in time: uploads and downloads through MLflow or the AML plugin, each
under one deadline and failing with one ArtifactTransferError line."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from synapse_ml_track.errors import first_line
from synapse_ml_track.tracking import abandoned_transfers, http

T = TypeVar("T")
log = logging.getLogger(__name__)


class ArtifactTransferError(Exception):
    """An artifact upload or download failed or did not finish in time; the message says which."""


class StoreBusy(ArtifactTransferError):
    """The artifact store answered that it is busy (throttled, unavailable) after the client's own
    retries: asking again later may succeed. `retry_after`: the seconds it asked for, when it said.
    `content`: the busy answer came from the blob store, to a file's content (a SAS-signed URL), after
    the workspace had created the file's (then empty) artifact entry."""

    def __init__(self, message: str, retry_after: float | None = None, *, content: bool = False) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.content = content


def write_once_path(error: BaseException) -> str | None:
    """The path of the plugin's write-once conflict (run_artifact_client._create_empty_artifacts), if it is one."""
    conflict = _WRITE_ONCE_CONFLICT.search(str(error))
    return conflict.group(1) if conflict else None


def bounded_transfer(call: Callable[[], T], seconds: float, what: str) -> T:
    """Run an artifact transfer with an overall deadline, turning the plugin's failures into one error.

    The transfer runs in a worker thread; when the deadline passes the job stops waiting (the thread
    is abandoned, and the process entry point does not wait for it: see abandoned_transfers).
    Failures that are not MLflow's own (the AML plugin raises bare Exceptions and azure-core errors)
    become an ArtifactTransferError.
    """
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["value"] = call()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            outcome["error"] = exc

    worker = threading.Thread(target=work, name=f"smt-artifact-{what.split()[0]}", daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        abandoned_transfers.abandon(worker)
        raise ArtifactTransferError(f"artifact {what} did not finish within {seconds:.0f} s")
    error = outcome.get("error")
    if error is None:
        value: T = outcome["value"]
        return value
    if isinstance(error, (MlflowException, ArtifactTransferError)) or not isinstance(error, Exception):
        raise error
    status = getattr(error, "status_code", None)  # azure-core's HttpResponseError (the plugin's REST client)
    if status in http.RETRYABLE_STATUS:
        response = getattr(error, "response", None)
        asked = http.retry_after_header(getattr(response, "headers", None) or {})
        url = str(getattr(getattr(response, "request", None), "url", "") or "")
        raise StoreBusy(
            f"artifact {what} failed: HTTP {status}: {first_line(error)[:300]}", asked, content="sig=" in url
        ) from None
    conflict = write_once_path(error)
    if conflict:
        raise ArtifactTransferError(
            f"artifact {what} failed: the run already holds {conflict} (AML run artifacts are write-once)"
        ) from None
    raise ArtifactTransferError(f"artifact {what} failed: {type(error).__name__}: {first_line(error)[:300]}") from None


def download_run_artifacts(client: MlflowClient, run_id: str, path: str, destination: str, seconds: float) -> str:
    """A run's artifacts under `path`, within the transfer deadline, failing with the transfer's own error.

    Read through the run's own artifact repository, not MlflowClient.download_artifacts: in MLflow 3
    that goes through `runs:/`, whose RunsArtifactRepository.download_artifacts
    (mlflow/store/artifact/runs_artifact_repo.py, 3.15) logs any failure at debug level and raises
    "Failed to download artifacts from path 'model', please ensure that the path is correct" instead,
    so a 503 or a dropped connection read as a wrong path (seen in the 50-job soak).
    """
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    def download() -> str:
        repository = get_artifact_repository(client.get_run(run_id).info.artifact_uri)
        try:
            return str(repository.download_artifacts(path, destination))
        except MlflowException as exc:
            failed = _FAILED_DOWNLOAD.search(exc.message)
            if not failed:
                raise
            file, error = failed.groups()
            cause = _URLLIB3_CAUSE.search(error)  # MLflow's text holds the whole URL before urllib3's reason
            reason = cause.group(1) if cause else error[:300]
            busy = StoreBusy if _BUSY.search(error) else ArtifactTransferError
            raise busy(f"artifact download failed: {file}: {reason}") from None

    return while_busy(lambda: bounded_transfer(download, seconds, "download"), "download")


def while_busy(transfer: Callable[[], T], what: str, *, uploading: bool = False) -> T:
    """A transfer again, as the job's retry policy (tracking/http.py) allows, while the store is busy:
    the plugin's REST client retries a 429 or 503 three times (azure-core's RetryPolicy, retry_status=3),
    which a throttled workspace outlasts. A download only writes local files, so asking again is safe.
    An upload (`uploading`) is asked again only when the workspace's artifact service refused it (a
    throttled request is not processed: no artifact entry was created by it), never when the blob store
    refused a file's content: AML run artifacts are write-once, and that file's entry already exists."""
    retry, failures, waited = http.current_policy(), 0, 0.0
    while True:
        try:
            return transfer()
        except StoreBusy as busy:
            failures += busy.retry_after is None  # as send_with_retries counts a throttled answer
            pause = retry.next_wait(failures, waited, busy.retry_after)
            if pause is None or (uploading and busy.content):
                raise
            log.info("%s; the artifact %s is tried again in %.1f s", busy, what, pause)
            time.sleep(pause)
            waited += pause


# MLflow's report of failed file downloads, one "##### File PATH #####" section per file, the error on
# the next line (ArtifactRepository.download_artifacts, mlflow/store/artifact/artifact_repo.py).
_FAILED_DOWNLOAD = re.compile(r"^##### File (.+?) #####\n(.*)$", re.M)
_URLLIB3_CAUSE = re.compile(r"\(Caused by (.+)\)\s*$")
# A busy store's answer in MLflow's report of a failed file: AML's throttling error (azure-core's
# HttpResponseError text "(UserError) The request was throttled"), or a 429/503 by its reason.
_BUSY = re.compile(r"throttled|Too Many Requests|Service Unavailable|ServerBusy", re.I)


# The plugin's text for a path the run already has (run_artifact_client._create_empty_artifacts).
_WRITE_ONCE_CONFLICT = re.compile(r"Resource Conflict: ArtifactId ExperimentRun/dcid\.[^/]+/(\S+) already exists")
