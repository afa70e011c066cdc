"""AML's run-artifact service and the blob storage behind it, as the azureml-mlflow plugin uses them.

The plugin's artifact repository (azureml/mlflow/_client/artifact/run_artifact_client.py) never
writes artifacts itself. It asks the workspace's run-history service for one SAS URL per file
(`POST /history/v1.0/.../experiments/{experiment}/runs/{run}/artifacts/batch/metadata`), then
uploads each file to Azure Blob Storage with azure-storage-blob's BlobClient. Downloads ask for a
read URL (`GET .../artifacts/contentinfo?path=`) and lists go to `GET .../artifacts`, paged by
`nextLink` (the plugin's generated client: _restclient/run_artifact/operations/_run_artifacts_operations.py).

Offline, the storage account is served on the same TLS server, path-style as Azure's own storage
emulator addresses accounts (https://127.0.0.1:PORT/<account>/<container>/<blob>). The account
segment is named `<account>.blob.core.windows.net`, so the URL still passes the plugin's check that a
download URL is a blob URL of the current cloud (blob_artifact_util.is_source_uri_matches_storage_blob:
`https://(.*).blob.<storage suffix>/(.*)/(.*)?(.*)`). azure-storage-blob's real client does the
transfer, with AML's content layout (container `azureml`, blobs under `ExperimentRun/dcid.<run id>/`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any

ACCOUNT = "amlartifacts"
BLOB_HOST = f"{ACCOUNT}.blob.core.windows.net"
CONTAINER = "azureml"
HISTORY_PREFIX = (
    "/history/v1.0/subscriptions/{subscription}/resourceGroups/{resource_group}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspace}"
)
_RUN_ARTIFACTS = re.compile(r"^/experiments/(?P<experiment>[^/]+)/runs/(?P<run>[^/]+)/artifacts(?P<rest>/.*)?$")
# SAS lifetime AML hands out for artifact URLs is not documented; an hour is enough for any test.
SAS_LIFETIME = 3600
# The blob service's error bodies are XML with the code repeated in x-ms-error-code
# (learn.microsoft.com/rest/api/storageservices/status-and-error-codes2).
_BLOB_ERROR = '<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{message}</Message></Error>'


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


def aml_error(status: int, code: str, message: str, inner: str | None = None) -> Response:
    """AML's error envelope (the plugin's ErrorResponse model: error.code/message/innerError, componentName)."""
    return json_response(
        status,
        {
            "error": {
                "code": code,
                "severity": None,
                "message": message,
                "innerError": {"code": inner, "innerError": None} if inner else None,
            },
            "correlation": {"operation": secrets.token_hex(16), "request": secrets.token_hex(8)},
            "componentName": "run-history",
            "time": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        },
    )


class ArtifactStore:
    """Run artifacts as AML keeps them: write-once paths, content in blobs reached by signed URLs."""

    def __init__(self, root: Path, base_url_of) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._base_url_of = base_url_of  # () -> "https://127.0.0.1:PORT"
        self._key = secrets.token_bytes(32)
        self._lock = threading.Lock()
        # (run id, path) -> blob name, for every path created by batch/metadata (written or not yet)
        self._paths: dict[tuple[str, str], str] = {}
        self.page_size = 100  # artifacts per list page; the plugin follows nextLink
        # A storage account that accepts connections and never answers, until released.
        self.hang_blob_requests = False
        self.released = threading.Event()

    # ---- the run-history artifact service -------------------------------------------------------
    def handle(self, method: str, rest: str, query: dict[str, str], body: bytes, run_exists) -> Response:
        match = _RUN_ARTIFACTS.match(rest)
        if not match:
            return aml_error(404, "UserError", f"No such run-history route: {rest}", "NotFound")
        experiment, run_id, tail = match.group("experiment"), match.group("run"), match.group("rest") or ""
        if not run_exists(experiment, run_id):
            return aml_error(404, "UserError", f"Run {run_id} was not found in experiment {experiment}", "RunNotFound")
        if method == "POST" and tail == "/batch/metadata":
            return self._create_empty(experiment, run_id, json.loads(body or b"{}"))
        if method == "GET" and tail == "/contentinfo":
            return self._content_info(run_id, query.get("path", ""))
        if method == "GET" and tail == "":
            return self._list(experiment, run_id, query.get("continuationToken"))
        return aml_error(404, "UserError", f"No such run-history route: {method} {rest}", "NotFound")

    def _create_empty(self, experiment: str, run_id: str, request: dict) -> Response:
        """Write-once: a path the run already has is refused with a conflict, per path, as AML does
        (the plugin turns any entry in `errors` into a bare Exception: run_artifact_client._create_empty_artifacts)."""
        created: dict[str, Any] = {}
        infos: dict[str, Any] = {}
        errors: dict[str, Any] = {}
        paths = request.get("paths") or []
        if len(paths) > 100:
            # ultralytics/ultralytics#3223: "Artifact batch size exceeded the limit of 100".
            return aml_error(400, "ValidationError", "Artifact batch size exceeded the limit of 100")
        with self._lock:
            for item in paths:
                path = item["path"]
                if (run_id, path) in self._paths:
                    # "UserError: Resource Conflict" is what AML answers (platform notes; run_artifact_client.py
                    # joins "{code}: {message}" of each error).
                    errors[path] = {
                        "error": {
                            "code": "UserError",
                            "message": f"Resource Conflict: ArtifactId ExperimentRun/dcid.{run_id}/{path} "
                            "already exists.",
                            "innerError": {"code": "Conflict"},
                        }
                    }
                    continue
                blob = f"ExperimentRun/dcid.{run_id}/{path}"
                self._paths[(run_id, path)] = blob
                created[path] = self._artifact(run_id, path)
                infos[path] = self._content_information(run_id, path, blob, permissions="cw")
        return json_response(200, {"artifacts": created, "artifactContentInformation": infos, "errors": errors})

    def _content_info(self, run_id: str, path: str) -> Response:
        with self._lock:
            blob = self._paths.get((run_id, path))
        if blob is None or not self._blob_file(blob).exists():
            return aml_error(404, "UserError", f"Artifact {path} of run {run_id} was not found", "NotFound")
        return json_response(200, self._content_information(run_id, path, blob, permissions="r"))

    def _list(self, experiment: str, run_id: str, token: str | None) -> Response:
        with self._lock:
            paths = sorted(p for (r, p), blob in self._paths.items() if r == run_id and self._blob_file(blob).exists())
        start = int(token or 0)
        page = paths[start : start + self.page_size]
        payload: dict[str, Any] = {
            "value": [self._artifact(run_id, p) for p in page],
            "continuationToken": None,
            "nextLink": None,
        }
        if start + self.page_size < len(paths):
            following = str(start + self.page_size)
            payload["continuationToken"] = following
            payload["nextLink"] = (
                f"{self._base_url_of()}{self.history_path(experiment, run_id)}?continuationToken={following}"
            )
        return json_response(200, payload)

    def history_path(self, experiment: str, run_id: str) -> str:
        return f"{self.history_prefix}/experiments/{experiment}/runs/{run_id}/artifacts"

    history_prefix = ""  # set by the server: HISTORY_PREFIX for its workspace

    def _artifact(self, run_id: str, path: str) -> dict[str, Any]:
        return {
            "artifactId": f"ExperimentRun/dcid.{run_id}/{path}",
            "origin": "ExperimentRun",
            "container": f"dcid.{run_id}",
            "path": path,
            "etag": None,
            "createdTime": time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()),
        }

    def _content_information(self, run_id: str, path: str, blob: str, permissions: str) -> dict[str, Any]:
        return {
            "contentUri": self.signed_url(blob, permissions),
            "origin": "ExperimentRun",
            "container": f"dcid.{run_id}",
            "path": path,
        }

    # ---- shared access signatures ---------------------------------------------------------------
    def signed_url(self, blob: str, permissions: str, lifetime: int = SAS_LIFETIME) -> str:
        expiry = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + lifetime))
        query = {
            "sv": "2021-08-06",
            "sr": "b",
            "sp": permissions,
            "se": expiry,
            "sig": self._signature(blob, permissions, expiry),
        }
        quoted = urllib.parse.quote(f"{CONTAINER}/{blob}")
        return f"{self._base_url_of()}/{BLOB_HOST}/{quoted}?{urllib.parse.urlencode(query)}"

    def _signature(self, blob: str, permissions: str, expiry: str) -> str:
        digest = hmac.new(self._key, f"{permissions}\n{expiry}\n/{CONTAINER}/{blob}".encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode()

    def _authorized(self, blob: str, query: dict[str, str], needed: str) -> str | None:
        """None when the SAS grants `needed` on this blob, else the storage error code Azure answers with."""
        permissions, expiry, signature = query.get("sp", ""), query.get("se", ""), query.get("sig", "")
        if not signature or not hmac.compare_digest(signature, self._signature(blob, permissions, expiry)):
            return "AuthenticationFailed"
        if expiry < time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()):
            return "AuthenticationFailed"
        if needed not in permissions:
            return "AuthorizationPermissionMismatch"
        return None

    # ---- blob storage -------------------------------------------------------------------------
    def handle_blob(self, method: str, path: str, query: dict[str, str], headers, body: bytes) -> Response:
        if self.hang_blob_requests:
            self.released.wait(600)
        container, _, blob = urllib.parse.unquote(path).partition("/")
        if container != CONTAINER or not blob:
            return self._blob_error(404, "ContainerNotFound", "The specified container does not exist.")
        needed = "w" if method == "PUT" else "r"
        refusal = self._authorized(blob, query, needed)
        if refusal:
            return self._blob_error(403, refusal, "Server failed to authenticate the request.")
        target = self._blob_file(blob)
        if method == "PUT":
            if headers.get("x-ms-blob-type") != "BlockBlob" or "comp" in query:
                return self._blob_error(
                    400, "UnsupportedHeader", "Only single-shot block blob uploads are served here."
                )
            if headers.get("If-None-Match") == "*" and target.exists():
                # upload_blob(overwrite=False) sends If-None-Match: * (azure-storage-blob _upload_helpers.py).
                return self._blob_error(409, "BlobAlreadyExists", "The specified blob already exists.")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(body)
            return Response(201, b"", {**self._blob_headers(target), "x-ms-request-server-encrypted": "true"})
        if method in ("GET", "HEAD"):
            if not target.exists():
                return self._blob_error(404, "BlobNotFound", "The specified blob does not exist.")
            content = target.read_bytes()
            wanted = headers.get("x-ms-range") or headers.get("Range")
            if wanted:
                start, _, end = wanted.removeprefix("bytes=").partition("-")
                if int(start) >= len(content):
                    # An empty blob answers a ranged read with 416; the SDK then reads it whole (_download.py).
                    return self._blob_error(
                        416, "InvalidRange", "The range specified is invalid for the current size of the resource."
                    )
                last = min(int(end) if end else len(content) - 1, len(content) - 1)
                part = content[int(start) : last + 1]
                headers_out = {**self._blob_headers(target), "Content-Range": f"bytes {start}-{last}/{len(content)}"}
                return Response(206, part if method == "GET" else b"", headers_out)
            return Response(200, content if method == "GET" else b"", self._blob_headers(target))
        return self._blob_error(405, "UnsupportedHttpVerb", f"{method} is not served here.")

    def _blob_file(self, blob: str) -> Path:
        return self.root / CONTAINER / blob

    def _blob_headers(self, target: Path) -> dict[str, str]:
        stat = target.stat()
        return {
            "ETag": f'"0x{stat.st_mtime_ns:X}"',
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
            "x-ms-blob-type": "BlockBlob",
            "x-ms-version": "2021-08-06",
            "Content-Type": "application/octet-stream",
        }

    def _blob_error(self, status: int, code: str, message: str) -> Response:
        return Response(
            status,
            _BLOB_ERROR.format(code=code, message=message).encode(),
            {"Content-Type": "application/xml", "x-ms-error-code": code},
        )

    # ---- for assertions ---------------------------------------------------------------------
    def create_empty(self, run_id: str, paths: list[str]) -> None:
        """Entries without content, as an upload interrupted between the workspace's create and the
        blob write leaves them: not listed (no content), and refused when created again (write-once)."""
        with self._lock:
            for path in paths:
                self._paths[(run_id, path)] = f"ExperimentRun/dcid.{run_id}/{path}"

    def paths(self, run_id: str) -> set[str]:
        with self._lock:
            return {p for (r, p), blob in self._paths.items() if r == run_id and self._blob_file(blob).exists()}

    def read(self, run_id: str, path: str) -> bytes:
        with self._lock:
            blob = self._paths[(run_id, path)]
        return self._blob_file(blob).read_bytes()
