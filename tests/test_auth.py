"""Which Azure credential a job uses, and that a job without one stops at once instead of prompting.

Tokens come from the fake Azure AD in tests/aml_server.py through azure-identity's real
ClientSecretCredential and CertificateCredential (MSAL underneath; the certificate's signed client
assertion is verified by the server). Synapse's mssparkutils is not on PyPI: a stand-in with the
same `credentials.getSecret(vault, secret[, linked_service])` call is injected, through the loader
parameter or as `sys.modules["notebookutils"]`. A managed identity cannot be exercised off Azure:
those tests check it is built only when chosen, never that it gets a token.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import types
import uuid

import azure.identity
import pytest
from cryptography.hazmat.primitives import serialization

from synapse_ml_track.config import AzureConfig
from synapse_ml_track.errors import CredentialError
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.tracking import auth
from synapse_ml_track.tracking.auth import ARM_SCOPE, check_token, resolve_credential

from aml_server import make_client_certificate
from support import REPO


class StandInMssparkutils:
    """`mssparkutils` as Synapse provides it, holding a few Key Vault secrets."""

    def __init__(self, vaults: dict[str, dict[str, str]], fail_with: Exception | None = None) -> None:
        self.vaults = vaults
        self.fail_with = fail_with
        self.calls: list[tuple] = []
        self.credentials = self

    def getSecret(self, vault: str, name: str, linked_service: str | None = None) -> str:  # noqa: N802 - Synapse's name
        self.calls.append((vault, name, linked_service) if linked_service else (vault, name))
        if self.fail_with is not None:
            raise self.fail_with
        return self.vaults[vault][name]


@pytest.fixture
def no_interactive_login(monkeypatch) -> None:
    """Constructing any interactive or catch-all credential fails the test, here and in azureml-mlflow."""
    import azureml.mlflow._internal.utils as plugin_utils

    def forbidden(name):
        def construct(*args, **kwargs):
            raise AssertionError(f"{name} constructed: a headless job must never reach interactive login")

        return construct

    for name in (
        "InteractiveBrowserCredential",
        "DeviceCodeCredential",
        "DefaultAzureCredential",
        "ChainedTokenCredential",
    ):
        monkeypatch.setattr(azure.identity, name, forbidden(name))
        monkeypatch.setattr(plugin_utils, name, forbidden(name))
    monkeypatch.setattr(
        plugin_utils,
        "get_service_context_from_tracking_url_default_auth",
        forbidden("the plugin's default-auth service context"),
    )


def azure_config(server, **overrides) -> AzureConfig:
    return AzureConfig(authority_host=server.authority, **overrides)


def issued_to(server, credential) -> str:
    """Get a token with the credential, and say which client the fake Azure AD issued it to."""
    token = credential.get_token(ARM_SCOPE).token
    return server.tokens[token]


# ---- environment service principal ----------------------------------------------------------------


def test_environment_client_secret(aml_env, aml_server, offline):
    redactor = Redactor()
    resolved = resolve_credential(azure_config(aml_server), aml_env.environ, redactor)
    assert isinstance(resolved.credential, azure.identity.ClientSecretCredential)
    assert resolved.source == "environment (client secret)"
    assert issued_to(aml_server, resolved.credential) == aml_env.client_id
    assert redactor.redact(f"x {aml_env.secret} y") == "x *** y"
    assert offline == []  # instance discovery skipped: only the configured authority was asked


@pytest.mark.parametrize("password", [None, "cert-PASSWORD-123"])
def test_environment_client_certificate(aml_env, aml_server, tmp_path, password):
    path = tmp_path / "sp.pem"
    certificate = make_client_certificate(path)
    if password:  # re-write the key encrypted, as a password-protected PEM
        key = serialization.load_pem_private_key(path.read_bytes(), None)
        encrypted = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(password.encode()),
        )
        path.write_bytes(encrypted + certificate.public_bytes(serialization.Encoding.PEM))
    client_id = "cert-client-" + tmp_path.name[-8:]
    aml_server.add_client(client_id, certificate=certificate)
    environ = {**aml_env.environ, "AZURE_CLIENT_ID": client_id, "AZURE_CLIENT_CERTIFICATE_PATH": str(path)}
    del environ["AZURE_CLIENT_SECRET"]
    if password:
        environ["AZURE_CLIENT_CERTIFICATE_PASSWORD"] = password
    redactor = Redactor()
    resolved = resolve_credential(azure_config(aml_server), environ, redactor)
    assert resolved.source == "environment (client certificate)"
    assert issued_to(aml_server, resolved.credential) == client_id  # the server verified the signed assertion
    if password:
        assert password not in redactor.redact(f"password {password}")


def test_unreadable_certificate_is_one_clear_error(aml_env, aml_server, tmp_path):
    environ = {**aml_env.environ, "AZURE_CLIENT_CERTIFICATE_PATH": str(tmp_path / "missing.pem")}
    del environ["AZURE_CLIENT_SECRET"]
    with pytest.raises(
        CredentialError, match=r"cannot use the client certificate .*missing\.pem \(AZURE_CLIENT_CERTIFICATE_PATH\)"
    ):
        resolve_credential(azure_config(aml_server), environ, Redactor())


def test_wrong_secret_fails_at_token_check_naming_the_source(aml_env, aml_server):
    environ = {**aml_env.environ, "AZURE_CLIENT_SECRET": "smt-not-the-secret-42"}
    redactor = Redactor()
    resolved = resolve_credential(azure_config(aml_server), environ, redactor)
    with pytest.raises(CredentialError) as raised:
        check_token(resolved, redactor)
    message = str(raised.value)
    assert message.startswith("could not get an Azure AD token with the environment (client secret) credential")
    assert "AADSTS7000215" in message and "smt-not-the-secret-42" not in message


# ---- Key Vault through Synapse's mssparkutils -------------------------------------------------------


def key_vault_secrets(aml_env) -> dict[str, dict[str, str]]:
    return {
        "kv-ml": {
            "aml-sp-tenant-id": aml_env.tenant_id,
            "aml-sp-client-id": aml_env.client_id,
            "aml-sp-client-secret": aml_env.secret,
        }
    }


def test_key_vault_through_the_loader(aml_env, aml_server):
    utils = StandInMssparkutils(key_vault_secrets(aml_env))
    redactor = Redactor()
    config = azure_config(aml_server, key_vault_name="kv-ml", key_vault_linked_service="ls-keyvault")
    resolved = resolve_credential(config, {}, redactor, mssparkutils_loader=lambda: utils)
    assert resolved.source == "key vault kv-ml"
    assert utils.calls == [
        ("kv-ml", "aml-sp-tenant-id", "ls-keyvault"),
        ("kv-ml", "aml-sp-client-id", "ls-keyvault"),
        ("kv-ml", "aml-sp-client-secret", "ls-keyvault"),
    ]
    assert issued_to(aml_server, resolved.credential) == aml_env.client_id
    assert aml_env.secret not in redactor.redact(f"oops {aml_env.secret}")


def test_key_vault_through_notebookutils_module(aml_env, aml_server, monkeypatch, spark):
    """The default loader finds `from notebookutils import mssparkutils`, as on a Synapse pool (where
    it starts Spark first: here the tests' own session is the running one)."""
    utils = StandInMssparkutils(key_vault_secrets(aml_env))
    monkeypatch.setitem(sys.modules, "notebookutils", types.SimpleNamespace(mssparkutils=utils))
    config = azure_config(aml_server, key_vault_name="kv-ml", auth="keyvault", client_id=aml_env.client_id)
    resolved = resolve_credential(config, {}, Redactor())
    # A client id in the config is used as is; only what is missing is read from the vault.
    assert utils.calls == [("kv-ml", "aml-sp-tenant-id"), ("kv-ml", "aml-sp-client-secret")]
    assert issued_to(aml_server, resolved.credential) == aml_env.client_id


def test_environment_comes_before_key_vault(aml_env, aml_server):
    utils = StandInMssparkutils({})
    resolved = resolve_credential(
        azure_config(aml_server, key_vault_name="kv-ml"), aml_env.environ, Redactor(), lambda: utils
    )
    assert resolved.source == "environment (client secret)" and utils.calls == []


def test_key_vault_failure_names_vault_secret_and_role_without_the_secret(aml_env, aml_server):
    utils = StandInMssparkutils(
        {}, fail_with=RuntimeError(f"Py4JJavaError: Forbidden; request body had {aml_env.secret}\nat com.microsoft...")
    )
    redactor = Redactor()
    redactor.add(aml_env.secret)
    with pytest.raises(CredentialError) as raised:
        resolve_credential(
            azure_config(aml_server, key_vault_name="kv-ml", auth="keyvault"), {}, redactor, lambda: utils
        )
    message = str(raised.value)
    assert "cannot read secret 'aml-sp-tenant-id' from Key Vault 'kv-ml'" in message
    assert "Key Vault Secrets User" in message and aml_env.secret not in message and "\n" not in message


def test_key_vault_off_synapse(aml_server):
    with pytest.raises(CredentialError, match="mssparkutils; it is not available here"):
        resolve_credential(
            azure_config(aml_server, key_vault_name="kv-ml", auth="keyvault"), {}, Redactor(), lambda: None
        )


# ---- managed identity: only when chosen ---------------------------------------------------------------


def test_managed_identity_only_when_chosen(aml_server, monkeypatch):
    built = []

    class FakeManagedIdentity:
        def __init__(self, **kwargs):
            built.append(kwargs)

    monkeypatch.setattr(azure.identity, "ManagedIdentityCredential", FakeManagedIdentity)
    # Managed-identity endpoints in the environment do not make `auto` use one.
    environ = {
        "IDENTITY_ENDPOINT": "http://169.254.169.254/x",
        "MSI_ENDPOINT": "http://169.254.169.254/y",
        "AZURE_CLIENT_ID": "mi",
    }
    with pytest.raises(CredentialError):
        resolve_credential(AzureConfig(), environ, Redactor(), lambda: None)
    assert built == []
    resolved = resolve_credential(
        AzureConfig(auth="managed_identity", managed_identity_client_id="mi-123"), {}, Redactor()
    )
    assert isinstance(resolved.credential, FakeManagedIdentity)
    assert resolved.source == "managed identity mi-123"
    assert built[0]["client_id"] == "mi-123" and built[0]["retry_total"] <= 1


def test_real_managed_identity_credential_is_constructible():
    """Off Synapse (AML compute, a VM) a managed identity is azure-identity's own credential."""
    resolved = auth._managed_identity(AzureConfig(), lambda: None)
    assert isinstance(resolved.credential, azure.identity.ManagedIdentityCredential)


def test_user_assigned_identity_is_refused_on_synapse():
    """On Synapse the token is that of the identity the job runs as, never a user-assigned identity's."""
    with pytest.raises(CredentialError, match="never a user-assigned identity; remove it"):
        auth._managed_identity(AzureConfig(managed_identity_client_id="mi-1"), lambda: object())


# ---- nothing usable: fail at once, never interactively ----------------------------------------------


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH) are not set"),
        (
            {"AZURE_TENANT_ID": "t", "AZURE_CLIENT_ID": "c"},
            "AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH) is not set",
        ),
        ({"AZURE_CLIENT_SECRET": "smt-orphan-secret"}, "AZURE_TENANT_ID and AZURE_CLIENT_ID are not set"),
    ],
)
def test_missing_credential_names_what_is_missing(environ, expected, no_interactive_login):
    with pytest.raises(CredentialError) as raised:
        resolve_credential(AzureConfig(), environ, Redactor(), lambda: None)
    message = str(raised.value)
    assert f"no Azure service-principal credential for Azure Machine Learning: {expected}" in message
    assert "azure.key_vault_name" in message and "interactive login is never attempted" in message


