"""What one tracking backend accepts (MLflow's limits and Azure ML's tighter ones), and names fitted to them."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from synapse_ml_track.vocabulary import is_aml_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one tracking backend accepts; AML's are tighter than open-source MLflow's.

    The defaults are MLflow's own (mlflow/utils/validation.py: MAX_PARAMS_TAGS_PER_BATCH,
    MAX_METRICS_PER_BATCH, MAX_ENTITY_KEY_LENGTH, MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH).
    """

    params_per_batch: int = 100
    metrics_per_batch: int = 1000
    tags_per_batch: int = 100
    tags_per_run: int | None = None
    metric_names_per_run: int | None = None
    params_per_run: int | None = None
    key_length: int = 250
    tag_key_length: int = 250
    param_value_length: int = 6000
    tag_value_length: int = 8000


MLFLOW_LIMITS = Limits()
# Azure ML's documented run limits: "Service limits in Azure Machine Learning"
# (learn.microsoft.com/azure/machine-learning/resource-limits-capacity, MicrosoftDocs/azure-ai-docs
# articles/machine-learning/resource-limits-capacity.md), tables "Runs" (50 tags, tag key 100,
# tag value 1,000 characters) and "Metrics" (50 metric names a run, 250 metric rows a batch).
# 200 parameters a run is not on that page but is what AML answers (Azure/azure-sdk-for-python#35685).
AML_LIMITS = Limits(
    metrics_per_batch=250,
    tags_per_run=50,
    metric_names_per_run=50,
    params_per_run=200,
    tag_key_length=100,
    tag_value_length=1000,
)


def limits_for(uri: str) -> Limits:
    return AML_LIMITS if is_aml_uri(uri) else MLFLOW_LIMITS


def admit(key: str, seen: set[str], cap: int | None, length: int, kind: str) -> str | None:
    """The name to log under (shortened to the backend's length), or None when the run already holds
    as many distinct names of this kind as the backend allows."""
    name = fit_key(key, length)
    if cap is not None and name not in seen and len(seen) >= cap:
        log.warning("tracking backend allows %s %s names a run; not logging %s %s", cap, kind, kind, name)
        return None
    seen.add(name)
    return name


def fit_key(key: str, length: int) -> str:
    """The key within the backend's length; a shortened key ends in a hash of the whole name, so two
    names sharing a long prefix stay two keys (a batch with a repeated param key is refused, a repeated
    metric or tag key overwrites) and the same name always maps to the same key."""
    if len(key) <= length:
        return key
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    fitted = f"{key[: length - len(digest) - 1]}-{digest}" if length > len(digest) + 1 else digest[:length]
    log.warning("name longer than %s characters shortened: %s (logged as %s)", length, key, fitted)
    return fitted
