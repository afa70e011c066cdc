"""An Azure-Machine-Learning-shaped MLflow endpoint and Azure AD token endpoint on 127.0.0.1.

One HTTPS server (a self-signed certificate for IP 127.0.0.1, made with `cryptography`; clients
trust it through REQUESTS_CA_BUNDLE) plays two Azure services:

* Azure AD, at the authority `https://127.0.0.1:PORT`: tenant discovery
  (`/<tenant>/v2.0/.well-known/openid-configuration`) and the client-credentials token POST
  (`/<tenant>/oauth2/v2.0/token`), checking the client id and its secret or signed certificate
  assertion, and the ARM scope. So azure-identity's real ClientSecretCredential and
  CertificateCredential (with MSAL underneath) run end to end.
* The AML workspace's MLflow endpoint, only under the prefix the azureml-mlflow plugin builds
  (`/mlflow/v2.0/subscriptions/<sub>/resourceGroups/<rg>/providers/Microsoft.MachineLearningServices/
  workspaces/<ws>`, 404 anywhere else). Every request needs `Authorization: Bearer <token>` with a
  token this server issued: otherwise 401 with the JSON body AML sends (mlflow/mlflow#5846). A
  token issued to a service principal without a role on the workspace gets 403 with an empty body
  (as AML answers, Azure/azure-sdk-for-python#31429). What AML does not serve answers 404 (empty
  body): the MLflow 3 `/logged-models` endpoints and the plugin's asynchronous batch endpoints
  (`/api/2.0/preview/mlflow/runs/log-batch-async`, `.../get-run-data-status`). The rest is
  forwarded, prefix stripped, to a real `mlflow server` (tests/conftest.start_mlflow_server).

Where this stops being AML: the real service hands out blob-storage SAS URLs for artifacts
(`/history/v1.0/.../artifacts/batch/metadata`, then an upload to `*.blob.core.windows.net`), which
cannot be emulated offline. The mlflow server here has a plain local --default-artifact-root, so
runs get a local-path artifact_uri and the client writes artifacts straight to disk.

Every request is recorded (method, path, status, bodies, which client's token) for assertions.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import secrets
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

ARM_SCOPE = "https://management.azure.com/.default"
WORKSPACE_PREFIX = (
    "/mlflow/v2.0/subscriptions/{subscription}/resourceGroups/{resource_group}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspace}"
)
# What AML does not serve (see the module docstring).
UNSERVED = ("/logged-models", "/api/2.0/preview/mlflow/runs/log-batch-async", "/api/2.0/preview/mlflow/runs/get-run-data-status")
# The body AML answers a request without a usable bearer token with (mlflow/mlflow#5846).
AML_401_BODY = {
    "error": {
        "code": "UserError",
        "severity": None,
        "message": "Bearer token not provided.",
        "innerError": {"code": "AuthorizationError", "innerError": None},
    },
    "componentName": "mlflow",
}


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _self_signed(key: rsa.RSAPrivateKey, common_name: str, san: list[x509.GeneralName] | None, ca: bool) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, key_encipherment=True, key_cert_sign=True, crl_sign=False, content_commitment=False,
                data_encipherment=False, key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(key, hashes.SHA256())


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def make_tls_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed server certificate for IP 127.0.0.1 (and localhost): (certificate, key) PEM paths.

    The certificate is its own CA, so pointing REQUESTS_CA_BUNDLE at it makes clients trust it.
    """
    directory.mkdir(parents=True, exist_ok=True)
    key = _key()
    san = [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
    cert = _self_signed(key, "127.0.0.1", san, ca=True)
    cert_path, key_path = directory / "server-cert.pem", directory / "server-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(_pem_key(key))
    return cert_path, key_path


def make_client_certificate(path: Path) -> x509.Certificate:
    """A service principal's certificate: key and certificate in one PEM file, as azure-identity reads it."""
    key = _key()
    cert = _self_signed(key, "synapse-ml-track-test-sp", None, ca=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_pem_key(key) + cert.public_bytes(serialization.Encoding.PEM))
    return cert


@dataclass
class ServicePrincipal:
    client_id: str
    secret: str | None = None
    certificate: x509.Certificate | None = None
    has_role: bool = True  # a role on the workspace (AzureML Data Scientist); without it AML answers 403


@dataclass
class Recorded:
    method: str
    path: str  # without the query string
    query: str
    status: int
    body: bytes
    response_body: bytes
    client_id: str | None  # whose token authorised the request, if any
    kind: str  # "token" (Azure AD), "discovery", "aml", "other"
    at: float = field(default_factory=time.monotonic)


@dataclass
class AmlServer:
    """See the module docstring. Start with `start()`, stop with `stop()`; `upstream` is the real mlflow server."""

    upstream_uri: str
    tls_dir: Path
    tenant_id: str = "11111111-2222-3333-4444-555555555555"
    subscription_id: str = "00000000-aaaa-bbbb-cccc-000000000001"
    resource_group: str = "rg-ml"
    workspace: str = "ws-ml"
    clients: dict[str, ServicePrincipal] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> client id
    revoked: bool = False  # when True, AML refuses every token (401), e.g. the workspace moved tenant

    def __post_init__(self) -> None:
        self.port = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.ca_bundle, self._key_path = make_tls_certificate(self.tls_dir)

    # ---- configuration -------------------------------------------------------------------
    def add_client(self, client_id: str, secret: str | None = None, certificate: x509.Certificate | None = None, has_role: bool = True) -> ServicePrincipal:
        principal = ServicePrincipal(client_id, secret, certificate, has_role)
        self.clients[client_id] = principal
        return principal

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def prefix(self) -> str:
        return WORKSPACE_PREFIX.format(subscription=self.subscription_id, resource_group=self.resource_group, workspace=self.workspace)

    def workspace_path(self, api_version: str = "v1.0") -> str:
        return self.prefix.replace("/mlflow/v2.0", f"/mlflow/{api_version}")

    @property
    def tracking_uri(self) -> str:
        """What AML's studio shows (v1.0): the plugin swaps in v2.0 itself under mlflow 3."""
        return f"azureml://127.0.0.1:{self.port}{self.workspace_path()}"

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> "AmlServer":
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_bundle, self._key_path)
        handler = type("Handler", (_Handler,), {"aml": self})
        self._httpd = _TlsServer(("127.0.0.1", 0), handler, context)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="aml-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    # ---- what happened ---------------------------------------------------------------------
    def record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)

    def recorded(self, kind: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if kind is None or r.kind == kind]

    def api_calls(self) -> list[tuple[str, str, int]]:
        """(method, path after the workspace prefix, status) of every AML request."""
        return [(r.method, r.path[len(self.prefix):] if r.path.startswith(self.prefix) else r.path, r.status) for r in self.recorded("aml")]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()


