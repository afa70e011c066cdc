"""Service-principal credentials for Azure Machine Learning, never an interactive login.

Order under `azure.auth: auto`: the environment (AZURE_TENANT_ID, AZURE_CLIENT_ID and
AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH), then Key Vault through Synapse's
mssparkutils. A managed identity is used only when `azure.auth: managed_identity` says so.
When nothing usable is found the job stops with one line naming what is missing: no browser,
no device code, no waiting.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from synapse_ml_track.config import AzureConfig
from synapse_ml_track.errors import CredentialError, first_line
from synapse_ml_track.redaction import Redactor

log = logging.getLogger(__name__)

ARM_SCOPE = "https://management.azure.com/.default"
# Whose token mssparkutils hands out and whose access Key Vault checks: the identity the job runs as
# (Microsoft Tech Community, "Understand the identity used during component execution in Synapse").
# The roles a job needs belong to it; tests/test_docs.py keeps the documents saying the same.
SYNAPSE_RUNS_AS = (
    "a Spark job definition submitted from Synapse Studio runs as the user who submits it, "
    "one run by a pipeline as the workspace's managed identity"
)
# azure-core transport settings: a dead authority fails in seconds, not after minutes of retries.
BOUNDED_HTTP: dict[str, Any] = {"connection_timeout": 10, "read_timeout": 20, "retry_total": 1}
SECRET_VARIABLE = "AZURE_CLIENT_SECRET"
CERTIFICATE_VARIABLE = "AZURE_CLIENT_CERTIFICATE_PATH"
CERTIFICATE_PASSWORD_VARIABLE = "AZURE_CLIENT_CERTIFICATE_PASSWORD"


@dataclass(frozen=True)
class ResolvedCredential:
    credential: Any
    source: str  # what a person reads: "environment (client secret)", "key vault my-kv", ...


def load_mssparkutils() -> Any | None:
    """Synapse's mssparkutils, or None off Synapse (the module is not on PyPI).

    On a pool the SparkSession is started first: mssparkutils asks the pool's token and Key Vault
    services through the running SparkContext's JVM, and azureml-mlflow's own Synapse token path
    creates the session before it asks (azureml/mlflow/_common/_authentication/
    _arcadia_token_wrapper.py, PyTokenLibrary.get_access_token). Only here, where the pool's
    services are the ones used: off a pool nothing starts, and a missing credential still fails at once.
    """
    if "notebookutils" not in sys.modules and importlib.util.find_spec("notebookutils") is None:
        return None
    from synapse_ml_track.spark.session import get_or_create_spark

    get_or_create_spark("synapse-ml-track")
    for module_name in ("notebookutils", "notebookutils.mssparkutils"):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        return getattr(module, "mssparkutils", module)
    return None


def resolve_credential(
    azure: AzureConfig,
    environ: Mapping[str, str],
    redactor: Redactor,
    mssparkutils_loader: Callable[[], Any | None] = load_mssparkutils,
) -> ResolvedCredential:
    method = azure.auth
    if method == "managed_identity":
        return _managed_identity(azure, mssparkutils_loader)
    if method == "env":
        resolved, missing = _from_environment(azure, environ, redactor)
        if resolved is None:
            raise CredentialError(f"azure.auth is env but {_listing(missing)} not set; set it in the job's environment")
        return resolved
    if method == "keyvault":
        return _from_key_vault(azure, redactor, mssparkutils_loader, required=True)  # type: ignore[return-value]
    resolved, missing = _from_environment(azure, environ, redactor)
    if resolved is not None:
        return resolved
    resolved = _from_key_vault(azure, redactor, mssparkutils_loader, required=False)
    if resolved is not None:
        return resolved
    if azure.key_vault_name:
        key_vault = (
            f"azure.key_vault_name is {azure.key_vault_name!r} but Synapse's mssparkutils is not available here "
            "(Key Vault secrets are read only on a Synapse pool)"
        )
    else:
        key_vault = "on Synapse, set azure.key_vault_name to read the secret from Key Vault"
    raise CredentialError(
        f"no Azure service-principal credential for Azure Machine Learning: {_listing(missing)} not set; "
        f"{key_vault}; interactive login is never attempted in a job"
    )


def _listing(missing: list[str]) -> str:
    if len(missing) == 1:
        return f"{missing[0]} is"
    return f"{', '.join(missing[:-1])} and {missing[-1]} are"


def _from_environment(
    azure: AzureConfig, environ: Mapping[str, str], redactor: Redactor
) -> tuple[ResolvedCredential | None, list[str]]:
    """The environment's service principal, or None and the names of what is missing."""
    from azure.identity import CertificateCredential, ClientSecretCredential

    tenant_id = environ.get("AZURE_TENANT_ID") or azure.tenant_id
    client_id = environ.get("AZURE_CLIENT_ID") or azure.client_id
    secret = environ.get(SECRET_VARIABLE)
    certificate = environ.get(CERTIFICATE_VARIABLE) or azure.client_certificate_path
    missing = [name for name, value in (("AZURE_TENANT_ID", tenant_id), ("AZURE_CLIENT_ID", client_id)) if not value]
    if not (secret or certificate):
        missing.append(f"{SECRET_VARIABLE} (or {CERTIFICATE_VARIABLE})")
    if missing:
        return None, missing
    assert tenant_id and client_id and (secret or certificate)  # else listed in `missing` above
    options = {**BOUNDED_HTTP, **_authority(azure)}
    if secret:
        redactor.add(secret)
        secret_credential = ClientSecretCredential(tenant_id, client_id, secret, **options)
        return ResolvedCredential(secret_credential, "environment (client secret)"), []
    password = environ.get(CERTIFICATE_PASSWORD_VARIABLE)
    if password:
        redactor.add(password)
        options["password"] = password.encode()
    try:
        credential = CertificateCredential(tenant_id, client_id, certificate_path=certificate, **options)
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError and cryptography's errors all mean "unusable"
        detail = redactor.redact(first_line(exc))
        raise CredentialError(
            f"cannot use the client certificate {certificate} ({CERTIFICATE_VARIABLE}): {detail[:200]} "
            "(it must be a PEM or PKCS12 file holding the private key; "
            f"set {CERTIFICATE_PASSWORD_VARIABLE} if it is encrypted)"
        ) from None
    return ResolvedCredential(credential, "environment (client certificate)"), []


