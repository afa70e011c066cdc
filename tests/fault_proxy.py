"""A small HTTP proxy on 127.0.0.1 that counts requests and injects scripted faults.

It sits between the MLflow client and a real MLflow server (also on loopback). Each request is
matched against the rules in order; the first rule with uses left decides what happens:

- ``respond``: answer with a status code (429, 503, ...) and optional Retry-After, without
  forwarding: the server never sees the request.
- ``drop``: close the connection without an answer, before forwarding (``forward=False``) or
  after the server has processed the request (``forward=True``: the response is lost, so a
  client retry repeats a request the server already applied).
- ``delay``: wait, then forward (a slow server); a wait longer than the client's timeout makes
  the client give up and retry while the original request still reaches the server.
- ``die``: the server dies: ``on_die`` runs (e.g. stop the real server), the proxy stops
  listening and resets every open connection; with ``forward=True`` the request is applied first.

Everything is bounded: rules have a finite number of uses, waits are capped, upstream calls
time out, and only loopback addresses are accepted. The bench imports it to count requests.
"""

from __future__ import annotations

import http.client
import ipaddress
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

MAX_DELAY = 60.0
UPSTREAM_TIMEOUT = 120.0
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts/", "/ajax-api/2.0/mlflow-artifacts/")


def _require_loopback(host: str) -> None:
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror as exc:
        raise ValueError(f"cannot resolve {host!r}: {exc}") from None
    addresses = {info[4][0] for info in infos}
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        raise ValueError(
            f"the fault proxy only talks to loopback addresses, not {host!r} ({', '.join(sorted(addresses))})"
        )


@dataclass
class Rule:
    """One scripted fault. ``path`` is a regular expression searched in the request path (no query)."""

    action: str  # respond | drop | delay | die
    path: str = ""
    method: str | None = None
    body_contains: str | None = None
    times: int = 1  # how many matching requests it applies to
    skip: int = 0  # matching requests to let through before it starts
    status: int = 503
    retry_after: str | None = None
    delay: float = 0.0
    forward: bool = False
    expires_at: float | None = None  # time.monotonic() after which it no longer applies, used up or not
    seen: int = 0
    used: int = 0

    def __post_init__(self) -> None:
        if self.action not in ("respond", "drop", "delay", "die"):
            raise ValueError(f"unknown fault action {self.action!r}")
        if not 0 <= self.delay <= MAX_DELAY:
            raise ValueError(f"delay must be between 0 and {MAX_DELAY} s")
        if self.times < 1:
            raise ValueError("a rule applies at least once")

    def matches(self, method: str, path: str, body: bytes) -> bool:
        if self.used >= self.times or (self.expires_at is not None and time.monotonic() > self.expires_at):
            return False
        if self.method and self.method.upper() != method:
            return False
        if self.path and not re.search(self.path, path.split("?", 1)[0]):
            return False
        if self.body_contains is not None and self.body_contains.encode() not in body:
            return False
        self.seen += 1
        if self.seen <= self.skip:
            return False
        self.used += 1
        return True


@dataclass
class Exchange:
    method: str
    path: str
    outcome: str  # the upstream status as text, or the fault applied
    body: bytes = b""
    started: float = 0.0
    seconds: float = 0.0
    reached_server: bool = False  # the server received (and applied) the request

    @property
    def endpoint(self) -> str:
        return f"{self.method} {self.path.split('?', 1)[0]}"

    @property
    def is_artifact(self) -> bool:
        return self.path.startswith(ARTIFACT_PREFIXES)