class _TlsServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler, context: ssl.SSLContext) -> None:
        self.ssl_context = context
        super().__init__(address, handler)

    def finish_request(self, request, client_address) -> None:
        # The TLS handshake runs in the request's own thread, so one slow client blocks nobody.
        try:
            request = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # e.g. a client that does not trust the certificate: nothing to serve
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        pass  # client disconnects are normal; failures show up in the recorded statuses


class _Handler(BaseHTTPRequestHandler):
    aml: AmlServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        aml = self.aml
        tenant = f"/{aml.tenant_id}"
        if parsed.path == f"{tenant}/v2.0/.well-known/openid-configuration" and self.command == "GET":
            status, payload, client = 200, self._openid_configuration(), None
            kind = "discovery"
        elif parsed.path == f"{tenant}/oauth2/v2.0/token" and self.command == "POST":
            status, payload, client = self._token(body)
            kind = "token"
        elif parsed.path == aml.prefix or parsed.path.startswith(aml.prefix + "/"):
            status, payload, client = self._workspace(parsed, body)
            kind = "aml"
        else:
            status, payload, client = 404, b"", None
            kind = "other"
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        aml.record(Recorded(self.command, parsed.path, parsed.query, status, body, raw, client, kind))
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if raw else "text/plain")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    # ---- Azure AD ----------------------------------------------------------------------------
    def _openid_configuration(self) -> dict[str, Any]:
        base = f"{self.aml.authority}/{self.aml.tenant_id}"
        return {
            "issuer": f"{base}/v2.0",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "tenant_region_scope": "EU",
        }

    def _token(self, body: bytes) -> tuple[int, dict[str, Any], str | None]:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        client_id = form.get("client_id", "")
        principal = self.aml.clients.get(client_id)
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type", "error_description": "AADSTS70003: only client_credentials here"}, None
        if principal is None:
            return 400, {"error": "unauthorized_client", "error_description": f"AADSTS700016: Application with identifier '{client_id}' was not found in the directory."}, None
        if not self._client_authenticated(principal, form):
            return 401, {"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID."}, None
        if form.get("scope") != ARM_SCOPE:
            return 400, {"error": "invalid_scope", "error_description": f"AADSTS70011: The provided value for scope {form.get('scope')} is not valid."}, client_id
        token = "eyJ0eXAi." + secrets.token_urlsafe(48)
        self.aml.tokens[token] = client_id
        return 200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}, client_id

    def _client_authenticated(self, principal: ServicePrincipal, form: dict[str, str]) -> bool:
        if "client_secret" in form:
            return principal.secret is not None and secrets.compare_digest(form["client_secret"], principal.secret)
        if form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" and principal.certificate:
            try:
                claims = jwt.decode(
                    form.get("client_assertion", ""),
                    principal.certificate.public_key(),
                    algorithms=["RS256", "PS256"],
                    audience=f"{self.aml.authority}/{self.aml.tenant_id}/oauth2/v2.0/token",
                )
            except jwt.PyJWTError:
                return False
            return claims.get("iss") == claims.get("sub") == principal.client_id and claims.get("exp", 0) > time.time()
        return False

    # ---- the AML workspace -----------------------------------------------------------------------
    def _workspace(self, parsed: urllib.parse.SplitResult, body: bytes) -> tuple[int, Any, str | None]:
        aml = self.aml
        header = self.headers.get("Authorization", "")
        token = header[len("Bearer "):] if header.startswith("Bearer ") else None
        client_id = aml.tokens.get(token) if token else None
        if client_id is None or aml.revoked:
            return 401, AML_401_BODY, None
        if not aml.clients[client_id].has_role:
            return 403, b"", client_id
        rest = parsed.path[len(aml.prefix):] or "/"
        if any(rest.startswith(p) or p in rest for p in UNSERVED):
            return 404, b"", client_id
        upstream = requests.request(
            self.command,
            aml.upstream_uri + rest + (f"?{parsed.query}" if parsed.query else ""),
            data=body or None,
            headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
            timeout=60,
        )
        return upstream.status_code, upstream.content, client_id