def _from_key_vault(
    azure: AzureConfig, redactor: Redactor, mssparkutils_loader: Callable[[], Any | None], required: bool
) -> ResolvedCredential | None:
    """Tenant id, client id and secret from Key Vault via mssparkutils, as the linked service's
    credential when one is named, else as the identity the job runs as.

    A tenant or client id in the config (azure.tenant_id, azure.client_id) is used as is and not read.
    """
    from azure.identity import ClientSecretCredential

    if not azure.key_vault_name:
        if required:
            raise CredentialError(
                "azure.auth is keyvault but azure.key_vault_name is not set; name the Key Vault holding the secret"
            )
        return None
    mssparkutils = mssparkutils_loader()
    if mssparkutils is None:
        if required:
            raise CredentialError(
                "azure.auth is keyvault, which reads secrets through Synapse's mssparkutils; it is not available here "
                "(run on a Synapse pool, or use AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET)"
            )
        return None
    values = {"tenant_id": azure.tenant_id, "client_id": azure.client_id, "client_secret": None}
    for field, secret_name in (
        ("tenant_id", azure.tenant_id_secret),
        ("client_id", azure.client_id_secret),
        ("client_secret", azure.client_secret_secret),
    ):
        if values[field]:
            continue
        try:
            if azure.key_vault_linked_service:
                value = mssparkutils.credentials.getSecret(
                    azure.key_vault_name, secret_name, azure.key_vault_linked_service
                )
            else:
                value = mssparkutils.credentials.getSecret(azure.key_vault_name, secret_name)
        except Exception as exc:  # noqa: BLE001 - mssparkutils raises py4j errors of many kinds
            detail = redactor.redact(first_line(exc))
            if azure.key_vault_linked_service:
                via = f" through linked service '{azure.key_vault_linked_service}'"
                who = "the linked service's credential (normally the workspace's managed identity)"
            else:
                via, who = "", f"the identity the job runs as ({SYNAPSE_RUNS_AS})"
            raise CredentialError(
                f"cannot read secret '{secret_name}' from Key Vault '{azure.key_vault_name}'{via}: {detail[:200]} "
                f"(does {who} have Key Vault Secrets User on the vault?)"
            ) from None
        if not value:
            raise CredentialError(f"secret '{secret_name}' in Key Vault '{azure.key_vault_name}' is empty")
        if field == "client_secret":
            redactor.add(value)
        values[field] = value.strip()
    tenant_id, client_id, client_secret = values["tenant_id"], values["client_id"], values["client_secret"]
    assert tenant_id and client_id and client_secret  # each configured or read above (an empty secret raises)
    redactor.add(client_secret)
    credential = ClientSecretCredential(tenant_id, client_id, client_secret, **BOUNDED_HTTP, **_authority(azure))
    return ResolvedCredential(credential, f"key vault {azure.key_vault_name}")


