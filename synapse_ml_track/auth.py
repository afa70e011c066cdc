"""Service-principal credentials for Azure Machine Learning, never an interactive login.

Order under `azure.auth: auto`: the environment (AZURE_TENANT_ID, AZURE_CLIENT_ID and
AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH), then Key Vault through Synapse's
mssparkutils. A managed identity is used only when `azure.auth: managed_identity` says so.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from synapse_ml_track.config import AzureConfig
from synapse_ml_track.errors import CredentialError
from synapse_ml_track.redaction import Redactor

log = logging.getLogger(__name__)

ARM_SCOPE = "https://management.azure.com/.default"
# azure-core transport settings: a dead authority fails in seconds, not after minutes of retries.
BOUNDED_HTTP = {"connection_timeout": 10, "read_timeout": 20, "retry_total": 1}


@dataclass(frozen=True)
class ResolvedCredential:
    credential: Any
    source: str  # what a person reads: "environment (client secret)", "key vault my-kv", ...


def load_mssparkutils() -> Any | None:
    """Synapse's mssparkutils, or None off Synapse (the module is not on PyPI)."""
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
        return _managed_identity(azure)
    if method == "env":
        return _from_environment(azure, environ, redactor, required=True)
    if method == "keyvault":
        return _from_key_vault(azure, redactor, mssparkutils_loader, required=True)
    resolved = _from_environment(azure, environ, redactor, required=False) or _from_key_vault(
        azure, redactor, mssparkutils_loader, required=False
    )
    if resolved is None:
        raise CredentialError(
            "no Azure service-principal credential: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET "
            "(or AZURE_CLIENT_CERTIFICATE_PATH), or on Synapse set azure.key_vault_name so the secret is read from "
            "Key Vault; interactive login is never attempted in a job"
        )
    return resolved


def _from_environment(azure: AzureConfig, environ: Mapping[str, str], redactor: Redactor, required: bool) -> ResolvedCredential | None:
    from azure.identity import CertificateCredential, ClientSecretCredential

    tenant_id = environ.get("AZURE_TENANT_ID") or azure.tenant_id
    client_id = environ.get("AZURE_CLIENT_ID") or azure.client_id
    secret = environ.get("AZURE_CLIENT_SECRET")
    certificate = environ.get("AZURE_CLIENT_CERTIFICATE_PATH") or azure.client_certificate_path
    missing = [name for name, value in (("AZURE_TENANT_ID", tenant_id), ("AZURE_CLIENT_ID", client_id)) if not value]
    if not (secret or certificate):
        missing.append("AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH)")
    if missing:
        if required:
            raise CredentialError(f"azure.auth is env but {', '.join(missing)} is not set; set it in the job's environment")
        return None
    options = {**BOUNDED_HTTP, **_authority(azure)}
    if secret:
        redactor.add(secret)
        return ResolvedCredential(ClientSecretCredential(tenant_id, client_id, secret, **options), "environment (client secret)")
    return ResolvedCredential(
        CertificateCredential(tenant_id, client_id, certificate_path=certificate, **options), "environment (client certificate)"
    )


def _from_key_vault(
    azure: AzureConfig, redactor: Redactor, mssparkutils_loader: Callable[[], Any | None], required: bool
) -> ResolvedCredential | None:
    from azure.identity import ClientSecretCredential

    if not azure.key_vault_name:
        if required:
            raise CredentialError("azure.auth is keyvault but azure.key_vault_name is not set; name the Key Vault holding the secret")
        return None
    mssparkutils = mssparkutils_loader()
    if mssparkutils is None:
        if required:
            raise CredentialError(
                "azure.auth is keyvault, which reads secrets through Synapse's mssparkutils; it is not available here "
                "(run on a Synapse pool, or use AZURE_TENANT_ID/AZURE_CLIENT_ID/AZURE_CLIENT_SECRET)"
            )
        return None
    values = {}
    for field, secret_name in (
        ("tenant_id", azure.tenant_id_secret),
        ("client_id", azure.client_id_secret),
        ("client_secret", azure.client_secret_secret),
    ):
        try:
            if azure.key_vault_linked_service:
                value = mssparkutils.credentials.getSecret(azure.key_vault_name, secret_name, azure.key_vault_linked_service)
            else:
                value = mssparkutils.credentials.getSecret(azure.key_vault_name, secret_name)
        except Exception as exc:  # noqa: BLE001 - mssparkutils raises py4j errors of many kinds
            detail = redactor.redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            raise CredentialError(
                f"cannot read secret '{secret_name}' from Key Vault '{azure.key_vault_name}': {detail[:200]} "
                "(does the Synapse managed identity have Key Vault Secrets User on the vault?)"
            ) from None
        if not value:
            raise CredentialError(f"secret '{secret_name}' in Key Vault '{azure.key_vault_name}' is empty")
        values[field] = value
    redactor.add(values["client_secret"])
    credential = ClientSecretCredential(
        values["tenant_id"], values["client_id"], values["client_secret"], **BOUNDED_HTTP, **_authority(azure)
    )
    return ResolvedCredential(credential, f"key vault {azure.key_vault_name}")


def _managed_identity(azure: AzureConfig) -> ResolvedCredential:
    from azure.identity import ManagedIdentityCredential

    options: dict[str, Any] = dict(BOUNDED_HTTP)
    if azure.managed_identity_client_id:
        options["client_id"] = azure.managed_identity_client_id
    return ResolvedCredential(ManagedIdentityCredential(**options), "managed identity")


def _authority(azure: AzureConfig) -> dict[str, str]:
    return {"authority": azure.authority_host} if azure.authority_host else {}


def check_token(resolved: ResolvedCredential, redactor: Redactor) -> None:
    """Acquire a token now, so a wrong secret fails here rather than deep inside MLflow."""
    try:
        resolved.credential.get_token(ARM_SCOPE)
    except Exception as exc:  # noqa: BLE001 - azure-identity raises several unrelated types
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CredentialError(
            f"could not get an Azure AD token with the {resolved.source} credential: {redactor.redact(text)[:300]}"
        ) from None