# ---- pytest fixtures: import them into a test module (`from aml_server import aml_server, aml_env, ...`) ----

import atexit  # noqa: E402 - only the fixtures need these
import socket  # noqa: E402
import uuid  # noqa: E402

import pytest  # noqa: E402

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# MLflow's own usage telemetry (config.mlflow-telemetry.io): blocked too, but it is not Azure's doing.
NOT_AZURE = (".mlflow-telemetry.io",)


_SHARED: dict[str, AmlServer] = {}


def shared_aml_server(tmp_path_factory) -> AmlServer:
    """One AmlServer (and mlflow server) for the whole test session, stopped when Python exits.

    Test modules import the `aml_server` fixture, which pytest would otherwise set up once per
    module; the mlflow server takes seconds to start (a minute on a loaded machine).
    """
    if "server" not in _SHARED:
        from conftest import start_mlflow_server

        try:
            upstream = start_mlflow_server(tmp_path_factory.mktemp("aml-upstream"))
        except RuntimeError:  # conftest waits 60 s; a busy machine can need longer: once more
            upstream = start_mlflow_server(tmp_path_factory.mktemp("aml-upstream-retry"))
        server = AmlServer(upstream.uri, tmp_path_factory.mktemp("aml-tls")).start()
        server.upstream = upstream  # type: ignore[attr-defined]
        _SHARED["server"] = server
        atexit.register(upstream.stop)
        atexit.register(server.stop)
    return _SHARED["server"]


@pytest.fixture
def aml_server(tmp_path_factory) -> AmlServer:
    """The shared AmlServer; `aml_server.upstream` is the real mlflow server behind it."""
    return shared_aml_server(tmp_path_factory)


@dataclass
class ServicePrincipalEnv:
    tenant_id: str
    client_id: str
    secret: str
    environ: dict[str, str]


@pytest.fixture
def aml_env(aml_server, monkeypatch, request) -> ServicePrincipalEnv:
    """A fresh service principal known to the fake Azure AD, in the environment as a job would have it.

    Trusts the server's certificate (REQUESTS_CA_BUNDLE) and points azure-identity at the fake
    authority (AZURE_AUTHORITY_HOST). Clears the workspace variables so each test sets its own.
    """
    if "run_cli" in request.fixturenames:
        request.getfixturevalue("run_cli")  # it clears AZURE_CLIENT_SECRET: set ours after it
    aml_server.revoked = False
    aml_server.clear()
    client_id = str(uuid.uuid4())
    secret = "smt-FAKE-client-secret-" + secrets.token_hex(12)
    aml_server.add_client(client_id, secret=secret)
    environ = {
        "AZURE_TENANT_ID": aml_server.tenant_id,
        "AZURE_CLIENT_ID": client_id,
        "AZURE_CLIENT_SECRET": secret,
        "AZURE_AUTHORITY_HOST": aml_server.authority,
        "REQUESTS_CA_BUNDLE": str(aml_server.ca_bundle),
    }
    for name in (
        "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME", "AZUREML_REGION",
        "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "MLFLOW_TRACKING_URI", "CURL_CA_BUNDLE",
        "MLFLOW_ENABLE_ASYNC_LOGGING",
    ):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    return ServicePrincipalEnv(aml_server.tenant_id, client_id, secret, environ)


@pytest.fixture
def offline(monkeypatch) -> list[str]:
    """Only 127.0.0.1 resolves: any attempt to reach Azure (instance discovery, cloud metadata, ARM,
    IMDS) fails at once and is listed here for the test to assert on."""
    attempted: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if str(host) not in LOCAL_HOSTS:
            if not str(host).endswith(NOT_AZURE):
                attempted.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"offline test: {host} is not reachable")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    return attempted