def test_key_vault_name_without_synapse_says_so(no_interactive_login):
    with pytest.raises(
        CredentialError, match="azure.key_vault_name is 'kv-ml' but Synapse's mssparkutils is not available"
    ):
        resolve_credential(AzureConfig(key_vault_name="kv-ml"), {}, Redactor(), lambda: None)


@pytest.mark.parametrize("command", ["check", "train"])
def test_headless_job_without_credential_stops_before_mlflow(
    command, run_cli, aml_server, no_interactive_login, monkeypatch
):
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_SUBSCRIPTION_ID"):
        monkeypatch.delenv(name, raising=False)
    aml_server.clear()
    result = run_cli(command, "--tracking-uri", aml_server.tracking_uri)
    assert result.exit_code == 4
    assert result.error_line.startswith(
        "error: no Azure service-principal credential for Azure Machine Learning: AZURE_TENANT_ID"
    )
    assert aml_server.recorded() == []  # neither Azure AD nor the workspace was asked
    assert "Traceback" not in result.stderr


def test_workspace_settings_without_credential_stop_before_the_arm_lookup(run_cli, no_interactive_login, monkeypatch):
    monkeypatch.setattr("azure.ai.ml.MLClient", lambda *a, **k: pytest.fail("ARM asked without a credential"))
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_CERTIFICATE_PATH", "AZUREML_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub")
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg")
    monkeypatch.setenv("AZUREML_WORKSPACE_NAME", "ws")
    result = run_cli("check")
    assert result.exit_code == 4 and "no Azure service-principal credential" in result.error_line