class SynapseTokenCredential:
    """The token of the identity the job runs as, through the pool's own token service: the
    submitting user's from Synapse Studio, the workspace's managed identity's from a pipeline.

    azure-identity's ManagedIdentityCredential finds no endpoint inside Synapse Spark
    (Azure/azure-sdk-for-python#26997, #30726). Synapse hands out that identity's tokens
    through `mssparkutils.credentials.getToken(audience)`; the ARM audience, "AzureManagement", is
    the one azureml-mlflow's own Synapse authentication asks for
    (azureml/mlflow/_common/_authentication/_arcadia_token_wrapper.py, _ARM_RESOURCE). AML accepts
    ARM tokens whatever scope is requested, so the scope is not passed on.
    """

    AUDIENCE = "AzureManagement"

    def __init__(self, mssparkutils: Any) -> None:
        self._mssparkutils = mssparkutils

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        token = self._mssparkutils.credentials.getToken(self.AUDIENCE)
        return AccessToken(token, _expiry(token))


def _expiry(token: str) -> int:
    """A JWT's `exp`, read without verifying it (the token is only passed on, never trusted here)."""
    import base64
    import json
    import time

    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return int(claims["exp"])
    except (IndexError, ValueError, KeyError, TypeError):
        return int(time.time()) + 300  # unreadable: ask again in five minutes


def _managed_identity(azure: AzureConfig, mssparkutils_loader: Callable[[], Any | None]) -> ResolvedCredential:
    from azure.identity import ManagedIdentityCredential

    mssparkutils = mssparkutils_loader()
    if mssparkutils is not None:
        if azure.managed_identity_client_id:
            raise CredentialError(
                "azure.managed_identity_client_id is set, but on Synapse the token is that of the identity the job "
                f"runs as ({SYNAPSE_RUNS_AS}), never a user-assigned identity; remove it"
            )
        source = f"Synapse token service (the job's own identity: {SYNAPSE_RUNS_AS})"
        return ResolvedCredential(SynapseTokenCredential(mssparkutils), source)
    options: dict[str, Any] = dict(BOUNDED_HTTP)
    if azure.managed_identity_client_id:
        options["client_id"] = azure.managed_identity_client_id
    who = f" {azure.managed_identity_client_id}" if azure.managed_identity_client_id else ""
    return ResolvedCredential(ManagedIdentityCredential(**options), f"managed identity{who}")


def _authority(azure: AzureConfig) -> dict[str, Any]:
    """A sovereign cloud's (or a test's) Azure AD host. Azure AD instance discovery
    (a request to login.microsoftonline.com) knows only Microsoft's hosts, so it is skipped then."""
    if not azure.authority_host:
        return {}
    return {"authority": azure.authority_host, "disable_instance_discovery": True}


def check_token(resolved: ResolvedCredential, redactor: Redactor, scope: str = ARM_SCOPE) -> None:
    """Acquire a token now, so a wrong secret fails here rather than deep inside MLflow.

    The credential caches it: the plugin's first request, which asks for the same scope, reuses it.
    """
    try:
        resolved.credential.get_token(scope)
    except Exception as exc:  # noqa: BLE001 - azure-identity raises several unrelated types
        from synapse_ml_track.tracking.http import TRUST_HINT, untrusted_certificate

        untrusted = untrusted_certificate(exc)
        if untrusted:
            raise CredentialError(
                f"could not get an Azure AD token with the {resolved.source} credential: the TLS certificate "
                f"of Azure AD (or of the proxy before it) is not trusted ({untrusted}); {TRUST_HINT}"
            ) from None
        text = first_line(exc)
        raise CredentialError(
            f"could not get an Azure AD token with the {resolved.source} credential: {redactor.redact(text)[:300]}"
        ) from None
