"""The Azure Machine Learning workspace as an MLflow tracking server and registry.

azureml-mlflow builds a credential chain that ends in interactive browser and device-code
login, which hang a headless job for ~15 minutes. We resolve a service-principal credential
ourselves and hand the plugin a service context that holds it, before MLflow's first call
(the plugin caches one context per tracking URI, and MLflow caches one store per URI).

Checked against azureml-mlflow 1.62.0.post6 with mlflow 3.15.0: the plugin ignores the
`/mlflow/v1.0` in the URI and calls `https://HOST[:PORT]/mlflow/v2.0/subscriptions/...` (https
hard-coded, port kept); see tests/test_aml.py, which runs the job through the real plugin.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlparse

from synapse_ml_track.config import AzureConfig
from synapse_ml_track.errors import ConfigError, TrackingError, first_line
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.tracking.auth import BOUNDED_HTTP, ResolvedCredential, check_token, resolve_credential
from synapse_ml_track.vocabulary import is_aml_uri

log = logging.getLogger(__name__)

AML_SCHEME = "azureml"
WORKSPACE_PATH = (
    "/mlflow/v1.0/subscriptions/{subscription}/resourceGroups/{resource_group}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspace}"
)
# The plugin's own pattern (azureml/mlflow/_internal/utils.py _WORKSPACE_INFO_REGEX).
_WORKSPACE_RE = re.compile(
    r".*/subscriptions/([^/]+)/resourceGroups/([^/]+)/providers/Microsoft\.MachineLearningServices/workspaces/([^/]+)/?$"
)
URI_SHAPE = (
    "azureml://<region>.api.azureml.ms/mlflow/v1.0/subscriptions/<id>/resourceGroups/<rg>"
    "/providers/Microsoft.MachineLearningServices/workspaces/<name>"
)


def workspace_configured(azure: AzureConfig) -> bool:
    return bool(azure.subscription_id and azure.resource_group and azure.workspace_name)


def workspace_of(uri: str) -> tuple[str, str, str]:
    """(subscription, resource group, workspace) named by an azureml:// tracking URI."""
    parsed = urlparse(uri)
    match = _WORKSPACE_RE.match(parsed.path)
    if parsed.scheme != AML_SCHEME or not parsed.netloc or not match:
        raise ConfigError(f"tracking URI {uri} is not an AML workspace URI ({URI_SHAPE})")
    return match.group(1), match.group(2), match.group(3)


# Each cloud's AML API host, as in its workspaces' tracking URIs ("<region>.api.azureml.ms";
# sovereign clouds: learn.microsoft.com/azure/machine-learning/reference-machine-learning-cloud-parity,
# e.g. usgovvirginia.api.ml.azure.us, chinaeast2.api.ml.azure.cn).
AML_API_HOSTS = {
    "AzureCloud": "api.azureml.ms",
    "AzureUSGovernment": "api.ml.azure.us",
    "AzureChinaCloud": "api.ml.azure.cn",
}
# Each cloud's Azure AD authority (azureml/mlflow/_common/_cloud/cloud.py, `active_directory`).
AUTHORITY_CLOUDS = {
    "login.microsoftonline.com": "AzureCloud",
    "login.microsoftonline.us": "AzureUSGovernment",
    "login.chinacloudapi.cn": "AzureChinaCloud",
}


def cloud_name(azure: AzureConfig, environ: Mapping[str, str]) -> str:
    """The Azure cloud the workspace is in: AZUREML_CURRENT_CLOUD, else the one azure.authority_host
    belongs to, else the public cloud. Both given and disagreeing is a configuration error."""
    host = urlparse(azure.authority_host or "").hostname or ""
    from_authority = AUTHORITY_CLOUDS.get(host)
    named = environ.get("AZUREML_CURRENT_CLOUD")
    if named and from_authority and named != from_authority:
        raise ConfigError(
            f"AZUREML_CURRENT_CLOUD is {named} but azure.authority_host {azure.authority_host} "
            f"belongs to {from_authority}"
        )
    return named or from_authority or "AzureCloud"


def offline_tracking_uri(azure: AzureConfig, environ: Mapping[str, str] | None = None) -> str:
    """The workspace's tracking URI from its region and cloud, with no network call.

    Regions are written as ARM names ("westeurope"); "West Europe" is accepted too.
    Private-link workspaces have another host: set tracking.uri to the workspace's URI instead.
    """
    region = (azure.region or "").replace(" ", "").lower()
    if not re.fullmatch(r"[a-z0-9]+", region):
        raise ConfigError(f"azure.region {azure.region!r} is not an Azure region name such as westeurope")
    cloud = cloud_name(azure, os.environ if environ is None else environ)
    if cloud not in AML_API_HOSTS:
        raise ConfigError(f"no known Azure ML host for cloud {cloud}; set tracking.uri to the workspace's tracking URI")
    path = WORKSPACE_PATH.format(
        subscription=azure.subscription_id, resource_group=azure.resource_group, workspace=azure.workspace_name
    )
    return f"{AML_SCHEME}://{region}.{AML_API_HOSTS[cloud]}{path}"