def test_credential_installed_after_an_earlier_mlflow_call_still_wins(aml_env, aml_server, offline):
    """A store MLflow built before `connect` (say, in a notebook) keeps its context object: the
    credential is swapped inside that object, so the cached store uses it too."""
    from azureml.mlflow._internal.service_context_loader import _AzureMLServiceContextLoader
    from azureml.mlflow._internal.utils import ServiceContext
    from mlflow.tracking._tracking_service.utils import _get_store

    from synapse_ml_track.tracking import aml

    uri = aml_server.tracking_uri.replace(
        f"/workspaces/{aml_server.workspace}", "/workspaces/ws-early"
    )  # its own cache entry
    stale = ServiceContext(
        host_url=f"https://127.0.0.1:{aml_server.port}",
        subscription_id=aml_server.subscription_id,
        workspace_name="ws-early",
        resource_group_name=aml_server.resource_group,
        auth=object(),
    )
    _AzureMLServiceContextLoader.add_service_context(uri, stale)
    early_store = _get_store(uri)
    config = azure_config(aml_server)
    aml.connect(uri, config, aml_env.environ, Redactor())
    assert aml_server.tokens[early_store.get_host_creds().token] == aml_env.client_id


# ---- on a pool, Spark before the first token ----------------------------------------------------------

