"""Azure services that cannot be reached from a test, answered beneath the real SDK clients.

The SDKs (azure-ai-ml, azure-synapse-artifacts, azure-synapse-accesscontrol, azure-storage-file-datalake)
all send through azure-core's RequestsTransport, which accepts a requests.Session. StubSession is
that session: it answers from a route table instead of the network, and records every request, so
the SDKs' own serialization, paging and polling run as in production up to the HTTP boundary.
"""

from __future__ import annotations

import io
import json
import re
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
import urllib3


@dataclass
class Sent:
    method: str
    url: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]]
Route = tuple[str, str, Callable[[Sent, re.Match], Answer]]  # (method, URL regex, handler)


class StubSession(requests.Session):
    def __init__(self, routes: list[Route]) -> None:
        super().__init__()
        self.routes = routes
        self.sent: list[Sent] = []

    def request(self, method, url, headers=None, data=None, **kwargs):
        parsed = urllib.parse.urlsplit(url)
        body = data if isinstance(data, bytes) else (data.read() if hasattr(data, "read") else (data or "").encode())
        sent = Sent(method, url, parsed.path, dict(urllib.parse.parse_qsl(parsed.query)), dict(headers or {}), body)
        self.sent.append(sent)
        for route_method, pattern, handler in self.routes:
            match = re.fullmatch(pattern, f"{parsed.netloc}{parsed.path}")
            if route_method == method and match:
                status, payload, *extra = handler(sent, match)
                return _response(url, status, payload, extra[0] if extra else {})
        return _response(url, 404, {"error": {"code": "NotFound", "message": f"stub: no route for {method} {url}"}}, {})

    def transport(self):
        from azure.core.pipeline.transport import RequestsTransport

        return RequestsTransport(session=self, session_owner=False)


def _response(url: str, status: int, payload: Any, headers: dict[str, str]) -> requests.Response:
    body = payload if isinstance(payload, bytes) else (json.dumps(payload).encode() if payload is not None else b"")
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **headers}
    response = requests.Response()
    response.raw = urllib3.HTTPResponse(body=io.BytesIO(body), headers=headers, status=status, preload_content=False)
    response.status_code, response.reason, response.url = status, "stub", url
    response.headers.update(headers)
    return response