def lookup_tracking_uri(azure: AzureConfig, credential: ResolvedCredential, redactor: Redactor | None = None) -> str:
    """Ask ARM for the workspace's tracking URI (azure-ai-ml), when the region is not configured."""
    try:
        from azure.ai.ml import MLClient
    except ImportError:
        raise ConfigError(
            "finding the workspace's tracking URI needs azure-ai-ml; install it, or set azure.region "
            "(AZUREML_REGION) so the URI is built offline"
        ) from None
    try:
        # Bounded like the token request: a dead ARM endpoint fails in seconds, not after minutes of retries.
        client = MLClient(
            credential.credential, azure.subscription_id, azure.resource_group, azure.workspace_name, **BOUNDED_HTTP
        )
        uri: str | None = client.workspaces.get(azure.workspace_name).mlflow_tracking_uri
    except Exception as exc:  # noqa: BLE001 - azure-core raises many types; the message is what matters
        first = first_line(exc)
        if redactor is not None:
            first = redactor.redact(first)
        raise TrackingError(
            f"cannot read workspace {azure.workspace_name} in resource group {azure.resource_group} "
            f"(subscription {azure.subscription_id}) from Azure Resource Manager: {first[:300]} "
            "(does the service principal have a role on the workspace? or set azure.region to skip this lookup)"
        ) from None
    if not uri:
        raise TrackingError(
            f"workspace {azure.workspace_name} reports no MLflow tracking URI; set tracking.uri to it explicitly"
        )
    return uri


def connect(
    uri: str | None, azure: AzureConfig, environ: Mapping[str, str], redactor: Redactor
) -> tuple[str | None, ResolvedCredential | None]:
    """The tracking URI to use and, for an AML workspace, the credential installed for it.

    An explicit URI (config, flag or MLFLOW_TRACKING_URI) wins; an http(s) or other non-AML URI
    needs no Azure credential. Otherwise the workspace named by azure.subscription_id,
    azure.resource_group and azure.workspace_name is found offline from azure.region, or through
    ARM. Returns (None, None) when neither a URI nor a workspace is configured. The plugin's
    artifact store also reads MLflow's global tracking URI: the entry point sets it
    (entrypoint.set_global_tracking_uri).
    """
    if uri and not is_aml_uri(uri):
        return uri, None
    if not uri and not workspace_configured(azure):
        return None, None
    if uri:
        workspace_of(uri)  # a malformed URI is a config error, reported before any credential is needed
    cloud = plugin_cloud(azure, environ)
    credential = resolve_credential(azure, environ, redactor)
    check_token(credential, redactor, scope=cloud._get_default_scope())  # the scope the plugin will ask for
    if not uri:
        uri = offline_tracking_uri(azure, environ) if azure.region else lookup_tracking_uri(azure, credential, redactor)
        workspace_of(uri)
    install_credential(uri, credential, cloud)
    return uri, credential


def plugin_cloud(azure: AzureConfig, environ: Mapping[str, str]) -> Any:
    """azureml-mlflow's cloud (endpoints, token scope), given to the service context installed for
    the workspace. The plugin's own code paths find it by name in the process environment: the
    entry point names it there (entrypoint.set_global_tracking_uri, from installed_cloud_name)."""
    from azureml.mlflow._common._cloud.cloud import KNOWN_CLOUDS, _get_cloud_or_default

    name = cloud_name(azure, environ)
    if name not in KNOWN_CLOUDS:
        raise ConfigError(f"AZUREML_CURRENT_CLOUD is {name!r}; azureml-mlflow knows {', '.join(sorted(KNOWN_CLOUDS))}")
    return _get_cloud_or_default(name)


def installed_cloud_name(uri: str) -> str | None:
    """The cloud of the service context `connect` installed for this AML tracking URI; None for any
    other URI, or before `connect`."""
    if not is_aml_uri(uri):
        return None
    from azureml.mlflow._internal.service_context_loader import _AzureMLServiceContextLoader

    if not _AzureMLServiceContextLoader.has_service_context(uri):
        return None
    name: str = _AzureMLServiceContextLoader.get_service_context(uri).cloud.name
    return name


def install_credential(uri: str, credential: ResolvedCredential, cloud: Any) -> None:
    """Give azureml-mlflow a service context holding our credential for this exact tracking URI.

    Installed before MLflow's first call, the plugin never builds its own credential chain (the
    one ending in interactive login). Where a context for the URI exists already (an earlier
    MLflow call in this process, or azure-ai-ml's workspace lookup, which registers one), its
    credential is replaced in place: MLflow caches one store per URI, and the cached store keeps
    a reference to that same context object.
    """
    from azureml.mlflow._internal.service_context_loader import _AzureMLServiceContextLoader
    from azureml.mlflow._internal.utils import ServiceContext

    subscription, resource_group, workspace = workspace_of(uri)
    parsed = urlparse(uri)
    host_url = f"https://{parsed.netloc}"  # what the plugin itself builds: https, port kept
    if _AzureMLServiceContextLoader.has_service_context(uri):
        existing: Any = _AzureMLServiceContextLoader.get_service_context(uri)
        if isinstance(existing, ServiceContext):
            existing._auth = credential.credential
            existing._host_url = host_url
            existing._cloud = cloud
            log.info("tracking in AML workspace %s as %s (credential replaced)", workspace, credential.source)
            return
    context = ServiceContext(
        host_url=host_url,
        subscription_id=subscription,
        workspace_name=workspace,
        resource_group_name=resource_group,
        auth=credential.credential,
        cloud=cloud,
    )
    _AzureMLServiceContextLoader.add_service_context(uri, context)
    log.info("tracking in AML workspace %s as %s", workspace, credential.source)
