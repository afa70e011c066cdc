"""Spark MLlib training and batch scoring for Azure Synapse, tracked with MLflow in Azure ML."""

from importlib import metadata

try:
    __version__ = metadata.version("synapse-ml-track")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+source"
