"""A local double of an Azure Machine Learning workspace, strict where the jobs depend on it.

One HTTPS server on 127.0.0.1 (a self-signed certificate; clients trust it through
REQUESTS_CA_BUNDLE) plays the Azure services the jobs talk to. Each behaviour below names its
source; where the double is stricter than anything documented, it says so.

* **Azure AD** at the authority `https://127.0.0.1:PORT`: tenant discovery and the
  client-credentials token POST, checking the client id and its secret or signed certificate
  assertion and the ARM scope, so azure-identity's real ClientSecretCredential and
  CertificateCredential (MSAL underneath) run end to end. Tokens are JWTs with `exp`, `aud`, `appid`.
* **The workspace's MLflow API**, only under the prefix azureml-mlflow builds
  (`/mlflow/v2.0/subscriptions/…/workspaces/<ws>`: azureml/mlflow/_store/azureml_reststore.py
  `get_host_credentials` uses v2.0 for any mlflow 2.x/3.x), forwarded to a real `mlflow server`
  after these checks:
  - a bearer token this server issued, else 401 with AML's JSON body (mlflow/mlflow#5846); a
    principal without a role on the workspace gets 403 with an empty body (Azure/azure-sdk-for-python#31429);
  - 404 for what AML does not serve: MLflow 3's `/logged-models` endpoints and the plugin's
    asynchronous batch endpoints (platform notes, "Version trap"; azureml/mlflow/_store/tracking/store.py);
  - registered-model aliases are not served (404): they are absent from AML's MLflow support
    matrix (learn.microsoft.com/azure/machine-learning/how-to-manage-models-mlflow, "Support matrix");
  - search filters AML refuses get 400: `!=` on tags and `OR` in run searches
    (how-to-track-experiments-mlflow, "Support matrix"; Azure/azure-sdk-for-python#42155),
    `order_by` on metrics, params or tags, and registered-model searches by anything but an exact
    name (how-to-manage-models-mlflow, "Support matrix");
  - AML's run limits, checked before anything is stored (MicrosoftDocs/azure-ai-docs,
    articles/machine-learning/resource-limits-capacity.md, "Runs" and "Metrics"): 50 tags a run,
    tag keys of 100 characters and values of 1,000, 50 metric names a run, 250 metric values a batch;
  - `mlflow.source.*` tags given at run creation are dropped (Azure/azure-sdk-for-python#45207);
  - at most `page_size` results a search page, with a next_page_token. AML documents no page
    size: the double pages small so a client that ignores the token is caught (stricter than documented);
  - throttling on request: 429 with Retry-After (learn.microsoft.com/azure/machine-learning/
    how-to-manage-quotas, "Azure Machine Learning API throttling": clients must honour 429), and for
    a window of time (`throttle_window`): every request to the workspace, its MLflow API and its
    artifact service alike, answered 429 with Retry-After until the window ends, as AML's limits
    apply per workspace (how-to-manage-quotas) and as Azure's throttled services answer: a request
    sent before Retry-After has passed is not processed (learn.microsoft.com/azure/
    azure-resource-manager/management/request-limits-and-throttling, "Error code");
  - dotted tag names in run filters only unquoted (`tags.mlflow.parentRunId = '…'`, as AML's own
    examples write them): a backtick- or double-quoted name is refused with 400, as the support
    matrix lists escaped special characters in filters as unsupported (how-to-track-experiments-mlflow,
    "Support matrix"; stricter than what a real workspace may let through);
  - model versions as AML documents them (how-to-manage-models-mlflow, "Support matrix"): a version's
    tags only in its details (`get_model_version`; the matrix lists retrieving a version's details and
    editing its tags, not tags in search results), and its `source` not echoed as the `runs:/` URI it
    was registered from but in AML's own form for a job's output (`azureml://jobs/<run>/outputs/
    artifacts/paths/<path>`, the matrix's footnote 2): what AML stores is not documented, so nothing may
    be read from it (stricter than documented);
  - run and experiment artifact locations in AML's own form
    (`azureml://…/mlflow/v2.0/…/workspaces/<ws>/experiments/<id>/runs/<run>/artifacts`, the
    form the plugin parses: azureml/mlflow/_store/artifact/utils.py `_ARTIFACT_URI_REGEX`), so
    MLflow picks the plugin's artifact repository, as against a real workspace.
* **The run-history artifact service and blob storage** (tests/aml_artifacts.py): write-once
  artifact paths, SAS-signed blob URLs, transfers by azure-storage-blob's real client.

Not emulated: Azure Resource Manager (tests stub it beneath azure-ai-ml), the model registry's
own storage (a model version is downloaded from its run's artifacts), private endpoints.

Every request is recorded (method, path, status, bodies, which client's token) for assertions.
Run on its own: `python tests/aml_server.py` (or `make aml-double`) prints one JSON line with the
tracking URI and the environment a client needs, then serves until interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import json
import re
import secrets
import signal
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
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

from aml_artifacts import BLOB_HOST, HISTORY_PREFIX, ArtifactStore, Response, aml_error, json_response

ARM_SCOPE = "https://management.azure.com/.default"
WORKSPACE_PREFIX = (
    "/mlflow/v2.0/subscriptions/{subscription}/resourceGroups/{resource_group}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspace}"
)
API = "/api/2.0/mlflow"
UNSERVED = (
    "/logged-models",
    "/api/2.0/preview/mlflow/runs/log-batch-async",
    "/api/2.0/preview/mlflow/runs/get-run-data-status",
)
ALIAS_ENDPOINTS = (f"{API}/registered-models/alias",)
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


@dataclass(frozen=True)
class RunLimits:
    """AML's documented per-run limits (resource-limits-capacity.md, "Runs" and "Metrics")."""

    tags_per_run: int = 50
    tag_key_length: int = 100
    tag_value_length: int = 1000
    metric_names_per_run: int = 50
    metrics_per_batch: int = 250
    # Not on the limits page, but what AML answers (Azure/azure-sdk-for-python#35685).
    params_per_run: int = 200


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _self_signed(
    key: rsa.RSAPrivateKey, common_name: str, san: list[x509.GeneralName] | None, ca: bool
) -> x509.Certificate:
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
                digital_signature=True,
                key_encipherment=True,
                key_cert_sign=True,
                crl_sign=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        ).add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(key, hashes.SHA256())


