"""One MLflow run per job: where it goes, what it holds, and how few requests it costs."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any, TypeVar

from mlflow.entities import Metric, Param, Run, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.store.entities import PagedList
from mlflow.tracking import MlflowClient
from mlflow.utils.time import get_current_time_millis

from synapse_ml_track.config import TrackingConfig
from synapse_ml_track.errors import ConfigError, TrackingError, first_line
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.tracking import http
from synapse_ml_track.tracking.http import ARTIFACT_BATCH_FILES
from synapse_ml_track.tracking.leases import Lease
from synapse_ml_track.tracking.limits import Limits, admit, fit_key
from synapse_ml_track.tracking.retries import create_once, settle
from synapse_ml_track.tracking.transfers import (
    bounded_transfer,
    download_run_artifacts,
    while_busy,
    write_once_path,
)
from synapse_ml_track.vocabulary import ATTEMPT_TAG, EMBEDDED, ERROR_TAG, LEASE_TAG, tracking_backend

log = logging.getLogger(__name__)
T = TypeVar("T")

SOURCE_TAG_PREFIX = "mlflow.source."


def local_tracking_uri(local_dir: str) -> str:
    """The embedded default: an sqlite store (runs and registry) under the project, no server."""
    directory = Path(local_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlflow.db'}"


def is_remote(uri: str) -> bool:
    return tracking_backend(uri) != EMBEDDED


def all_pages(
    fetch: Callable[[str | None], PagedList[T]], limit: int | None = None, keep: Callable[[T], bool] | None = None
) -> list[T]:
    """The results of a paged MLflow search that `keep` accepts (all by default), up to `limit`:
    `fetch(page_token)` returns a PagedList whose `.token` names the next page."""
    results: list[T] = []
    token: str | None = None
    while limit is None or len(results) < limit:
        page = fetch(token)
        results += [item for item in page if keep is None or keep(item)]
        token = page.token
        if not token:
            break
    return results if limit is None else results[:limit]


def resolve_experiment(
    client: MlflowClient, tracking: TrackingConfig, artifact_location: str | None, uri: str, create: bool = True
) -> str:
    """The experiment id for the configured id or name; a named experiment is created on first use
    when `create` is set."""
    experiment_id: str
    if tracking.experiment_id:
        try:
            experiment_id = client.get_experiment(tracking.experiment_id).experiment_id
            return experiment_id
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise ConfigError(f"experiment '{tracking.experiment_id}' not found at {uri}") from None
    name = tracking.experiment_name
    if not name:  # config.validate refuses a config naming neither
        raise ConfigError("set tracking.experiment_name or tracking.experiment_id (or MLFLOW_EXPERIMENT_NAME)")
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(
                f"experiment '{name}' is deleted; restore it or choose another tracking.experiment_name"
            )
        experiment_id = experiment.experiment_id
        return experiment_id
    if not create:
        raise ConfigError(f"experiment '{name}' not found at {uri}")
    try:
        return client.create_experiment(name, artifact_location=artifact_location)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":  # an earlier attempt landed, or a concurrent job
            raise
    experiment = client.get_experiment_by_name(name)
    if experiment is None:  # created by another, then deleted for good before this lookup
        raise TrackingError(f"experiment '{name}' was created by another client and is gone again")
    experiment_id = experiment.experiment_id
    return experiment_id


# How long the error tag may keep asking a slow or busy server, in request timeouts, once the run is FAILED.
ERROR_TAG_TIMEOUTS = 2


class RunTracker:
    """Collects a run's params, metrics and tags and sends them in as few batches as the backend allows."""

    def __init__(
        self, client: MlflowClient, run_id: str, limits: Limits, redactor: Redactor, transfer_seconds: float = 600.0
    ) -> None:
        self.client = client
        self.run_id = run_id
        self.limits = limits
        self.redactor = redactor
        self.transfer_seconds = transfer_seconds  # per batch of up to 50 artifact files
        self._tag_count = 0
        self._metric_names: set[str] = set()
        self._param_names: set[str] = set()
        self._pending_tags: list[RunTag] = []
        # what an interrupted attempt of a resumed run already logged: not logged a second time
        self._logged_metrics: dict[str, float] = {}
        self._lease: Lease | None = None  # this job's on the run, renewed until the run ends

    def _take_pending_tags(self) -> list[RunTag]:
        pending, self._pending_tags = self._pending_tags, []
        return pending

    @classmethod
    def start(
        cls,
        client: MlflowClient,
        experiment_id: str,
        run_name: str | None,
        tags: Mapping[str, str],
        limits: Limits,
        redactor: Redactor,
        create_attempts: int = 1,
        transfer_seconds: float = 600.0,
        lease_seconds: float | None = None,
    ) -> RunTracker:
        """Create the run; a lost response is detected by the attempt-id tag, never sent twice.

        `mlflow.source.*` tags are set right after creation: AML drops them when they come with
        the creation request (Azure/azure-sdk-for-python#45207). With `lease_seconds` the run is
        created with this job's lease on it (tracking/leases.py), so it is never without one.
        """
        attempt_id = uuid.uuid4().hex
        own = {ATTEMPT_TAG: attempt_id}
        lease = None
        if lease_seconds is not None:
            lease = Lease(client, lease_seconds)
            own[LEASE_TAG] = lease.value()
        fitted = {**cls._fit_tags(dict(tags), limits, redactor, already=len(own)), **own}
        at_creation = {k: v for k, v in fitted.items() if not k.startswith(SOURCE_TAG_PREFIX)}
        after_creation = [RunTag(k, v) for k, v in fitted.items() if k.startswith(SOURCE_TAG_PREFIX)]
        run = create_once(
            lambda: client.create_run(experiment_id, run_name=run_name, tags=at_creation),
            lambda: _run_with_attempt_id(client, experiment_id, attempt_id),
            attempts=create_attempts,
        )
        tracker = cls(client, run.info.run_id, limits, redactor, transfer_seconds)
        tracker._pending_tags = after_creation  # sent with the run's first batch: no request of their own
        tracker._tag_count = len(fitted)
        if lease is not None:
            tracker._lease = lease.start(run.info.run_id)
        return tracker

    @classmethod
    def resume(
        cls,
        client: MlflowClient,
        run: Run,
        limits: Limits,
        redactor: Redactor,
        transfer_seconds: float = 600.0,
        lease: Lease | None = None,
    ) -> RunTracker:
        """Continue an interrupted run of the same run key, taken over with `lease`
        (run_keys.take_keyed_run): running again, its old error cleared."""
        try:
            client.update_run(run.info.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
            if ERROR_TAG in run.data.tags:
                try:
                    client.delete_tag(run.info.run_id, ERROR_TAG)
                except MlflowException as exc:
                    if exc.error_code != "RESOURCE_DOES_NOT_EXIST":  # a resent delete whose first answer was lost
                        raise
        except BaseException:
            if lease is not None:
                lease.end()  # not resumed: a rerun takes the run over once the lease expires
            raise
        tracker = cls(client, run.info.run_id, limits, redactor, transfer_seconds)
        tracker._tag_count = len(run.data.tags | ({LEASE_TAG: ""} if lease else {}))
        tracker._lease = lease
        tracker._metric_names = set(run.data.metrics)
        tracker._param_names = set(run.data.params)
        tracker._logged_metrics = dict(run.data.metrics)
        return tracker

    @staticmethod
    def _fit_tags(tags: dict[str, str], limits: Limits, redactor: Redactor, already: int) -> dict[str, str]:
        fitted = {
            fit_key(k, limits.tag_key_length): redactor.redact(str(v))[: limits.tag_value_length]
            for k, v in tags.items()
        }
        if limits.tags_per_run is not None:
            room = max(0, limits.tags_per_run - already - 5)  # MLflow adds a few system tags of its own
            if len(fitted) > room:
                dropped = sorted(fitted)[room:]
                log.warning(
                    "tracking backend allows %s tags a run; not logging: %s", limits.tags_per_run, ", ".join(dropped)
                )
                fitted = {k: fitted[k] for k in sorted(fitted)[:room]}
        return fitted

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [
            Param(name, self.redactor.redact(str(value))[: self.limits.param_value_length])
            for key, value in sorted(params.items())
            if (name := admit(key, self._param_names, self.limits.params_per_run, self.limits.key_length, "param"))
        ]
        for chunk in _chunks(items, self.limits.params_per_batch):
            self.client.log_batch(self.run_id, params=chunk, tags=self._take_pending_tags())

    def log_metrics(self, metrics: Mapping[str, float], tags: Mapping[str, str] | None = None) -> None:
        """Metrics (and any late tags) in one batch per backend limit; timestamps fixed before sending,
        so a retried request stores the same values rather than new ones."""
        timestamp = int(time.time() * 1000)
        limits = self.limits
        entries = [
            Metric(key, float(value), timestamp, 0)
            for name, value in metrics.items()
            if (key := admit(name, self._metric_names, limits.metric_names_per_run, limits.key_length, "metric"))
            and self._logged_metrics.get(key) != float(value)
        ]
        late_tags = [
            RunTag(k, v)
            for k, v in self._fit_tags(dict(tags or {}), self.limits, self.redactor, self._tag_count).items()
        ]
        self._tag_count += len(late_tags)
        late_tags = self._take_pending_tags() + late_tags
        metric_chunks = _chunks(entries, self.limits.metrics_per_batch) or [[]]
        for i, chunk in enumerate(metric_chunks):
            self.client.log_batch(self.run_id, metrics=chunk, tags=late_tags if i == 0 else [])

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(
            self.run_id,
            fit_key(key, self.limits.tag_key_length),
            self.redactor.redact(value)[: self.limits.tag_value_length],
        )

    def artifact_files(self) -> set[str]:
        """Every file path the run already holds (for a resumed run: artifact stores may be write-once).

        Listed through the run's own artifact repository: MlflowClient.list_artifacts with a path
        goes through `runs:/`, which in MLflow 3 also searches /logged-models, a 404 on AML.
        """
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        repository = get_artifact_repository(self.client.get_run(self.run_id).info.artifact_uri)

        def walk(path: str | None) -> set[str]:
            found: set[str] = set()
            for info in repository.list_artifacts(path):
                found |= walk(info.path) if info.is_dir else {info.path}
            return found

        return bounded_transfer(lambda: walk(None), self.transfer_seconds, "listing")

    def log_artifacts(
        self,
        local_dir: Path,
        artifact_path: str | None = None,
        skip: AbstractSet[str] = frozenset(),
        *,
        resumed: bool = False,
    ) -> set[str]:
        """Upload a directory's files, leaving out those whose artifact path is in `skip`. While the
        workspace's artifact service is busy, the files the run does not hold yet are sent again, as
        the job's retry policy allows (transfers.while_busy): the plugin creates them 50 at a time.

        Returns the paths it could not write. A `resumed` run's earlier attempt may have died between
        AML creating a file's entry and its content reaching the blob store: AML's listing leaves such
        a file out, and its write-once store refuses it again. So a resumed run's files go one at a
        time: in a batch, AML would create the others and refuse the batch, leaving them empty too."""
        files = sorted(p for p in Path(local_dir).rglob("*") if p.is_file())
        targets = {p: "/".join(filter(None, [artifact_path, p.relative_to(local_dir).as_posix()])) for p in files}
        held, refused, attempts = set(skip), set(), 0

        def upload_one(path: Path) -> None:
            try:
                self.client.log_artifact(self.run_id, str(path), targets[path].rpartition("/")[0] or None)
            except Exception as exc:  # noqa: BLE001 - the plugin raises a bare Exception for a conflict
                if not resumed or write_once_path(exc) != targets[path]:
                    raise
                refused.add(targets[path])

        def upload_missing() -> None:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # the refused attempt may have created and filled earlier batches
                held.update(self.artifact_files())
            wanted = [p for p in files if targets[p] not in held | refused]
            deadline = self.transfer_seconds * max(1, -(-len(wanted) // ARTIFACT_BATCH_FILES))
            if len(wanted) == len(files) and not resumed:
                upload = lambda: self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)  # noqa: E731
            else:

                def upload() -> None:
                    for path in wanted:
                        upload_one(path)

            if wanted:
                bounded_transfer(upload, deadline, "upload")

        if any(targets[p] not in skip for p in files):
            while_busy(upload_missing, "upload", uploading=True)
        return refused

    def download_artifacts(self, path: str, destination: str) -> str:
        return download_run_artifacts(self.client, self.run_id, path, destination, self.transfer_seconds)

    def finish(self) -> None:
        if self._pending_tags:
            self.client.log_batch(self.run_id, tags=self._take_pending_tags())
        self._terminate(RunStatus.FINISHED)

    def end_lease(self) -> None:
        """Stop renewing this job's lease: a run that is not ended (it cannot be, or the job was
        interrupted) is taken over by a rerun once the lease expires."""
        if self._lease is not None:
            self._lease.end()

    def _terminate(self, status: int) -> None:
        self.end_lease()
        # What MlflowClient.set_terminated sends, without what it does first: MLflow 2.x fetches the
        # run again to write "View run ... at: <url>" to stdout, with no switch to stop it (MLflow 3
        # has MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT). The job's stdout must end with its JSON summary,
        # and redirecting sys.stdout around the call is not an option: search candidates end their
        # runs in worker threads, and sys.stdout is one per process.
        store = self.client._tracking_client.store
        store.update_run_info(
            self.run_id, run_status=status, end_time=get_current_time_millis(), run_name=None
        )  # fmt: skip

    def fail(self, message: str) -> None:
        """Mark the run FAILED, then tag it with the reason, each asked again while the server is slow,
        busy or drops the connection; a server that refuses connections is not waited for. Ending the
        run comes first and may take as long as any request of the job with all its attempts: a run
        left RUNNING is the worse loss, and the server may be the thing that failed. A refused tag
        (AML's limits) leaves the run FAILED all the same."""
        policy = http.current_policy()
        try:
            settle(lambda: self._terminate(RunStatus.FAILED), policy.attempts_seconds)
        except Exception as exc:  # noqa: BLE001 - the original failure is what the user must see
            log.warning(
                "could not mark run %s FAILED: %s; it stays RUNNING until a rerun with the same run key ends it",
                self.run_id, self.redactor.redact(first_line(exc)),
            )  # fmt: skip
            return
        try:
            settle(lambda: self.set_tag(ERROR_TAG, message), ERROR_TAG_TIMEOUTS * policy.timeout)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not tag run %s with its error: %s", self.run_id, self.redactor.redact(first_line(exc)))


def _run_with_attempt_id(client: MlflowClient, experiment_id: str, attempt_id: str) -> Run | None:
    runs = client.search_runs([experiment_id], filter_string=f"tags.{ATTEMPT_TAG} = '{attempt_id}'", max_results=1)
    return runs[0] if runs else None


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]
