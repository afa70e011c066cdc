"""Spark MLlib training and batch scoring for Azure Synapse, tracked with MLflow in Azure ML.

The Python API (synapse_ml_track/api.py): `train`, `score`, `predict`, `job_config` and their results. They are
loaded on first use, so `import synapse_ml_track` imports neither Spark nor MLflow.
"""

from importlib import import_module, metadata
from typing import Any

try:
    __version__ = metadata.version("synapse-ml-track")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"

# name -> the module that defines it
_API = {
    "train": "synapse_ml_track.api",
    "score": "synapse_ml_track.api",
    "predict": "synapse_ml_track.api",
    "job_config": "synapse_ml_track.api",
    "ScoringResult": "synapse_ml_track.api",
    "TrainingResult": "synapse_ml_track.train_job",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'synapse_ml_track' has no attribute {name!r}")
    return getattr(import_module(_API[name]), name)
