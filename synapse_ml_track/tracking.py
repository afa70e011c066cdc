"""One MLflow run per job: where it goes, what it holds, and how few requests it costs."""

from __future__ import annotations

import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping
from urllib.parse import urlparse

from mlflow.entities import Metric, Param, Run, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from synapse_ml_track.config import TrackingConfig
from synapse_ml_track.errors import TrackingError
from synapse_ml_track.redaction import Redactor

log = logging.getLogger(__name__)

ERROR_TAG = "smt.error"


@dataclass(frozen=True)
class Limits:
    """What one tracking backend accepts; AML's are tighter than open-source MLflow's."""

    params_per_batch: int = 100
    metrics_per_batch: int = 1000
    tags_per_batch: int = 100
    tags_per_run: int | None = None
    metric_names_per_run: int | None = None
    key_length: int = 250
    param_value_length: int = 6000
    tag_value_length: int = 8000


MLFLOW_LIMITS = Limits()
AML_LIMITS = Limits(metrics_per_batch=250, tags_per_run=50, metric_names_per_run=50, key_length=250, tag_value_length=5000)


def is_aml_uri(uri: str) -> bool:
    return uri.startswith("azureml:")


def limits_for(uri: str) -> Limits:
    return AML_LIMITS if is_aml_uri(uri) else MLFLOW_LIMITS


def local_tracking_uri(local_dir: str) -> str:
    """The embedded default: an sqlite store (runs and registry) under the project, no server."""
    directory = Path(local_dir).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{directory / 'mlflow.db'}"


def is_remote(uri: str) -> bool:
    return urlparse(uri).scheme in ("http", "https", "azureml")


def configure_http(tracking: TrackingConfig) -> None:
    """Bound MLflow's REST retries: its defaults (7 retries, factor 2, 120 s timeout) stall for minutes."""
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = str(tracking.max_retries)
    os.environ["MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR"] = "1"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, int(tracking.request_timeout)))


@contextmanager
def fail_fast_http(timeout: float) -> Iterator[None]:
    """No retries and a short timeout while probing whether the server is there at all."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = str(max(1, int(timeout)))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def describe_failure(exc: Exception, uri: str) -> str:
    """One line for a tracking failure, without MLflow's retry-history dump."""
    text = str(exc)
    if "Max retries exceeded" in text or "Connection refused" in text or "NewConnectionError" in text:
        return f"cannot reach the MLflow tracking server at {uri} (connection failed); is it running and is the URI right?"
    if "timed out" in text.lower() or "ReadTimeout" in text:
        return f"the MLflow tracking server at {uri} did not answer in time"
    if isinstance(exc, MlflowException):
        code = exc.get_http_status_code() if hasattr(exc, "get_http_status_code") else None
        aml_refusal = _aml_auth_error(exc)
        if code in (401, 403) or aml_refusal or "401" in text[:200] or "403" in text[:200] or "PERMISSION_DENIED" in text:
            reason = f"HTTP {code}" if code in (401, 403) else (aml_refusal or "HTTP 401/403")
            return (
                f"the tracking server at {uri} refused the credentials ({reason}); "
                "check the service principal and its role on the workspace"
            )
        first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
        return f"tracking server error at {uri}: {first[:300]}"
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"tracking failed at {uri}: {type(exc).__name__}: {first[:300]}"


# Codes in the JSON body AML answers a refused request with; MLflow reads that body as an
# INTERNAL_ERROR and the HTTP status is lost (mlflow/mlflow#5846).
_AML_AUTH_CODES = {
    "authorizationerror", "authenticationerror", "authorizationfailed", "authenticationfailed",
    "invalidauthenticationtoken", "expiredauthenticationtoken", "unauthorized", "forbidden",
}


def _aml_auth_error(exc: MlflowException) -> str | None:
    """'<code>: <message>' when the error body is AML's refusal of the token or the role, else None."""
    body = getattr(exc, "json", None)
    node = _lower_keys(_lower_keys(body).get("error")) if isinstance(body, dict) else None
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


def _lower_keys(value):
    return {str(k).lower(): v for k, v in value.items()} if isinstance(value, dict) else value


def resolve_experiment(client: MlflowClient, tracking: TrackingConfig, artifact_location: str | None) -> str:
    """The experiment id for the configured id or name, creating a named experiment on first use."""
    if tracking.experiment_id:
        experiment = client.get_experiment(tracking.experiment_id)
        return experiment.experiment_id
    experiment = client.get_experiment_by_name(tracking.experiment_name)
    if experiment is not None:
        if experiment.lifecycle_stage == "deleted":
            raise TrackingError(
                f"experiment '{tracking.experiment_name}' is deleted; restore it or choose another tracking.experiment_name"
            )
        return experiment.experiment_id
    return client.create_experiment(tracking.experiment_name, artifact_location=artifact_location)


