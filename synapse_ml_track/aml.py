"""The Azure Machine Learning workspace as an MLflow tracking server and registry.

azureml-mlflow builds a credential chain that ends in interactive browser and device-code
login, which hang a headless job for ~15 minutes. We resolve a service-principal credential
ourselves and hand the plugin a service context that holds it, before MLflow's first call
(the plugin caches one context per tracking URI).
"""

from __future__ import annotations

import logging
import os
from typing import Mapping
from urllib.parse import urlparse

from synapse_ml_track.auth import ResolvedCredential, check_token, resolve_credential
from synapse_ml_track.config import AzureConfig
from synapse_ml_track.errors import ConfigError, TrackingError
from synapse_ml_track.redaction import Redactor

log = logging.getLogger(__name__)

AML_SCHEME = "azureml"
WORKSPACE_PATH = (
    "/mlflow/v1.0/subscriptions/{subscription}/resourceGroups/{resource_group}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspace}"
)


def is_aml_uri(uri: str) -> bool:
    return urlparse(uri).scheme == AML_SCHEME


def workspace_configured(azure: AzureConfig) -> bool:
    return bool(azure.subscription_id and azure.resource_group and azure.workspace_name)


def offline_tracking_uri(azure: AzureConfig) -> str:
    """The workspace's tracking URI from its region, with no network call."""
    path = WORKSPACE_PATH.format(
        subscription=azure.subscription_id, resource_group=azure.resource_group, workspace=azure.workspace_name
    )
    return f"{AML_SCHEME}://{azure.region}.api.azureml.ms{path}"


def lookup_tracking_uri(azure: AzureConfig, credential: ResolvedCredential) -> str:
    """Ask ARM for the workspace's tracking URI (azure-ai-ml), when the region is not configured."""
    try:
        from azure.ai.ml import MLClient
    except ImportError:
        raise ConfigError(
            "finding the workspace's tracking URI needs azure-ai-ml; install it, or set azure.region "
            "(AZUREML_REGION) so the URI is built offline"
        ) from None
    client = MLClient(credential.credential, azure.subscription_id, azure.resource_group, azure.workspace_name)
    try:
        return client.workspaces.get(azure.workspace_name).mlflow_tracking_uri
    except Exception as exc:  # noqa: BLE001 - azure-core raises many types; the message is what matters
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(
            f"cannot read workspace {azure.workspace_name} in resource group {azure.resource_group}: {first[:300]}"
        ) from None


def connect(
    uri: str | None, azure: AzureConfig, environ: Mapping[str, str], redactor: Redactor
) -> tuple[str | None, ResolvedCredential | None]:
    """The tracking URI to use and, for an AML workspace, the credential installed for it.

    Returns (None, None) when neither a URI nor a workspace is configured.
    """
    if uri and not is_aml_uri(uri):
        return uri, None
    if not uri and not workspace_configured(azure):
        return None, None
    credential = resolve_credential(azure, environ, redactor)
    check_token(credential, redactor)
    if not uri:
        uri = offline_tracking_uri(azure) if azure.region else lookup_tracking_uri(azure, credential)
    install_credential(uri, credential)
    return uri, credential


def install_credential(uri: str, credential: ResolvedCredential) -> None:
    """Give azureml-mlflow a service context holding our credential for this tracking URI."""
    os.environ.setdefault("AZUREML_CURRENT_CLOUD", "AzureCloud")  # skips a cloud-metadata request
    from azureml.mlflow._common._cloud.cloud import _get_cloud_or_default
    from azureml.mlflow._internal.service_context_loader import _AzureMLServiceContextLoader
    from azureml.mlflow._internal.utils import ServiceContext

    parsed = urlparse(uri)
    parts = parsed.path.strip("/").split("/")
    try:
        fields = {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1)}
        subscription, resource_group, workspace = fields["subscriptions"], fields["resourcegroups"], fields["workspaces"]
    except KeyError:
        raise ConfigError(
            f"tracking URI {uri} is not an AML workspace URI (azureml://<region>.api.azureml.ms/mlflow/v1.0/"
            "subscriptions/<id>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/workspaces/<name>)"
        ) from None
    context = ServiceContext(
        host_url=f"https://{parsed.netloc}",
        subscription_id=subscription,
        workspace_name=workspace,
        resource_group_name=resource_group,
        auth=credential.credential,
        cloud=_get_cloud_or_default(),
    )
    _AzureMLServiceContextLoader.add_service_context(uri, context)
    log.info("tracking in AML workspace %s as %s", workspace, credential.source)
