"""Spark MLlib training and batch scoring for Azure Synapse, tracked with MLflow in Azure ML.

The Python API (synapse_ml_track/api.py): `train`, `predict`, `score`, `report`, `job_config`,
`sample_data`, and their results (synapse_ml_track/results.py).
They are loaded on first use, so `import synapse_ml_track` imports neither Spark nor MLflow; type
checkers and editors see them as they are (TYPE_CHECKING below, and py.typed).
"""

from importlib import import_module as _import_module
from importlib import metadata as _metadata
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:
    from synapse_ml_track.api import job_config, predict, report, sample_data, score, train
    from synapse_ml_track.results import RunsReport, ScoringResult, TrainingResult

try:
    __version__ = _metadata.version("synapse-ml-track")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

# name -> the module that defines it
_API = {
    "train": "synapse_ml_track.api",
    "predict": "synapse_ml_track.api",
    "score": "synapse_ml_track.api",
    "job_config": "synapse_ml_track.api",
    "sample_data": "synapse_ml_track.api",
    "report": "synapse_ml_track.api",
    "RunsReport": "synapse_ml_track.results",
    "ScoringResult": "synapse_ml_track.results",
    "TrainingResult": "synapse_ml_track.results",
}
__all__ = [
    "__version__", "RunsReport", "ScoringResult", "TrainingResult",
    "job_config", "predict", "report", "sample_data", "score", "train",
]  # fmt: skip


def __getattr__(name: str) -> _Any:
    if name not in _API:
        raise AttributeError(f"module 'synapse_ml_track' has no attribute {name!r}")
    return getattr(_import_module(_API[name]), name)


def __dir__() -> list[str]:
    return sorted(__all__)
