"""Saving and loading Spark models in MLflow's format: the Spark side of the model's life.

Registering a saved model and naming its champion need no Spark: synapse_ml_track/tracking/registry.py.
"""

from __future__ import annotations

import logging
import re
import uuid
from importlib import metadata
from pathlib import Path

import mlflow.spark
from mlflow.environment_variables import MLFLOW_DFS_TMP
from mlflow.models import Model, ModelSignature
from mlflow.spark import _HadoopFileSystem
from pyspark.ml import PipelineModel

from synapse_ml_track.errors import first_line

log = logging.getLogger(__name__)


def model_pip_requirements() -> list[str]:
    """Pinned from the training environment; explicit, because inferring them costs ~18 s a model."""
    pins = []
    for distribution, fallback in (("pyspark", None), ("mlflow-skinny", "mlflow"), ("pandas", None), ("numpy", None)):
        for name in (distribution, fallback):
            if not name:
                continue
            try:
                pins.append(f"{distribution}=={public_release(metadata.version(name))}")
                break
            except metadata.PackageNotFoundError:
                continue
    return pins


def public_release(version: str) -> str:
    """The release an installed build was made from, as pip can install it: its leading
    major.minor.patch. A Synapse pool's pyspark is Microsoft's build 3.5.1.5.4.20240407, which is no
    PyPI release, so a model pinning it could never have its environment rebuilt."""
    release = re.match(r"\d+(?:\.\d+){0,2}", version)
    return release.group() if release else version


def save_model(
    model: PipelineModel,
    path: Path,
    signature: ModelSignature,
    input_example,
    dfs_tmp: str | None,
) -> Path:
    mlflow.spark.save_model(
        model,
        str(path),
        signature=signature,
        input_example=input_example,
        pip_requirements=model_pip_requirements(),
        dfs_tmpdir=dfs_tmp,
    )
    return path


def load_spark_model(local_path: str, dfs_tmp: str | None) -> PipelineModel:
    """Load a saved Spark model from a copy in dfs_tmp, and leave no copy behind.

    Spark ML reads a model's files on the executors (PipelineModel.load reads its metadata with
    sc.textFile), so they must be where every executor can read them: tracking.dfs_tmp (abfss:// on
    Synapse). mlflow.spark.load_model copies a local model there only when the cluster's default
    filesystem is not the local disk, and never deletes the copy (mlflow/spark/__init__.py,
    _load_model, _HadoopFileSystem.maybe_copy_from_local_file); on local disk its executors read
    the driver's temporary directory, which on a cluster of several machines they cannot
    (tests/test_cluster.py). So the copy is made, under a directory of our own, and removed once the
    model is in memory (Spark ML models load eagerly), except on a local master: its executors are
    the driver's own threads, which read the downloaded model where it is (a file: URI, whatever the
    default filesystem).
    """
    from pyspark import SparkContext

    model_data = Model.load(local_path).flavors["spark"]["model_data"]
    active = SparkContext._active_spark_context
    if active is not None and str(active.master).startswith("local"):
        return PipelineModel.load((Path(local_path).resolve() / model_data).as_uri())
    staging = f"{(dfs_tmp or MLFLOW_DFS_TMP.get()).rstrip('/')}/smt-load-{uuid.uuid4().hex}"
    try:
        _HadoopFileSystem.copy_from_local_file(str(Path(local_path) / model_data), staging, remove_src=False)
        return PipelineModel.load(staging)
    finally:
        try:
            _HadoopFileSystem.delete(staging)
        except Exception as exc:  # noqa: BLE001 - a leftover copy must not fail the job
            log.warning("could not remove the model copy in %s: %s", staging, first_line(exc))
