"""The deploy plan's real Target: an Azure Synapse workspace and its ADLS Gen2 filesystem, through the
Azure SDKs (the plan itself, with the Target protocol, is synapse_ml_track.deploy.plan).

Azure is reached through DefaultAzureCredential (az login, environment variables or a managed
identity); this module reads no secret and prints only names, paths and job arguments. An Azure
error is one line with the exit code of its kind: 4 when Azure does not sign the deployer in or
refuses it access, 2 when something named on the command line does not exist, 3 when a service
cannot be reached or fails. The SDKs are imported when a target is made, so a dry run needs none.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

from synapse_ml_track.deploy.plan import DeployAccessError, DeployError, DeployServiceError, PoolShape, PublishAccess
from synapse_ml_track.errors import first_line

# What publishing job definitions, pipelines and triggers takes in Synapse RBAC: the Synapse Artifact Publisher
# role has these data actions, as do Synapse Contributor and Administrator (Microsoft's
# synapse-workspace-synapse-rbac-roles.md). Azure roles on the resource group do not grant them.
PUBLISH_ACTIONS = (
    "Microsoft.Synapse/workspaces/sparkJobDefinitions/write",
    "Microsoft.Synapse/workspaces/pipelines/write",
    "Microsoft.Synapse/workspaces/triggers/write",
)
# Import name -> distribution to install, for a real (not dry-run) deploy.
AZURE_PACKAGES = {
    "azure.identity": "azure-identity",
    "azure.storage.filedatalake": "azure-storage-file-datalake",
    "azure.synapse.artifacts": "azure-synapse-artifacts",
    "azure.synapse.accesscontrol": "azure-synapse-accesscontrol",
}


@contextmanager
def azure_errors(doing: str, access: str, names: str) -> Iterator[None]:
    """Turn an azure-core error raised while `doing` into one line with the exit code of its kind;
    `access` names what the deployer needs there (for a 403), `names` the flags to check (for a 404)."""
    from azure.core.exceptions import AzureError, ClientAuthenticationError, ResourceNotFoundError

    try:
        yield
    except ClientAuthenticationError as exc:
        # azure-identity's CredentialUnavailableError (not logged in) is a ClientAuthenticationError,
        # and the SDKs raise it for an HTTP 401 (their error_map).
        raise DeployAccessError(
            f"{doing}: Azure did not sign you in ({first_line(exc)}); sign in with az login "
            "(deploy uses DefaultAzureCredential: AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET work too)"
        ) from exc
    except ResourceNotFoundError as exc:
        raise DeployError(f"{doing}: not found (HTTP 404: {first_line(exc)}); check {names}") from exc
    except AzureError as exc:
        status = getattr(exc, "status_code", None)
        if status == 403:
            raise DeployAccessError(
                f"{doing}: Azure refused access (HTTP 403: {first_line(exc)}); it needs {access}, and an address "
                "the firewall allows"
            ) from exc
        answer = f"HTTP {status}" if status else type(exc).__name__  # no status: no answer (connection, timeout)
        raise DeployServiceError(f"{doing}: {answer}: {first_line(exc)}") from exc


class SynapseTarget:
    """The real target: ADLS Gen2 uploads and Synapse artifacts through the Azure SDKs."""

    def __init__(
        self, workspace: str, storage_account: str, filesystem: str, credential: Any = None, **client_options: Any
    ) -> None:
        """`credential` defaults to DefaultAzureCredential; `client_options` (an azure-core `transport`)
        go to every SDK client."""
        require_azure_packages()
        from azure.identity import DefaultAzureCredential
        from azure.storage.filedatalake import DataLakeServiceClient
        from azure.synapse.artifacts import ArtifactsClient

        credential = credential or DefaultAzureCredential()
        service = DataLakeServiceClient(
            f"https://{storage_account}.dfs.core.windows.net", credential=credential, **client_options
        )
        self._credential = credential
        self._client_options = client_options
        self._workspace = workspace
        self._endpoint = f"https://{workspace}.dev.azuresynapse.net"
        self._filesystem = service.get_file_system_client(filesystem)
        self._artifacts = ArtifactsClient(credential=credential, endpoint=self._endpoint, **client_options)

    def deploy_errors(self, doing: str, access: str, names: str) -> AbstractContextManager[None]:
        return azure_errors(doing, access, names)

    def pool_shape(self, pool: str) -> PoolShape:
        info = self._artifacts.big_data_pools.get(pool)
        max_nodes = info.auto_scale.max_node_count if info.auto_scale and info.auto_scale.enabled else info.node_count
        if max_nodes is None:
            raise DeployError(f"Spark pool {pool} reports no node count; check the pool in Synapse Studio")
        return PoolShape(str(info.node_size), int(max_nodes), "the pool")

    def publish_access(self) -> PublishAccess:
        """Whether the signed-in identity may publish, per Synapse's own access check of its object id
        and the groups its token lists."""
        from azure.synapse.accesscontrol import AccessControlClient
        from azure.synapse.accesscontrol.models import RequiredAction, SubjectInfo

        claims = token_claims(self._credential.get_token("https://dev.azuresynapse.net/.default").token)
        groups = claims.get("groups")
        subject = SubjectInfo(principal_id=claims["oid"], group_ids=groups or [])
        actions = [RequiredAction(id=action, is_data_action=True) for action in PUBLISH_ACTIONS]
        client = AccessControlClient(self._credential, self._endpoint, **self._client_options)
        answer = client.role_assignments.check_principal_access(subject, actions, f"workspaces/{self._workspace}")
        decisions = answer.access_decisions or []
        denied = tuple(str(d.action_id) for d in decisions if d.access_decision != "Allowed")
        who = claims.get("upn") or claims.get("appid") or claims["oid"]
        return PublishAccess(f"{who} (object id {claims['oid']})", denied, unknown_groups(claims))

    def upload(self, path: str, data: bytes) -> None:
        self._filesystem.get_file_client(path).upload_data(data, overwrite=True)

    def put_job_definition(self, document: dict[str, Any]) -> None:
        from azure.synapse.artifacts.models import SparkJobDefinition

        properties = SparkJobDefinition.deserialize(document["properties"])
        operations = self._artifacts.spark_job_definition
        operations.begin_create_or_update_spark_job_definition(document["name"], properties).result()

    def put_pipeline(self, document: dict[str, Any]) -> None:
        from azure.synapse.artifacts.models import PipelineResource

        self._artifacts.pipeline.begin_create_or_update_pipeline(
            document["name"], PipelineResource.deserialize(copy.deepcopy(document))
        ).result()

    def trigger_state(self, name: str) -> str | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            trigger = self._artifacts.trigger.get_trigger(name)
        except ResourceNotFoundError:
            return None
        return None if trigger is None else str(trigger.properties.runtime_state)

    def put_trigger(self, document: dict[str, Any]) -> None:
        from azure.synapse.artifacts.models import Trigger

        # The operation takes the trigger's properties (a Trigger, by its "type" a ScheduleTrigger) and
        # wraps them in a TriggerResource itself. deserialize pops the "type" discriminators from what it
        # reads (as for pipelines), so it reads a copy: the plan's document stays whole.
        properties = Trigger.deserialize(copy.deepcopy(document["properties"]))
        self._artifacts.trigger.begin_create_or_update_trigger(document["name"], properties).result()

    def start_trigger(self, name: str) -> None:
        self._artifacts.trigger.begin_start_trigger(name).result()

    def stop_trigger(self, name: str) -> None:
        self._artifacts.trigger.begin_stop_trigger(name).result()


def token_claims(token: str) -> dict[str, Any]:
    """A JWT's claims, unverified: only read to name the signed-in identity to Azure's own check."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return claims


def unknown_groups(claims: dict[str, Any]) -> str | None:
    """Why a token's group memberships cannot be read from it, or None when it lists them.

    Microsoft Entra ID puts at most 200 groups in a JWT; past that it drops `groups` and points to
    Microsoft Graph instead, through `_claim_names`/`_claim_sources` (or `hasgroups`) ("groups overage
    claim", Microsoft identity platform's access token claims reference,
    https://learn.microsoft.com/entra/identity-platform/access-token-claims-reference). A token may
    also carry no `groups` at all when the resource does not ask for them.
    """
    if isinstance(claims.get("groups"), list):
        return None
    if "groups" in (claims.get("_claim_names") or {}) or claims.get("hasgroups"):
        return "your token lists no groups (more than 200: Microsoft Entra ID sends a groups overage claim instead)"
    return "your token carries no groups claim"


def require_azure_packages() -> None:
    missing = []
    for module, distribution in AZURE_PACKAGES.items():
        try:
            __import__(module)
        except ImportError:
            missing.append(distribution)
    if missing:
        raise DeployError(
            f"deploy needs {', '.join(missing)}: pip install {' '.join(missing)} (--dry-run works without them)"
        )
