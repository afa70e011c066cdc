"""A checked connection to the tracking server and registry, made before any training starts."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import time
from collections.abc import Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from mlflow.entities import Dataset, DatasetInput, InputTag
from mlflow.exceptions import MlflowException
from mlflow.store.db.db_types import DATABASE_ENGINES
from mlflow.tracking import MlflowClient

from synapse_ml_track.config import JobConfig
from synapse_ml_track.errors import ConfigError, JobError, failure_line
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.tracking import aml, registry
from synapse_ml_track.tracking.failures import tracking_errors
from synapse_ml_track.tracking.http import policy_for, transfer_deadline
from synapse_ml_track.tracking.limits import Limits, limits_for
from synapse_ml_track.tracking.retries import probe
from synapse_ml_track.tracking.run_keys import KeyedRun, take_keyed_run
from synapse_ml_track.tracking.runs import RunTracker, is_remote, local_tracking_uri, resolve_experiment
from synapse_ml_track.tracking.transfers import download_run_artifacts
from synapse_ml_track.vocabulary import DATAFRAME

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

    from synapse_ml_track.spark.sources import InputSource  # the Spark side: only its type here

log = logging.getLogger(__name__)


@dataclass
class TrackingSession:
    uri: str
    client: MlflowClient
    experiment_id: str
    limits: Limits
    create_attempts: int = 1  # tries for a create whose lost response is looked up before resending
    credential_source: str | None = None  # "environment (client secret)", "key vault kv-ml", ...; None off Azure
    transfer_seconds: float = 600.0  # deadline of one artifact transfer (per batch of up to 50 files)
    lease_seconds: float = 60.0  # tracking.lease_seconds
    live_run_wait: float = 3600.0  # tracking.live_run_wait

    def tracking_errors(self, hint: str | None = None) -> AbstractContextManager[None]:
        """Tracking failures inside as one TrackingError line; the job's own errors pass through."""
        return tracking_errors(self.uri, hint)

    @contextmanager
    def failing_run(self, tracker: RunTracker) -> Iterator[None]:
        """Any failure inside ends the run FAILED with its reason; a tracking failure becomes one
        TrackingError line instead of MLflow's retry history."""
        try:
            with self.tracking_errors():
                yield
        except Exception as exc:
            tracker.fail(failure_reason(exc))
            raise
        except BaseException:  # a notebook's interrupt: the process goes on, the lease must not
            tracker.end_lease()
            raise

    def start_run(
        self, run_name: str | None, tags: Mapping[str, str], redactor: Redactor, leased: bool = True
    ) -> RunTracker:
        """A new run; `leased`: with this job's lease on it, so that a rerun by its run key waits while
        this job writes it (a search candidate's run needs none: its parent's key finds the parent)."""
        return RunTracker.start(
            self.client, self.experiment_id, run_name, tags, self.limits, redactor,
            create_attempts=self.create_attempts, transfer_seconds=self.transfer_seconds,
            lease_seconds=self.lease_seconds if leased else None,
        )  # fmt: skip

    def keyed_run(self, run_key: str, job: str, take_over: Collection[str], what: str | None = None) -> KeyedRun | None:
        """The run of this run key once no live job writes it (run_keys.take_keyed_run)."""
        return take_keyed_run(
            self.client, self.experiment_id, run_key, job, lease_seconds=self.lease_seconds,
            wait_seconds=self.live_run_wait, take_over=take_over, what=what,
        )  # fmt: skip

    def resume_run(self, keyed: KeyedRun, redactor: Redactor) -> RunTracker:
        return RunTracker.resume(
            self.client, keyed.run, self.limits, redactor, transfer_seconds=self.transfer_seconds, lease=keyed.lease
        )  # fmt: skip

    def download_artifacts(self, run_id: str, path: str, destination: str) -> str:
        """A run's artifacts, within the transfer deadline."""
        return download_run_artifacts(self.client, run_id, path, destination, self.transfer_seconds)

    def log_input(
        self,
        run_id: str,
        source: InputSource,
        schema_json: str,
        rows: int,
        context: str = "training",
        tags: dict[str, str] | None = None,
    ) -> None:
        """Record the job's input (training's or scoring's, by `context`) without scanning it: the digest
        covers location and schema, and a Delta input's version; `tags` go on the input beside the context."""
        input_tags = [InputTag("mlflow.data.context", context), *(InputTag(k, v) for k, v in (tags or {}).items())]
        if source.frame is not None:
            self._log_dataset(run_id, frame_dataset(source.frame, schema_json, rows), input_tags)
            return
        pinned = source.delta_source()  # a Delta input: as mlflow.data's DeltaDatasetSource names it, with its version
        digest_of = "|".join([source.path, source.format, schema_json, *([json.dumps(pinned)] if pinned else [])])
        dataset = Dataset(
            name=source.path.rstrip("/").rsplit("/", 1)[-1] or source.path,
            digest=hashlib.sha256(digest_of.encode()).hexdigest()[:36],
            source_type="delta_table" if pinned else "spark" if not source.bundled else "local",
            source=json.dumps(pinned or {"path": source.path, "format": source.format}),
            schema=schema_json,
            profile=json.dumps({"num_rows": rows}),
        )
        self._log_dataset(run_id, dataset, input_tags)

    def _log_dataset(self, run_id: str, dataset: Dataset, tags: list[InputTag]) -> None:
        try:
            self.client.log_inputs(run_id, [DatasetInput(dataset, tags=tags)])
        except MlflowException as exc:
            if exc.get_http_status_code() != 404:
                raise
            log.warning("the tracking server does not record dataset inputs (HTTP 404); input not logged")


