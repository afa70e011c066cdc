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
"""

from __future__ import annotations


def set_global_tracking_uri(uri: str) -> None:
    """Make the job's tracking URI MLflow's global tracking and registry URI for the rest of the process.

    A job's registry is its tracking server, so the registry URI is the same one (a `models:/` URI
    resolves against the global registry URI: mlflow/store/artifact/models_artifact_repo.py).
    MLflow exports both to the environment too (MLFLOW_TRACKING_URI, MLFLOW_REGISTRY_URI).
    """
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