class RunTracker:
    """Collects a run's params, metrics and tags and sends them in as few batches as the backend allows."""

    def __init__(self, client: MlflowClient, run_id: str, limits: Limits, redactor: Redactor) -> None:
        self.client = client
        self.run_id = run_id
        self.limits = limits
        self.redactor = redactor
        self._tag_count = 0
        self._metric_names: set[str] = set()

    @classmethod
    def start(
        cls,
        client: MlflowClient,
        experiment_id: str,
        run_name: str | None,
        tags: Mapping[str, str],
        limits: Limits,
        redactor: Redactor,
    ) -> "RunTracker":
        safe_tags = cls._fit_tags(dict(tags), limits, redactor, already=0)
        run = client.create_run(experiment_id, run_name=run_name, tags=safe_tags)
        tracker = cls(client, run.info.run_id, limits, redactor)
        tracker._tag_count = len(safe_tags)
        return tracker

    @classmethod
    def resume(cls, client: MlflowClient, run: Run, limits: Limits, redactor: Redactor) -> "RunTracker":
        """Continue an interrupted run of the same run key: running again, its old error cleared."""
        client.update_run(run.info.run_id, status=RunStatus.to_string(RunStatus.RUNNING))
        if ERROR_TAG in run.data.tags:
            client.delete_tag(run.info.run_id, ERROR_TAG)
        tracker = cls(client, run.info.run_id, limits, redactor)
        tracker._tag_count = len(run.data.tags)
        tracker._metric_names = set(run.data.metrics)
        return tracker

    @staticmethod
    def _fit_tags(tags: dict[str, str], limits: Limits, redactor: Redactor, already: int) -> dict[str, str]:
        fitted = {
            _fit_key(k, limits): redactor.redact(str(v))[: limits.tag_value_length] for k, v in tags.items()
        }
        if limits.tags_per_run is not None:
            room = max(0, limits.tags_per_run - already - 5)  # MLflow adds a few system tags of its own
            if len(fitted) > room:
                dropped = sorted(fitted)[room:]
                log.warning("tracking backend allows %s tags a run; not logging: %s", limits.tags_per_run, ", ".join(dropped))
                fitted = {k: fitted[k] for k in sorted(fitted)[:room]}
        return fitted

    def log_params(self, params: Mapping[str, Any]) -> None:
        items = [
            Param(_fit_key(k, self.limits), self.redactor.redact(str(v))[: self.limits.param_value_length])
            for k, v in sorted(params.items())
        ]
        for chunk in _chunks(items, self.limits.params_per_batch):
            self.client.log_batch(self.run_id, params=chunk)

    def log_metrics(self, metrics: Mapping[str, float], tags: Mapping[str, str] | None = None) -> None:
        """Metrics (and any late tags) in one batch per backend limit; timestamps fixed before sending,
        so a retried request stores the same values rather than new ones."""
        timestamp = int(time.time() * 1000)
        entries = []
        for name, value in metrics.items():
            key = _fit_key(name, self.limits)
            cap = self.limits.metric_names_per_run
            if cap is not None and key not in self._metric_names and len(self._metric_names) >= cap:
                log.warning("tracking backend allows %s metric names a run; not logging metric %s", cap, key)
                continue
            self._metric_names.add(key)
            entries.append(Metric(key, float(value), timestamp, 0))
        late_tags = [RunTag(k, v) for k, v in self._fit_tags(dict(tags or {}), self.limits, self.redactor, self._tag_count).items()]
        self._tag_count += len(late_tags)
        metric_chunks = _chunks(entries, self.limits.metrics_per_batch) or [[]]
        for i, chunk in enumerate(metric_chunks):
            self.client.log_batch(self.run_id, metrics=chunk, tags=late_tags if i == 0 else [])

    def set_tag(self, key: str, value: str) -> None:
        self.client.set_tag(self.run_id, _fit_key(key, self.limits), self.redactor.redact(value)[: self.limits.tag_value_length])

    def log_artifacts(self, local_dir: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifacts(self.run_id, str(local_dir), artifact_path)

    def finish(self) -> None:
        self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FINISHED))

    def fail(self, message: str) -> None:
        """Best effort: mark the run FAILED with the reason; the server may be the thing that failed."""
        try:
            self.set_tag(ERROR_TAG, message)
            self.client.set_terminated(self.run_id, RunStatus.to_string(RunStatus.FAILED))
        except Exception as exc:  # noqa: BLE001 - the original failure is what the user must see
            log.warning("could not mark run %s as FAILED: %s", self.run_id, self.redactor.redact(str(exc).splitlines()[0]))


def _fit_key(key: str, limits: Limits) -> str:
    if len(key) <= limits.key_length:
        return key
    log.warning("name longer than %s characters shortened: %s", limits.key_length, key)
    return key[: limits.key_length]


def _chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]