def failure_reason(exc: BaseException) -> str:
    """What a FAILED run's error tag says: a JobError's own line, else the exception's type and first line."""
    return str(exc) if isinstance(exc, JobError) else f"{type(exc).__name__}: {failure_line(exc)}"


def frame_dataset(frame: DataFrame, schema_json: str, rows: int) -> Dataset:
    """A DataFrame handed over in code, recorded as mlflow.data.from_spark records one given without a
    path or table: a "code" source, digested by its plan's semantic hash (mlflow/data/spark_dataset.py,
    from_spark and SparkDataset._compute_digest), here with the model's input schema; no path."""
    digest_of = "|".join([str(frame.semanticHash()), schema_json])
    return Dataset(
        name=DATAFRAME,
        digest=hashlib.sha256(digest_of.encode()).hexdigest()[:36],
        source_type="code",
        source=json.dumps({"tags": {}}),
        schema=schema_json,
        profile=json.dumps({"num_rows": rows}),
    )


# What MLflow 3.7+ says when asked to open a file store (a directory such as ./mlruns) as a tracking URI.
_FILE_STORE_OPT_OUT = "MLFLOW_ALLOW_FILE_STORE"


@contextmanager
def _file_store_refusal(uri: str) -> Iterator[None]:
    """MLflow's refusal of a file store as one line that says what to track to instead."""
    try:
        yield
    except MlflowException as exc:
        if _FILE_STORE_OPT_OUT not in str(exc):
            raise
        raise ConfigError(
            f"tracking URI {uri} is a directory (a file store), which this MLflow opens only with "
            f"{_FILE_STORE_OPT_OUT}=true; track to a database instead, e.g. sqlite:///mlflow.db"
        ) from None


def open_session(
    config: JobConfig,
    redactor: Redactor,
    environ: Mapping[str, str] | None = None,
    *,
    create_experiment: bool = True,
    experiment: bool = True,
) -> TrackingSession:
    """Resolve the tracking URI, set up Azure credentials when needed, and check the server answers.

    Fails within the preflight budget when the server is unreachable or refuses us, instead of
    letting MLflow's retry schedule stall the job for minutes after training. Without `experiment`
    (a caller that starts no run) no experiment is looked up: the registry is asked instead.
    """
    tracking = config.tracking
    uri, credential = aml.connect(tracking.uri, config.azure, os.environ if environ is None else environ, redactor)
    require_store_modules(uri)
    uri = uri or local_tracking_uri(tracking.local_dir)
    with _file_store_refusal(uri):
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    artifact_location = None if is_remote(uri) else _local_artifact_location(tracking.local_dir)
    timeout = tracking.preflight_timeout
    # A server that answers busy (5xx) or drops a connection it took is alive: asked as often as any
    # request of the job (tracking.max_retries), with backoff. Three attempts (1 + 2 s) gave up on a
    # burst of 503s, and a rerun of a killed job then left that job's run RUNNING (the short soak).
    attempts = tracking.max_retries + 1
    deadline = time.monotonic() + tracking.preflight_budget  # for the whole preflight, both probes
    experiment_id = ""
    with tracking_errors(uri):
        if experiment:
            experiment_id = probe(
                lambda: resolve_experiment(client, tracking, artifact_location, uri, create_experiment),
                timeout, attempts, deadline=deadline,
            )  # fmt: skip
        if tracking.register or not experiment:
            probe(
                lambda: registry.model_if_exists(client, tracking.registered_model_name),
                timeout, attempts, deadline=deadline,
            )  # fmt: skip
    return TrackingSession(
        uri=uri,
        client=client,
        experiment_id=experiment_id,
        limits=limits_for(uri),
        create_attempts=tracking.max_retries + 1,
        credential_source=credential.source if credential else None,
        transfer_seconds=transfer_deadline(policy_for(tracking)),
        lease_seconds=tracking.lease_seconds,
        live_run_wait=tracking.live_run_wait,
    )


def require_store_modules(uri: str | None) -> None:
    """MLflow's database stores, the embedded default (sqlite, when `uri` is None) among them, import
    SQLAlchemy and Alembic (mlflow/store/db/utils.py): the Synapse runtime ships mlflow-skinny with
    SQLAlchemy but no Alembic. Checked before anything is created, so the job stops in one line."""
    scheme = "sqlite" if uri is None else urlparse(uri).scheme.split("+")[0].lower()
    if scheme not in DATABASE_ENGINES:
        return
    missing = [name for name in ("sqlalchemy", "alembic") if importlib.util.find_spec(name) is None]
    if not missing:
        return
    needs = " and ".join(missing)
    if uri is None:
        problem = f"no tracking URI is configured and the embedded store (sqlite) needs {needs}"
    else:
        problem = f"tracking URI scheme '{scheme}' is a database store, which needs {needs}"
    lost = ", and a store on the driver's disk is lost with the cluster anyway" if scheme == "sqlite" else ""
    raise ConfigError(
        f"{problem}, which this environment lacks (a Synapse pool has no alembic{lost}); set tracking.uri "
        "(--tracking-uri, MLFLOW_TRACKING_URI) to an MLflow server or an Azure ML workspace's URI, or name the "
        "workspace with azure.subscription_id, azure.resource_group and azure.workspace_name "
        "(AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZUREML_WORKSPACE_NAME)"
    )


def _local_artifact_location(local_dir: str) -> str:
    return (Path(local_dir).resolve() / "artifacts").as_uri()
