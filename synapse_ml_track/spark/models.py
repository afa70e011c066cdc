"""Saving and loading Spark models in MLflow's format: the Spark side of the model's life.

Registering a saved model and naming its champion need no Spark: synapse_ml_track/tracking/registry.py.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import uuid
from collections import OrderedDict
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


# Models loaded in this process, by Spark application and the digest of the model's files: a session
# that scores with one model again (a notebook's cells, a loop over regions, smt.predict) reuses it
# instead of reading it again (about 4 s and two dozen Spark jobs for a small pipeline). The same
# bytes are the same model; a model whose files differ in any byte is loaded anew. A few are kept:
# a large forest can hold hundreds of MB of driver memory.
MODELS_KEPT = 4
_models: OrderedDict[tuple[str, str], PipelineModel] = OrderedDict()
_models_lock = threading.Lock()


def load_spark_model(local_path: str, dfs_tmp: str | None) -> PipelineModel:
    """The saved Spark model at local_path (a model as MLflow saves it), loaded once per Spark
    application and content (_models)."""
    from pyspark import SparkContext

    model_data = Path(local_path) / Model.load(local_path).flavors["spark"]["model_data"]
    active = SparkContext._active_spark_context
    application = active.applicationId if active is not None else ""
    key = (application, files_digest(model_data))
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    loaded = _read_spark_model(model_data, dfs_tmp)
    with _models_lock:
        for other in [k for k in _models if k[0] != application]:  # a stopped session's models are of no use
            del _models[other]
        _models[key] = loaded
        while len(_models) > MODELS_KEPT:
            _models.popitem(last=False)
    return loaded


def files_digest(directory: Path) -> str:
    """sha256 over every file under `directory`: its path there and its bytes."""
    digest = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        digest.update(path.relative_to(directory).as_posix().encode() + b"\0")
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def _read_spark_model(model_data: Path, dfs_tmp: str | None) -> PipelineModel:
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

    active = SparkContext._active_spark_context
    if active is not None and str(active.master).startswith("local"):
        return PipelineModel.load(model_data.resolve().as_uri())
    staging = f"{(dfs_tmp or MLFLOW_DFS_TMP.get()).rstrip('/')}/smt-load-{uuid.uuid4().hex}"
    try:
        _HadoopFileSystem.copy_from_local_file(str(model_data), staging, remove_src=False)
        return PipelineModel.load(staging)
    finally:
        try:
            _HadoopFileSystem.delete(staging)
        except Exception as exc:  # noqa: BLE001 - a leftover copy must not fail the job
            log.warning("could not remove the model copy in %s: %s", staging, first_line(exc))