@dataclass
class FaultProxy:
    upstream: str  # http://127.0.0.1:PORT of the real server
    on_die: Callable[[], None] | None = None
    host: str = "127.0.0.1"
    port: int = 0
    rules: list[Rule] = field(default_factory=list)
    exchanges: list[Exchange] = field(default_factory=list)

    def __post_init__(self) -> None:
        parts = urlsplit(self.upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://HOST:PORT, got {self.upstream!r}")
        _require_loopback(parts.hostname)
        _require_loopback(self.host)
        self._upstream_host, self._upstream_port = parts.hostname, parts.port
        self._lock = threading.Lock()
        self._down = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)

    # -- life cycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_ProxyHandler):
            owner = proxy

        server = ThreadingHTTPServer((self.host, self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._go_down()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def is_down(self) -> bool:
        return self._down.is_set()

    def die(self) -> None:
        """The server dies: stop listening, reset every open connection, then run on_die."""
        self._go_down()
        if self.on_die is not None:
            self.on_die()

    def _go_down(self) -> None:
        if self._down.is_set():
            return
        self._down.set()
        server = self._server
        if server is not None:
            # Handlers run in their own threads (never serve_forever's), so waiting here is safe;
            # with daemon threads, server_close() joins none of them.
            server.shutdown()
            server.server_close()  # the port is released: new connections are refused
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            _reset(conn)

    # -- scripting and counting ----------------------------------------------------------------

    def add(self, *rules: Rule) -> FaultProxy:
        with self._lock:
            self.rules.extend(rules)
        return self

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()
            self.exchanges.clear()

    def _rule_for(self, method: str, path: str, body: bytes) -> Rule | None:
        with self._lock:
            return next((rule for rule in self.rules if rule.matches(method, path, body)), None)

    def _begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _record(self, exchange: Exchange) -> None:
        with self._lock:
            self.exchanges.append(exchange)
            self._in_flight -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no request is being handled (a delayed one may outlive the client's wait)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def snapshot(self) -> list[Exchange]:
        """Every exchange, once no request is mid-handling. A handler records its exchange only after
        the client has seen the outcome (a reset connection ends the client's call at once), so
        reading without waiting races the handler thread: the cause of an intermittent failure."""
        if not self.wait_idle():
            raise AssertionError(f"the proxy still handles {self._in_flight} request(s) after 30 s")
        with self._lock:
            return list(self.exchanges)

    def counts(self, include_artifacts: bool = True) -> Counter:
        return Counter(e.endpoint for e in self.snapshot() if include_artifacts or not e.is_artifact)

    def forwarded(self, endpoint_pattern: str = "") -> list[Exchange]:
        """Requests the server received, whether or not the client got the answer."""
        return [e for e in self.snapshot() if e.reached_server and re.search(endpoint_pattern, e.endpoint)]

    def faults(self) -> list[Exchange]:
        return [e for e in self.snapshot() if e.outcome.startswith("fault:")]


def _reset(conn: socket.socket) -> None:
    try:
        # SO_LINGER 0: close with a TCP reset, as a crashed server's kernel would.
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        conn.close()
    except OSError:
        pass


class _ProxyHandler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"
    timeout = 60  # an idle keep-alive connection is closed after this

    def setup(self) -> None:
        super().setup()
        with self.owner._lock:
            self.owner._connections.add(self.connection)

    def finish(self) -> None:
        with self.owner._lock:
            self.owner._connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - quiet
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        proxy = self.owner
        started = time.monotonic()
        method, path = self.command, self.path
        body = self._read_body()
        if proxy.is_down:
            self._drop()
            return
        proxy._begin()
        exchange = Exchange(method, path, "", body, started)
        try:
            rule = proxy._rule_for(method, path, body)
            if rule is None:
                exchange.outcome = self._forward(body, exchange)
            elif rule.action == "respond":
                exchange.outcome = f"fault:{rule.status}"
                self._respond(rule.status, rule.retry_after)
            elif rule.action == "drop":
                self._forward_if_asked(rule, body, exchange)
                self._drop()
            elif rule.action == "delay":
                exchange.outcome = f"fault:delay{rule.delay:g}s+forwarded"
                time.sleep(rule.delay)
                if proxy.is_down:
                    self._drop()
                else:
                    exchange.outcome = self._forward(body, exchange, prefix=exchange.outcome + ":")
            elif rule.action == "die":
                self._forward_if_asked(rule, body, exchange)
                proxy.die()
                self._drop()
        except (ConnectionError, TimeoutError, OSError) as exc:
            exchange.outcome = exchange.outcome or f"error:{type(exc).__name__}"
            self._drop()
        finally:
            exchange.seconds = time.monotonic() - started
            proxy._record(exchange)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle

    def _forward_if_asked(self, rule, body: bytes, exchange) -> None:
        """A fault that lets the request reach the server first (its response is then lost)."""
        if rule.forward:
            self._call_upstream(body)
            exchange.reached_server = True
        exchange.outcome = f"fault:{rule.action}" + ("+forwarded" if rule.forward else "")

    def _call_upstream(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(
            self.owner._upstream_host, self.owner._upstream_port, timeout=UPSTREAM_TIMEOUT
        )
        try:
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"
            }
            headers["Content-Length"] = str(len(body))
            conn.request(
                self.command,
                self.path,
                body=body if body or self.command in ("POST", "PUT", "PATCH") else None,
                headers=headers,
            )
            response = conn.getresponse()
            return response.status, response.reason, response.getheaders(), response.read()
        finally:
            conn.close()

    def _forward(self, body: bytes, exchange: Exchange, prefix: str = "") -> str:
        status, reason, headers, payload = self._call_upstream(body)
        exchange.reached_server = True
        if self.owner.is_down:
            self._drop()
            return f"{prefix}dropped(down)"
        self.send_response(status, reason)
        for key, value in headers:
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)
        return f"{prefix}{status}" if prefix else str(status)

    def _respond(self, status: int, retry_after: str | None) -> None:
        payload = b'{"error_code": "TEMPORARILY_UNAVAILABLE", "message": "injected fault"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _drop(self) -> None:
        self.close_connection = True
        _reset(self.connection)