def _pem_key(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


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
    kind: str  # "token" (Azure AD), "discovery", "aml", "artifacts", "blob", "other"
    at: float = field(default_factory=time.monotonic)


@dataclass
class Throttle:
    pattern: re.Pattern
    times: int
    retry_after: int


@dataclass
class ThrottleWindow:
    starts_at: re.Pattern  # the first workspace request whose path matches opens the window
    seconds: float
    retry_after: int
    ends: float | None = None  # time.monotonic() when the window closes, once open

    def answers(self, path: str) -> bool:
        """Whether this request is throttled; the first matching request opens the window."""
        now = time.monotonic()
        if self.ends is None and self.starts_at.search(path):
            self.ends = now + self.seconds
        return self.ends is not None and now < self.ends


@dataclass
class AmlServer:
    """See the module docstring. Start with `start()`, stop with `stop()`; `upstream` is the real mlflow server."""

    upstream_uri: str
    state_dir: Path
    tenant_id: str = "11111111-2222-3333-4444-555555555555"
    subscription_id: str = "00000000-aaaa-bbbb-cccc-000000000001"
    resource_group: str = "rg-ml"
    workspace: str = "ws-ml"
    limits: RunLimits = field(default_factory=RunLimits)
    page_size: int = 20
    clients: dict[str, ServicePrincipal] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)  # access token -> client id
    revoked: bool = False  # when True, AML refuses every token (401), e.g. the workspace moved tenant

    def __post_init__(self) -> None:
        self.port = 0
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._throttles: list[Throttle] = []
        self._window: ThrottleWindow | None = None
        self._signing_key = secrets.token_bytes(32)
        self.ca_bundle, self._key_path = make_tls_certificate(self.state_dir / "tls")
        self.artifacts = ArtifactStore(self.state_dir / "blobs", lambda: self.authority)
        self.artifacts.history_prefix = HISTORY_PREFIX.format(
            subscription=self.subscription_id, resource_group=self.resource_group, workspace=self.workspace
        )

    # ---- configuration -------------------------------------------------------------------
    def add_client(
        self,
        client_id: str,
        secret: str | None = None,
        certificate: x509.Certificate | None = None,
        has_role: bool = True,
    ) -> ServicePrincipal:
        principal = ServicePrincipal(client_id, secret, certificate, has_role)
        self.clients[client_id] = principal
        return principal

    def client_environment(self) -> dict[str, str]:
        """A new service principal known to this double, as the environment a job would have it in."""
        client_id, secret = str(uuid.uuid4()), "smt-FAKE-client-secret-" + secrets.token_hex(12)
        self.add_client(client_id, secret=secret)
        return {
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_CLIENT_ID": client_id,
            "AZURE_CLIENT_SECRET": secret,
            "AZURE_AUTHORITY_HOST": self.authority,
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
        }

    def issue_token(self, client_id: str, lifetime: int = 3600) -> str:
        """An ARM-audience access token for a known principal, as Azure AD would issue it."""
        now = int(time.time())
        claims = {
            "aud": "https://management.azure.com/", "iss": f"{self.authority}/{self.tenant_id}/v2.0",
            "iat": now, "nbf": now, "exp": now + lifetime, "appid": client_id, "tid": self.tenant_id,
            "jti": uuid.uuid4().hex,
        }  # fmt: skip
        token = jwt.encode(claims, self._signing_key, algorithm="HS256")
        with self._lock:
            self.tokens[token] = client_id
        return token

    def throttle(self, pattern: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` workspace requests whose path matches with 429 and Retry-After."""
        with self._lock:
            self._throttles.append(Throttle(re.compile(pattern), times, retry_after))

    def throttle_window(self, seconds: float, retry_after: int, starts_at: str = r"") -> ThrottleWindow:
        """From the first workspace request whose path matches `starts_at`, answer every workspace
        request with 429 and Retry-After for `seconds`."""
        with self._lock:
            self._window = ThrottleWindow(re.compile(starts_at), seconds, retry_after)
            return self._window

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def prefix(self) -> str:
        return WORKSPACE_PREFIX.format(
            subscription=self.subscription_id, resource_group=self.resource_group, workspace=self.workspace
        )

    def workspace_path(self, api_version: str = "v1.0") -> str:
        return self.prefix.replace("/mlflow/v2.0", f"/mlflow/{api_version}")

    @property
    def tracking_uri(self) -> str:
        """What AML's studio shows (v1.0): the plugin swaps in v2.0 itself under mlflow 3."""
        return f"azureml://127.0.0.1:{self.port}{self.workspace_path()}"

    def run_artifact_uri(self, experiment_id: str, run_id: str) -> str:
        return f"azureml://127.0.0.1:{self.port}{self.prefix}/experiments/{experiment_id}/runs/{run_id}/artifacts"

    # ---- lifecycle -----------------------------------------------------------------------
    def start(self) -> AmlServer:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_bundle, self._key_path)
        handler = type("Handler", (_Handler,), {"aml": self})
        self._httpd = _TlsServer(("127.0.0.1", 0), handler, context)
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="aml-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.artifacts.released.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def reset(self) -> None:
        """Back to a well-behaved workspace, with an empty request record."""
        with self._lock:
            self.requests.clear()
            self._throttles.clear()
            self._window = None
        self.revoked = False
        self.artifacts.hang_blob_requests = False

    # ---- what happened ---------------------------------------------------------------------
    def record(self, entry: Recorded) -> None:
        with self._lock:
            self.requests.append(entry)

    def recorded(self, kind: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if kind is None or r.kind == kind]

    def api_calls(self) -> list[tuple[str, str, int]]:
        """(method, path after the workspace prefix, status) of every AML request."""
        return [
            (r.method, r.path[len(self.prefix) :] if r.path.startswith(self.prefix) else r.path, r.status)
            for r in self.recorded("aml")
        ]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def _take_throttle(self, path: str) -> Throttle | ThrottleWindow | None:
        with self._lock:
            if self._window is not None and self._window.answers(path):
                return self._window
            for rule in self._throttles:
                if rule.times > 0 and rule.pattern.search(path):
                    rule.times -= 1
                    return rule
        return None


class BackendUnavailable(Exception):
    """The store behind the double failed while the double looked something up for a request."""


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
        try:
            super().finish_request(request, client_address)
        finally:
            # wrap_socket detached the raw socket, which is all shutdown_request closes. A handler
            # that raised (its store's connection dropped under it) left the TLS socket to the garbage
            # collector: the client, its request unanswered on a live connection, waited out its read
            # timeout ("did not answer in time" in the short soak) instead of seeing the drop at once.
            request.close()

    def handle_error(self, request, client_address) -> None:
        pass  # client disconnects are normal; failures show up in the recorded statuses


class _Handler(BaseHTTPRequestHandler):
    aml: AmlServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
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
        try:
            response, client, kind = self._answer(parsed, body)
        except BackendUnavailable as exc:
            # The service's own store failed under it: a transient 503, never a wrong "not found".
            # Clients retry it (MLflow's _TRANSIENT_FAILURE_RESPONSE_CODES, azure-core's RetryPolicy).
            response, client, kind = aml_error(503, "SystemError", str(exc), "ServiceUnavailable"), None, "aml"
        aml.record(
            Recorded(self.command, parsed.path, parsed.query, response.status, body, response.body, client, kind)
        )
        self.send_response(response.status)
        headers = {"Content-Type": "application/json" if response.body else "text/plain", **response.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header(
            "Content-Length", str(len(response.body)) if self.command != "HEAD" else headers.get("Content-Length", "0")
        )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def _answer(self, parsed: urllib.parse.SplitResult, body: bytes) -> tuple[Response, str | None, str]:
        aml = self.aml
        tenant = f"/{aml.tenant_id}"
        client: str | None = None
        if parsed.path == f"{tenant}/v2.0/.well-known/openid-configuration" and self.command == "GET":
            response, kind = json_response(200, self._openid_configuration()), "discovery"
        elif parsed.path == f"{tenant}/oauth2/v2.0/token" and self.command == "POST":
            response, client = self._token(body)
            kind = "token"
        elif parsed.path.startswith(aml.artifacts.history_prefix + "/"):
            response, client = self._authorized(
                lambda: (
                    self._throttled(parsed.path)
                    or aml.artifacts.handle(
                        self.command,
                        parsed.path[len(aml.artifacts.history_prefix) :],
                        _query(parsed),
                        body,
                        self._run_exists,
                    )
                )
            )
            kind = "artifacts"
        elif parsed.path.startswith(f"/{BLOB_HOST}/"):
            # Blob storage authorises by the SAS in the URL alone, not by a bearer token.
            response = aml.artifacts.handle_blob(
                self.command, parsed.path[len(BLOB_HOST) + 2 :], _query(parsed), self.headers, body
            )
            kind = "blob"
        elif parsed.path == aml.prefix or parsed.path.startswith(aml.prefix + "/"):
            response, client = self._authorized(lambda: self._workspace(parsed, body))
            kind = "aml"
        else:
            response, kind = Response(404), "other"
        return response, client, kind

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

    def _token(self, body: bytes) -> tuple[Response, str | None]:
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        client_id = form.get("client_id", "")
        principal = self.aml.clients.get(client_id)
        if form.get("grant_type") != "client_credentials":
            return json_response(
                400,
                {"error": "unsupported_grant_type", "error_description": "AADSTS70003: only client_credentials here"},
            ), None
        if principal is None:
            return json_response(
                400,
                {
                    "error": "unauthorized_client",
                    "error_description": f"AADSTS700016: Application with identifier '{client_id}' "
                    "was not found in the directory.",
                },
            ), None
        if not self._client_authenticated(principal, form):
            return json_response(
                401,
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided. Ensure the secret being "
                    "sent in the request is the client secret value, not the client secret ID.",
                },
            ), None
        if form.get("scope") != ARM_SCOPE:
            return json_response(
                400,
                {
                    "error": "invalid_scope",
                    "error_description": f"AADSTS70011: The provided value for scope {form.get('scope')} is not valid.",
                },
            ), client_id
        token = self.aml.issue_token(client_id)
        return json_response(
            200, {"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}
        ), client_id

    def _client_authenticated(self, principal: ServicePrincipal, form: dict[str, str]) -> bool:
        if "client_secret" in form:
            return principal.secret is not None and secrets.compare_digest(form["client_secret"], principal.secret)
        if (
            form.get("client_assertion_type") == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
            and principal.certificate
        ):
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
    def _authorized(self, serve) -> tuple[Response, str | None]:
        aml = self.aml
        header = self.headers.get("Authorization", "")
        token = header[len("Bearer ") :] if header.startswith("Bearer ") else None
        client_id = aml.tokens.get(token) if token else None
        if client_id is not None:
            try:
                jwt.decode(token, aml._signing_key, algorithms=["HS256"], audience="https://management.azure.com/")
            except jwt.ExpiredSignatureError:
                client_id = None
        if client_id is None or aml.revoked:
            return json_response(401, AML_401_BODY), None
        if not aml.clients[client_id].has_role:
            return Response(403), client_id
        return serve(), client_id

    def _workspace(self, parsed: urllib.parse.SplitResult, body: bytes) -> Response:
        aml = self.aml
        rest = parsed.path[len(aml.prefix) :] or "/"
        throttled = self._throttled(rest)
        if throttled is not None:
            return throttled
        if any(p in rest for p in UNSERVED) or rest in ALIAS_ENDPOINTS or rest.endswith("/get-by-alias"):
            return Response(404)
        query = _query(parsed)
        request = json.loads(body) if body and self.command in ("POST", "PATCH", "DELETE") else {}
        refusal = self._refusal(rest, query, request)
        if refusal is not None:
            return refusal
        if rest == f"{API}/runs/create":
            # AML drops mlflow.source.* tags given at creation (Azure/azure-sdk-for-python#45207).
            request["tags"] = [t for t in request.get("tags", []) if not t["key"].startswith("mlflow.source.")]
            body = json.dumps(request).encode()
        if rest == f"{API}/model-versions/get-download-uri":
            return self._download_uri(query)
        query_string = urllib.parse.urlencode(self._paged(rest, query), doseq=True)
        upstream = requests.request(
            self.command,
            aml.upstream_uri + rest + (f"?{query_string}" if query_string else ""),
            data=body or None,
            headers={"Content-Type": self.headers.get("Content-Type", "application/json")},
            timeout=60,
        )
        content = upstream.content
        if upstream.ok and content:
            content = json.dumps(_aml_model_versions(self._aml_locations(upstream.json()), rest)).encode()
        return Response(
            upstream.status_code, content, {"Content-Type": upstream.headers.get("Content-Type", "application/json")}
        )

    def _throttled(self, path: str) -> Response | None:
        throttled = self.aml._take_throttle(path)
        if throttled is None:
            return None
        response = aml_error(429, "UserError", "The request was throttled: too many requests.", "TooManyRequests")
        response.headers["Retry-After"] = str(throttled.retry_after)
        return response

    def _paged(self, rest: str, query: dict[str, str]) -> dict[str, str]:
        if rest.endswith("/search") and self.command == "GET":
            query = dict(query)
            query["max_results"] = str(min(int(query.get("max_results") or self.aml.page_size), self.aml.page_size))
        return query

    def _refusal(self, rest: str, query: dict[str, str], request: dict[str, Any]) -> Response | None:
        if rest == f"{API}/runs/search":
            if self.command == "POST":
                request["max_results"] = min(int(request.get("max_results") or self.aml.page_size), self.aml.page_size)
            return _run_filter_refusal(request.get("filter") or "", request.get("order_by") or [])
        if rest == f"{API}/registered-models/search":
            return _registered_model_filter_refusal(query.get("filter") or "")
        if rest == f"{API}/model-versions/search":
            return _model_version_filter_refusal(query.get("filter") or "")
        if rest == f"{API}/metrics/get-history" and int(query.get("max_results") or 0) >= 1000:
            # mlflow/mlflow#10694: AML refuses MLflow's default page of 25,000 metric values.
            size = query["max_results"]
            return mlflow_error(
                400, "UserError", f"MaxResults = {size} is invalid: MaxResults must be less than 1000.", "BAD_REQUEST"
            )
        if rest in (
            f"{API}/runs/create",
            f"{API}/runs/log-batch",
            f"{API}/runs/set-tag",
            f"{API}/runs/log-metric",
            f"{API}/runs/log-parameter",
        ):
            return self._limit_refusal(rest, request)
        return None

    def _limit_refusal(self, rest: str, request: dict[str, Any]) -> Response | None:
        limits = self.aml.limits
        tags = request.get("tags") or (
            [{"key": request["key"], "value": request["value"]}] if rest.endswith("set-tag") else []
        )
        metrics = request.get("metrics") or ([request] if rest.endswith("log-metric") else [])
        params = request.get("params") or ([request] if rest.endswith("log-parameter") else [])
        for tag in tags:
            if len(tag["key"]) > limits.tag_key_length:
                return _limit_error("Tags.Key", limits.tag_key_length, len(tag["key"]))
            if len(tag.get("value") or "") > limits.tag_value_length:
                return _limit_error("Tags.Value", limits.tag_value_length, len(tag["value"]))
        if len(metrics) > limits.metrics_per_batch:
            return _limit_error("MetricV2Dto.Value/Count", limits.metrics_per_batch, len(metrics))
        if rest.endswith("runs/create"):
            kept = [t for t in tags if not t["key"].startswith("mlflow.source.")]
            return _limit_error("Tags", limits.tags_per_run, len(kept)) if len(kept) > limits.tags_per_run else None
        run = self._upstream_run(request.get("run_id") or request.get("run_uuid"))
        if run is None:
            return None  # the upstream server answers for a missing run
        data = run.get("data", {})
        all_tags = {t["key"] for t in data.get("tags", [])} | {t["key"] for t in tags}
        if len(all_tags) > limits.tags_per_run:
            return _limit_error("Tags", limits.tags_per_run, len(all_tags))
        names = {m["key"] for m in data.get("metrics", [])} | {m["key"] for m in metrics}
        if len(names) > limits.metric_names_per_run:
            return _limit_error("MetricNames", limits.metric_names_per_run, len(names))
        all_params = {p["key"] for p in data.get("params", [])} | {p["key"] for p in params}
        if len(all_params) > limits.params_per_run:
            return _limit_error("Parameters", limits.params_per_run, len(all_params))
        return None

    def _upstream_run(self, run_id: str | None) -> dict | None:
        if not run_id:
            return None
        answer = self._lookup(f"{API}/runs/get", {"run_id": run_id})
        return answer.json()["run"] if answer.ok else None

    def _lookup(self, rest: str, params: dict[str, str]) -> requests.Response:
        """The double's own read of its store; a store that fails or does not answer is BackendUnavailable."""
        try:
            answer = requests.get(f"{self.aml.upstream_uri}{rest}", params=params, timeout=60)
        except requests.RequestException as exc:
            raise BackendUnavailable(f"the workspace's store did not answer ({type(exc).__name__})") from exc
        if answer.status_code >= 500:
            raise BackendUnavailable(f"the workspace's store answered HTTP {answer.status_code}")
        return answer

    def _run_exists(self, experiment_id: str, run_id: str) -> bool:
        run = self._upstream_run(run_id)
        return run is not None and run["info"]["experiment_id"] == experiment_id

    def _download_uri(self, query: dict[str, str]) -> Response:
        """Where a version's files are: its `runs:/` source resolved to the run's AML artifact location."""
        answer = self._lookup(f"{API}/model-versions/get", query)
        if not answer.ok:
            return Response(answer.status_code, answer.content, {"Content-Type": "application/json"})
        version = answer.json()["model_version"]
        match = re.match(r"^runs:/([^/]+)/(.+)$", version.get("source", ""))
        run = self._upstream_run(match.group(1)) if match else None
        if run is None:
            return aml_error(
                400, "UserError", f"Model version source {version.get('source')} is not a run artifact", "BadArgument"
            )
        base = self.aml.run_artifact_uri(run["info"]["experiment_id"], run["info"]["run_id"])
        return json_response(200, {"artifact_uri": f"{base}/{match.group(2)}"})

    def _aml_locations(self, payload: Any) -> Any:
        """Run and experiment artifact locations as AML reports them (see the module docstring)."""
        if isinstance(payload, list):
            return [self._aml_locations(item) for item in payload]
        if not isinstance(payload, dict):
            return payload
        out = {key: self._aml_locations(value) for key, value in payload.items()}
        if "artifact_uri" in out and "run_id" in out and "experiment_id" in out:
            out["artifact_uri"] = self.aml.run_artifact_uri(out["experiment_id"], out["run_id"])
        if "artifact_location" in out and "experiment_id" in out:
            out["artifact_location"] = (
                f"azureml://127.0.0.1:{self.aml.port}{self.aml.prefix}/experiments/{out['experiment_id']}"
            )
        return out


def _aml_model_versions(payload: Any, rest: str) -> Any:
    """Model versions as AML answers them (see the module docstring): the source in AML's form, and
    tags only from `model-versions/get`."""
    if isinstance(payload, list):
        return [_aml_model_versions(item, rest) for item in payload]
    if not isinstance(payload, dict):
        return payload
    out = {key: _aml_model_versions(value, rest) for key, value in payload.items()}
    if {"name", "version", "source"} <= out.keys():
        match = re.match(r"^runs:/([^/]+)/(.+)$", out["source"])
        if match:
            out["source"] = f"azureml://jobs/{match.group(1)}/outputs/artifacts/paths/{match.group(2)}"
        if rest != f"{API}/model-versions/get":
            out.pop("tags", None)
    return out


def _query(parsed: urllib.parse.SplitResult) -> dict[str, str]:
    return {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query, keep_blank_values=True).items()}


# ---- AML's filter grammar ---------------------------------------------------------------------------

_CLAUSE = re.compile(
    r"^\s*(?P<key>(?:(?:attributes?|tags?|params?|parameters?|metrics?)\.)?(?:`[^`]+`|\"[^\"]+\"|[\w.]+))\s*"
    r"(?P<op>!=|<>|>=|<=|=|<|>|(?:NOT\s+)?I?LIKE|(?:NOT\s+)?IN)\s*(?P<value>.+?)\s*$",
    re.IGNORECASE,
)


def _clauses(filter_string: str) -> list[re.Match] | str:
    """The AND-joined clauses of a filter, or the part AML refuses."""
    if any(re.search(r"\bOR\b", part, re.IGNORECASE) for part in _unquoted(filter_string)):
        return filter_string
    matches = []
    for part in _split_outside_quotes(filter_string):
        match = _CLAUSE.match(part)
        if not match:
            return part.strip()
        matches.append(match)
    return matches


_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|`[^`]*`|\"[^\"]*\"")


def _unquoted(text: str) -> list[str]:
    return _QUOTED.split(text)


def _split_outside_quotes(text: str) -> list[str]:
    """Split on AND where it is not inside a quoted value or name."""
    pieces, current, position = [], "", 0
    for match in _QUOTED.finditer(text):
        outside = re.split(r"\s+AND\s+", text[position : match.start()], flags=re.IGNORECASE)
        current += outside[0]
        for following in outside[1:]:
            pieces.append(current)
            current = following
        current += match.group(0)
        position = match.end()
    outside = re.split(r"\s+AND\s+", text[position:], flags=re.IGNORECASE)
    current += outside[0]
    for following in outside[1:]:
        pieces.append(current)
        current = following
    pieces.append(current)
    return [p for p in pieces if p.strip()]


def mlflow_error(status: int, code: str, message: str, error_code: str = "INVALID_PARAMETER_VALUE") -> Response:
    """The envelope AML's MLflow endpoint refuses a request with: PascalCase `Error`, no top-level
    `message`, MLflow's `error_code` (quoted in Azure/azure-sdk-for-python#42155 and mlflow/mlflow#11462)."""
    return json_response(status, {
        "Error": {
            "Code": code, "Severity": None, "Message": message, "MessageFormat": None, "MessageParameters": None,
            "ReferenceCode": None, "DetailsUri": None, "Target": None, "Details": [], "InnerError": None,
            "DebugInfo": None, "AdditionalInfo": None,
        },
        "Correlation": {"operation": secrets.token_hex(16), "request": secrets.token_hex(8)},
        "Environment": "local", "Location": "local",
        "Time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        "ComponentName": "mlflow", "statusCode": status, "error_code": error_code,
    })  # fmt: skip


def _filter_error(clause: str) -> Response:
    # AML's words for any filter it cannot run, `!=` on tags included (Azure/azure-sdk-for-python#42155).
    return mlflow_error(
        400, "UserError",
        "Currently unsupported filter string format (we currently do not support OR). "
        f"Provided filter string: {clause}",
    )  # fmt: skip


def _limit_error(field: str, limit: int, size: int) -> Response:
    # AML's template for a limit exceeded (Azure/azure-sdk-for-python#35685, mlflow/mlflow#11462); the
    # FieldName values for tags and metric names are this double's own: no captured answer shows them.
    return mlflow_error(
        400, "ValidationError",
        f"A field of the entity is over the size limit. FieldName={field}, Limit={limit}, Size={size}. "
        "See https://aka.ms/azure-machine-learning-limits for service limits documentation.",
    )  # fmt: skip


def _run_filter_refusal(filter_string: str, order_by: list[str]) -> Response | None:
    for column in order_by:
        if re.match(r"^\s*(metrics?|params?|parameters?|tags?)\.", column, re.IGNORECASE):
            return _filter_error(f"order_by {column}")
    return _filter_refusal(
        filter_string, lambda key, op: not (key.startswith("tag") and op in ("!=", "<>")) and not _quoted_name(key)
    )


def _quoted_name(key: str) -> bool:
    # A name escaped in backticks or double quotes: AML's support matrix lists escaped special
    # characters in filters as unsupported; its examples write dotted tags unquoted.
    return key.endswith(("`", '"'))


