"""What only an entry point does: set the process-wide MLflow state that MLflow and its plugins read.

Library code takes its tracking URI as an argument and writes no global. Two readers need MLflow's
*global* tracking URI to be the job's, so it is set here, once, by each CLI subcommand right after
the URI is resolved (and by any other entry point that runs a job, such as a Python API):
* MLflow 2.18, the Synapse runtime's: an `mlflow-artifacts:/...` location, which a plain `mlflow
  server` gives every experiment (it proxies artifacts by default), is resolved against the global
  tracking URI, not the client's (mlflow/store/artifact/mlflow_artifacts_repo.py line 51,
  MlflowArtifactsRepository.__init__; MLflow 3 takes the client's). Unset, every upload fails: "When
  an mlflow-artifacts URI was supplied, the tracking URI must be a valid http or https URI".
* azureml-mlflow (1.60 and 1.62): its artifact repository takes its credentials from a fresh
  `MlflowClient()`, that is from the global tracking URI (azureml/mlflow/_store/artifact/utils.py,
  get_service_context, lines 353-363). A client given the URI alone gets "An authorization token
  was not set in the artifact uri" (mlflow/mlflow#9495).
And one reader needs a process environment variable:
* azureml-mlflow (1.60 and 1.62, the same file): where it is given no cloud, it takes the cloud's
  name from AZUREML_CURRENT_CLOUD (azureml/mlflow/_common/_cloud/cloud.py lines 458-462,
  `_get_cloud_or_default`); unset, it asks Azure Resource Manager for cloud metadata first (line
  467, `_get_cloud_metadata_from_known_urls`). It is given none in the service contexts it builds
  itself (azureml/mlflow/_internal/utils.py lines 109, 396, 451, 626, 678), for a registry's
  artifacts (azureml/mlflow/_store/artifact/utils.py line 391) and when matching a blob URL
  (azureml/mlflow/_client/artifact/_utils/blob_artifact_util.py line 202).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from synapse_ml_track.config import JobConfig
from synapse_ml_track.tracking import aml


def quiet_mlflow() -> None:
    """MLflow's settings for a batch job, unless the environment gives its own. Call it before MLflow
    is imported: MLflow reads MLFLOW_CONFIGURE_LOGGING on import."""
    # MLflow would otherwise reset logging when first imported and draw progress bars in job logs.
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # A job talks to its tracking server only: no usage telemetry to MLflow's own endpoint.
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def set_global_tracking_uri(uri: str) -> None:
    """Make the job's tracking URI MLflow's global tracking and registry URI for the rest of the process,
    and for an Azure ML workspace name its cloud for azureml-mlflow (the one aml.connect installed).

    A job's registry is its tracking server, so the registry URI is the same one (a `models:/` URI
    resolves against the global registry URI: mlflow/store/artifact/models_artifact_repo.py).
    MLflow exports both to the environment too (MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI).
    """
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    cloud = aml.installed_cloud_name(uri)
    if cloud:
        os.environ["AZUREML_CURRENT_CLOUD"] = cloud  # the plugin's AZUREML_CLOUD_ENV_NAME: see the module docstring


# Environment variables a job sets for MLflow and azureml-mlflow (MLFLOW_TRACKING_URI and
# MLFLOW_REGISTRY_URI through mlflow.set_*_uri, MLFLOW_HTTP_REQUEST_* in http.configure_process,
# AZUREML_CURRENT_CLOUD in set_global_tracking_uri): put back as they were after each API call.
JOB_VARIABLE_PREFIXES = ("MLFLOW_", "AZUREML_")


@contextmanager
def job_process_state(job: JobConfig) -> Iterator[None]:
    """The process-wide state a job sets, for the block only: MLflow's global tracking and registry
    URIs, the HTTP settings (http.configured_process) and the job's environment variables are as the
    caller had them afterwards, whether the job returned or raised."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from synapse_ml_track.tracking.http import configured_process

    # The URIs as set, not as resolved: get_tracking_uri() answers a default when none is set, which,
    # set back, would become an explicit choice. MLflow's own _use_tracking_uri reads the same module
    # globals (mlflow/tracking/_tracking_service/utils.py, in 2.18 and 3.15 alike).
    uris = tracking_utils._tracking_uri, registry_utils._registry_uri
    environment = {name: value for name, value in os.environ.items() if name.startswith(JOB_VARIABLE_PREFIXES)}
    try:
        # No "Downloading artifacts" bars in a notebook cell's output, as none in a job's log.
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with configured_process(job.tracking):
            yield
    finally:
        # None (none set) is typed out but handled: unset (mlflow/tracking/_tracking_service/utils.py
        # set_tracking_uri, and _model_registry/utils.py set_registry_uri, in 2.18 and 3.15 alike).
        mlflow.set_tracking_uri(uris[0])  # type: ignore[arg-type]
        mlflow.set_registry_uri(uris[1])  # type: ignore[arg-type]
        for name in [name for name in os.environ if name.startswith(JOB_VARIABLE_PREFIXES)]:
            if name not in environment:
                del os.environ[name]
        os.environ.update(environment)