# mssparkutils as a pool has it, for a job in a fresh process (stand-in: the real module is not on
# PyPI). The pool's calls go through the JVM of the running SparkContext; without one they fail.
SYNAPSE_STAND_IN = """
import os

from pyspark import SparkContext


class _Credentials:
    def _on_the_jvm(self):
        if SparkContext._active_spark_context is None:
            raise RuntimeError("mssparkutils needs a running SparkContext; none exists yet")

    def getToken(self, audience):
        self._on_the_jvm()
        return os.environ["SMT_TEST_POOL_TOKEN"]

    def getSecret(self, vault, name, linked_service=None):
        self._on_the_jvm()
        return os.environ["SMT_TEST_VAULT_" + name.replace("-", "_").upper()]


class _Mssparkutils:
    credentials = _Credentials()


mssparkutils = _Mssparkutils()
"""


@pytest.mark.parametrize("auth", ["managed_identity", "keyvault"])
def test_on_a_pool_spark_runs_before_the_first_token_or_secret(auth, aml_env, aml_server, tmp_path):
    """azureml-mlflow's own Synapse token path creates the SparkSession before asking the pool
    (azureml/mlflow/_common/_authentication/_arcadia_token_wrapper.py, get_access_token); a job run
    by `check`, which needs no Spark otherwise, must do the same. A fresh process: the tests' own
    session would hide a missing one."""
    stand_in = tmp_path / "pool-site" / "notebookutils"
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text(textwrap.dedent(SYNAPSE_STAND_IN))
    identity = "synapse-workspace-identity-" + uuid.uuid4().hex[:6]
    aml_server.add_client(identity)
    environ = {name: value for name, value in os.environ.items() if not name.startswith(("AZURE_", "PYSPARK_"))}
    environ.update(
        PYTHONPATH=os.pathsep.join([str(stand_in.parent), str(REPO)]),
        REQUESTS_CA_BUNDLE=aml_env.environ["REQUESTS_CA_BUNDLE"],
        AZURE_AUTHORITY_HOST=aml_server.authority,
        SMT_TEST_POOL_TOKEN=aml_server.issue_token(identity),
        SMT_TEST_VAULT_AML_SP_TENANT_ID=aml_env.tenant_id,
        SMT_TEST_VAULT_AML_SP_CLIENT_ID=aml_env.client_id,
        SMT_TEST_VAULT_AML_SP_CLIENT_SECRET=aml_env.secret,
    )
    settings = ["--set", f"azure.auth={auth}", "--set", f"azure.authority_host={aml_server.authority}"]
    if auth == "keyvault":
        settings += ["--set", "azure.key_vault_name=kv-ml"]
    completed = subprocess.run(
        [sys.executable, "-c", "import sys; from synapse_ml_track.cli import run; run(sys.argv[1:])",
         "check", "--tracking-uri", aml_server.tracking_uri, *settings],
        cwd=tmp_path, env=environ, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    expected = "the Synapse token service (" if auth == "managed_identity" else "the key vault kv-ml credential"
    assert f"ok: Azure AD token acquired with {expected}" in completed.stdout