def _registered_model_filter_refusal(filter_string: str) -> Response | None:
    return _filter_refusal(filter_string, lambda key, op: key == "name" and op == "=")


def _model_version_filter_refusal(filter_string: str) -> Response | None:
    return _filter_refusal(filter_string, lambda key, op: key in ("name", "run_id") and op == "=")


def _filter_refusal(filter_string: str, allowed) -> Response | None:
    """AML's 400 for the first clause `allowed(key, operator)` refuses, or None."""
    if not filter_string.strip():
        return None
    clauses = _clauses(filter_string)
    if isinstance(clauses, str):
        return _filter_error(clauses)
    for clause in clauses:
        if not allowed(clause.group("key").lower(), clause.group("op").upper()):
            return _filter_error(clause.group(0).strip())
    return None


# ---- standalone: `python tests/aml_server.py` (make aml-double) ------------------------------------


def main(argv: list[str] | None = None) -> int:
    from support import start_mlflow_server

    parser = argparse.ArgumentParser(description="Run the local AML workspace double until interrupted.")
    parser.add_argument(
        "--state-dir", help="where the double keeps its store, blobs and certificate (default: a temp dir)"
    )
    args = parser.parse_args(argv)
    state = Path(args.state_dir or tempfile.mkdtemp(prefix="aml-double-")).resolve()
    upstream = start_mlflow_server(state / "mlflow")
    server = AmlServer(upstream.uri, state).start()
    client_id, secret = str(uuid.uuid4()), "smt-FAKE-client-secret-" + secrets.token_hex(12)
    server.add_client(client_id, secret=secret)
    print(
        json.dumps(
            {
                "tracking_uri": server.tracking_uri,
                "env": {
                    "AZURE_TENANT_ID": server.tenant_id,
                    "AZURE_CLIENT_ID": client_id,
                    "AZURE_CLIENT_SECRET": secret,
                    "AZURE_AUTHORITY_HOST": server.authority,
                    "REQUESTS_CA_BUNDLE": str(server.ca_bundle),
                },
            }
        ),
        flush=True,
    )
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    try:
        stopped.wait()
    finally:
        server.stop()
        upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
