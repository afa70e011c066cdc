"""Job configuration: defaults < environment < config file < command-line flags.

A configuration is a small tree of dataclasses. Every layer is a nested dict with the same
keys; the merged layers are checked against the JSON Schema generated from the dataclasses
(config_schema), so unknown keys and values of the wrong type are rejected with the key's dotted name.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from synapse_ml_track.config_schema import SCHEMA_FILE, check, dataclass_schema, schema_text
from synapse_ml_track.errors import ConfigError, first_line
from synapse_ml_track.vocabulary import (
    DEFAULT_METRIC,
    DEFAULT_MODEL_TYPE,
    INPUT_FORMATS,
    MODEL_TYPES,
    TASKS,
    VALIDATION_METRICS,
)

NULL_POLICIES = ("drop", "reject")
SEARCH_METHODS = ("grid", "random")
SEARCH_VALIDATIONS = ("cross_validation", "train_validation_split")
AUTH_METHODS = ("env", "keyvault", "managed_identity", "auto")
# MLflow refuses more retries than its _MLFLOW_HTTP_REQUEST_MAX_RETRIES_LIMIT (10 in 2.18 and 3.x,
# mlflow/utils/rest_utils.py `_validate_max_retries`) in the calls it retries itself.
MAX_RETRIES_LIMIT = 10

Built = TypeVar("Built")


@dataclass
class DataConfig:
    path: str | None = None
    table: str | None = None  # a catalog table (db.table), in place of a path
    version: int | None = None  # Delta time travel: the table version to read...
    timestamp: str | None = None  # ...or the version current at this time
    format: str | None = None
    schema: str | None = None
    schema_sample_rows: int = 1000
    csv_options: dict[str, str] = field(default_factory=dict)
    label: str = "species"
    numeric_features: list[str] | None = None
    categorical_features: list[str] | None = None
    exclude: list[str] = field(default_factory=list)
    nulls: str = "drop"
    max_categories: int = 100  # warn when a categorical feature has more distinct values
    train_fraction: float = 0.8
    seed: int = 42
    incremental: bool = False  # score: only the rows changed since the last scoring into the target (--incremental)


@dataclass
class SearchConfig:
    """A hyperparameter search: empty `params` means none. Each entry of `params` names an estimator
    parameter and lists its values, or, for method random, gives a range {low: , high: , log: , integer: }."""

    params: dict[str, Any] = field(default_factory=dict)
    method: str = "grid"
    samples: int = 10  # candidates drawn by method random
    validation: str = "cross_validation"
    folds: int = 3
    train_ratio: float = 0.75  # validation train_validation_split: the share of the training split fitted on
    parallelism: int = 1  # candidates fitted at once
    metric: str | None = None  # ranks the candidates; default gate.champion_metric


@dataclass
class ModelConfig:
    task: str = "classification"
    type: str | None = None  # default: logistic_regression or linear_regression, by task
    params: dict[str, Any] = field(default_factory=dict)
    search: SearchConfig = field(default_factory=SearchConfig)


@dataclass
class TrackingConfig:
    uri: str | None = None
    local_dir: str = "mlruns"
    experiment_name: str | None = "synapse-ml-track"
    experiment_id: str | None = None
    run_name: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    registered_model_name: str = "penguins-classifier"
    register: bool = True
    dfs_tmp: str | None = None
    request_timeout: float = 30.0
    max_retries: int = 5  # retries of one request after a failure, 0 to 10 (MLflow refuses more)
    max_retry_wait: float = 300.0  # seconds one request may wait between its retries, Retry-After included
    max_job_retry_wait: float = 1800.0  # seconds all requests of one job may wait between retries, together
    preflight_timeout: float = 10.0  # seconds the first preflight request waits for its answer
    preflight_budget: float = 60.0  # seconds the whole preflight may take, slow answers asked again
    lease_seconds: float = 60.0  # how long a run stays another job's after its job last renewed its lease
    live_run_wait: float = 3600.0  # seconds a rerun by run key waits for a live job of the same key to end
    local_result_dir: str = "mlruns/local-results"


@dataclass
class GateConfig:
    min_metrics: dict[str, float] = field(default_factory=dict)
    max_metrics: dict[str, float] = field(default_factory=dict)  # for error metrics: rmse, mae
    compare_to_champion: bool = True  # promote only a version that beats the champion on the same test split
    champion_metric: str | None = None  # default: f1 or rmse, by model.task
    champion_alias: str = "champion"
    fail_on_reject: bool = False


@dataclass
class DriftConfig:
    """Scoring's drift from the training split (synapse_ml_track/drift.py): PSI thresholds per feature."""

    warn: float = 0.1  # tags the scoring run `smt.drift: warn`
    fail: float = 0.25  # tags it `smt.drift: fail`
    fail_job: bool = False  # and then the score job exits 7, after writing its scores (--fail-on-drift)


@dataclass
class AzureConfig:
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace_name: str | None = None
    region: str | None = None
    auth: str = "auto"
    tenant_id: str | None = None
    client_id: str | None = None
    client_certificate_path: str | None = None
    managed_identity_client_id: str | None = None
    key_vault_name: str | None = None
    key_vault_linked_service: str | None = None
    tenant_id_secret: str = "aml-sp-tenant-id"
    client_id_secret: str = "aml-sp-client-id"
    client_secret_secret: str = "aml-sp-client-secret"
    authority_host: str | None = None


@dataclass
class JobConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    drift: DriftConfig = field(default_factory=DriftConfig)
    azure: AzureConfig = field(default_factory=AzureConfig)
    run_key: str | None = None
    force: bool = False
    output: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# The values a key takes: the schema lists them, so editors complete them and the job refuses others.
CHOICES = {
    "data.format": INPUT_FORMATS,
    "data.nulls": NULL_POLICIES,
    "model.task": TASKS,
    "model.search.method": SEARCH_METHODS,
    "model.search.validation": SEARCH_VALIDATIONS,
    "azure.auth": AUTH_METHODS,
}


# The numeric keys' bounds, in JSON Schema's words: published in the schema, so an editor flags
# `folds: 1`, and checked with it when a config is built (config_schema.check).
RANGES: dict[str, dict[str, float]] = {
    "data.train_fraction": {"exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "data.version": {"minimum": 0},
    "data.schema_sample_rows": {"minimum": 1},
    "model.search.folds": {"minimum": 2},
    "model.search.train_ratio": {"exclusiveMinimum": 0, "exclusiveMaximum": 1},
    "model.search.parallelism": {"minimum": 1},
    "model.search.samples": {"minimum": 1},
    "tracking.request_timeout": {"exclusiveMinimum": 0},
    "tracking.max_retries": {"minimum": 0, "maximum": MAX_RETRIES_LIMIT},
    "tracking.max_retry_wait": {"minimum": 0},
    "tracking.max_job_retry_wait": {"minimum": 0},
    "tracking.preflight_timeout": {"exclusiveMinimum": 0},
    "tracking.preflight_budget": {"exclusiveMinimum": 0},
    "tracking.lease_seconds": {"minimum": 15},
    "tracking.live_run_wait": {"minimum": 0},
    "drift.warn": {"exclusiveMinimum": 0},
    "drift.fail": {"exclusiveMinimum": 0},
}


@functools.cache
def job_schema() -> dict[str, Any]:
    """The JSON Schema of a job config file (checked in as synapse_ml_track/job.schema.json)."""
    return dataclass_schema(JobConfig, CHOICES, RANGES, title="synapse-ml-track job config")


# Environment variables and the keys they set. MLflow's own variables keep their meaning.
ENVIRONMENT_KEYS = {
    "MLFLOW_TRACKING_URI": "tracking.uri",
    "MLFLOW_EXPERIMENT_NAME": "tracking.experiment_name",
    "MLFLOW_EXPERIMENT_ID": "tracking.experiment_id",
    "MLFLOW_DFS_TMP": "tracking.dfs_tmp",
    "AZURE_SUBSCRIPTION_ID": "azure.subscription_id",
    "AZURE_RESOURCE_GROUP": "azure.resource_group",
    "AZUREML_WORKSPACE_NAME": "azure.workspace_name",
    "AZUREML_REGION": "azure.region",
    "AZURE_AUTHORITY_HOST": "azure.authority_host",
}

# Name and id name one experiment: whichever a higher layer sets replaces both below it.
_EXPERIMENT_KEYS = ("experiment_name", "experiment_id")


def environment_layer(environ: Mapping[str, str]) -> dict[str, Any]:
    layer: dict[str, Any] = {}
    for variable, dotted in ENVIRONMENT_KEYS.items():
        value = environ.get(variable)
        if value:
            set_dotted(layer, dotted, value)
    return layer


def file_layer(path: str, read_remote: Callable[[str], str] | None = None) -> dict[str, Any]:
    """A config file's settings; paths with a scheme (abfss://...) are read with `read_remote`."""
    config_path = Path(path)
    remote = "://" in path and not path.startswith("file://")
    if remote:
        if read_remote is None:
            raise ConfigError(f"cannot read config {path}: remote config files need a Spark session")
        try:
            text = read_remote(path)
        except Exception as exc:  # noqa: BLE001 - Spark's error types vary; the path is what matters
            first = first_line(exc)
            raise ConfigError(f"cannot read config file {path}: {first[:200]}") from None
    elif not config_path.is_file():
        raise ConfigError(f"config file not found: {config_path} (pass an existing YAML or JSON file to --config)")
    else:
        text = config_path.read_text(encoding="utf-8")
    try:
        loaded = json.loads(text) if config_path.suffix == ".json" else yaml.safe_load(text)
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise ConfigError(f"config file {config_path} is not valid YAML/JSON: {first_line(exc)}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {config_path} must hold a mapping of sections, not {type(loaded).__name__}")
    return loaded


def parse_assignment(assignment: str) -> tuple[str, Any]:
    """Parse `section.key=value` from --set; the value is read as YAML (numbers, lists, booleans)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (for example model.params.maxIter=50), got {assignment!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"config key {dotted!r} descends into {part!r}, which is not a section")
        node = child
    node[parts[-1]] = value


def merge_layers(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Overlay layers left to right: later layers win, key by key."""
    merged: dict[str, Any] = {}
    for layer in layers:
        _overlay(merged, layer, path="")
    return merged


def _overlay(target: dict[str, Any], layer: Mapping[str, Any], path: str) -> None:
    if path == "tracking." and any(key in layer for key in _EXPERIMENT_KEYS):
        for key in _EXPERIMENT_KEYS:
            target[key] = None
    for key, value in layer.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            _overlay(target[key], value, path=f"{path}{key}.")
        else:
            target[key] = dict(value) if isinstance(value, Mapping) else value


def build_config(
    *,
    config_path: str | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    read_remote: Callable[[str], str] | None = None,
) -> JobConfig:
    """Resolve the job configuration from its layers (flags > config file > environment > defaults)."""
    layers = [JobConfig().to_dict(), environment_layer(os.environ if environ is None else environ)]
    if config_path:
        layers.append(file_layer(config_path, read_remote))
    if overrides:
        layers.append(dict(overrides))
    config = from_dict(merge_layers(*layers))
    validate(config)
    return with_task_defaults(config)


def with_task_defaults(config: JobConfig) -> JobConfig:
    """Fill in what depends on model.task: the model type, the champion metric, the search metric."""
    task = config.model.task
    config.model.type = config.model.type or DEFAULT_MODEL_TYPE[task]
    config.gate.champion_metric = config.gate.champion_metric or DEFAULT_METRIC[task]
    search = config.model.search
    search.metric = search.metric or config.gate.champion_metric
    if search.params and search.metric not in VALIDATION_METRICS[task]:
        raise ConfigError(
            f"model.search.metric {search.metric!r} is not measured on validation folds; "
            f"use one of {', '.join(VALIDATION_METRICS[task])} (set model.search.metric)"
        )
    return config


def from_dict(tree: Mapping[str, Any]) -> JobConfig:
    return _build(JobConfig, check(tree, job_schema()))


def _build(cls: type[Built], tree: Mapping[str, Any]) -> Built:
    """The dataclasses of a tree the schema has passed: each section becomes its dataclass."""
    hints = typing.get_type_hints(cls)
    return cls(
        **{
            key: _build(hints[key], value or {}) if dataclasses.is_dataclass(hints[key]) else value
            for key, value in tree.items()
        }
    )


def validate(config: JobConfig) -> None:
    """What the schema cannot say: the model types of the task, and keys that depend on each other."""
    task_types = tuple(MODEL_TYPES[config.model.task])
    if config.model.type is not None and config.model.type not in task_types:
        raise ConfigError(
            f"config key 'model.type' must be one of {', '.join(task_types)} for model.task {config.model.task}, "
            f"got {config.model.type!r}"
        )
    _validate_table_keys(config.data)
    if config.tracking.preflight_budget < config.tracking.preflight_timeout:
        raise ConfigError("config key 'tracking.preflight_budget' must be at least 'tracking.preflight_timeout'")
    if config.drift.fail < config.drift.warn:
        raise ConfigError("config key 'drift.fail' must be at least 'drift.warn'")
    if not config.data.label:
        raise ConfigError("config key 'data.label' must name the label column")
    if not config.tracking.experiment_name and not config.tracking.experiment_id:
        raise ConfigError("set tracking.experiment_name or tracking.experiment_id (or MLFLOW_EXPERIMENT_NAME)")
    if config.tracking.register and not config.tracking.registered_model_name:
        raise ConfigError(
            "config key 'tracking.registered_model_name' is empty; name the model or set tracking.register=false"
        )
    listed = (config.data.numeric_features or []) + (config.data.categorical_features or [])
    if config.data.label in listed:
        raise ConfigError(
            f"the label column '{config.data.label}' is also listed as a feature; remove it from the feature lists"
        )
    repeated = sorted({name for name in listed if listed.count(name) > 1})
    if repeated:
        raise ConfigError(
            f"feature columns listed twice: {', '.join(repeated)}; list each once, as numeric or categorical"
        )


def _validate_table_keys(data: DataConfig) -> None:
    if data.path and data.table:
        raise ConfigError("set data.path or data.table (--input or --input-table), not both")
    if data.version is not None and data.timestamp:
        raise ConfigError("set data.version or data.timestamp to time-travel, not both")
    if data.version is not None and data.version < 0:
        raise ConfigError(f"config key 'data.version' must be a Delta table version (0 or more), got {data.version}")


SECRET_MARKERS = ("secret", "password", "token", "credential")


def redacted(tree: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a config tree safe to print or log: values under secret-looking keys are masked.

    Keys naming where a secret lives (Key Vault secret names) are kept: they are not secrets.
    """
    safe: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            safe[key] = redacted(value)
        elif any(marker in key.lower() for marker in SECRET_MARKERS) and not key.endswith("_secret") and value:
            safe[key] = "***"
        else:
            safe[key] = value
    return safe


def resolved(value: str | None, key: str) -> str:
    """A setting build_config fills in when it is left out (model.type, gate.champion_metric,
    model.search.metric), for code that runs after it."""
    if value is None:
        raise ConfigError(f"{key} is not set; build the configuration with build_config")
    return value


def write_job_schema() -> None:
    """Rewrite synapse_ml_track/job.schema.json from the dataclasses: `python -m synapse_ml_track.config`."""
    SCHEMA_FILE.write_text(schema_text(job_schema()), encoding="utf-8")
    print(f"wrote {SCHEMA_FILE}")


if __name__ == "__main__":
    write_job_schema()
