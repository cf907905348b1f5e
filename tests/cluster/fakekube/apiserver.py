"""The HTTP front of the fake kube-apiserver: parse, authenticate, record, dispatch, write.

Serves HTTP/1.1 with keep-alive on 127.0.0.1 (ephemeral port) from a thread; answers JSON or
chunked streams (watch, follow logs). Every request is recorded (method, path, query, user,
status) so tests can assert e.g. that a dry run made no writes. Unexpected exceptions become a
500 ``Status`` *and* are kept in :attr:`FakeApiServer.internal_errors`, so a harness bug
cannot pass silently as a "server error" the product handled. ``stop()`` ends every stream and
closes every connection: no thread or socket outlives the test.
"""

from __future__ import annotations

import json
import socket
import threading
import traceback
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from . import errors, podlog, rest, schema
from .admission import Admission
from .context import ApiContext, Request, Response
from .faults import Faults
from .logs import Abort, LogStore
from .resources import (
    AUTHZ_GROUP,
    VERSION_INFO,
    api_group_list,
    api_resource_list,
    api_versions,
    authz_resource_list,
)
from .routing import Route, parse_path, verb_for
from .storage import Store
from .tls import self_signed
from .watch import handle_watch

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    user: str = ""
    status: int = 0
    content_type: str = ""
    body: bytes = b""
    user_agent: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    groups: list[str] = field(default_factory=list)  # every Impersonate-Group line, in order

    @property
    def is_write(self) -> bool:
        return self.method in WRITE_METHODS

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None


def _discovery(route: Route, ctx: ApiContext, method: str) -> Response:
    if method != "GET":
        raise errors.method_not_allowed()
    path = route.discovery
    if path in ("/healthz", "/livez", "/readyz"):
        return Response(body=b"ok", content_type="text/plain")
    if path == "/version":
        return Response(body=VERSION_INFO)
    if path == "/api":
        return Response(body=api_versions(ctx.server_address))
    if path == "/api/v1":
        return Response(body=api_resource_list())
    if path == "/apis":
        return Response(body=api_group_list())
    if path == "/openapi/v3":
        return Response(body=schema.openapi_v3_root())
    if path == "/openapi/v3/api/v1":
        return Response(body=schema.openapi_v3_core())
    if path == f"/apis/{AUTHZ_GROUP}":
        group = api_group_list()["groups"][0]
        return Response(body={"kind": "APIGroup", "apiVersion": "v1", **group})
    return Response(body=authz_resource_list())


def dispatch(ctx: ApiContext, req: Request) -> Response:
    route = parse_path(req.path)
    if route.discovery in ("/healthz", "/livez", "/readyz"):
        return _discovery(route, ctx, req.method)
    req.user = ctx.admission.authenticate(req.headers.get("Authorization"),
                                          req.headers.get("Impersonate-User"))
    if route.discovery is not None:
        return _discovery(route, ctx, req.method)
    assert route.resource is not None
    verb = verb_for(req.method, route, req.flag("watch") if "watch" in req.query else False)
    ctx.admission.authorize(req.user, verb, route.audit_resource, route.namespace, route.name,
                            route.resource.group)
    if route.subresource == "log":
        return podlog.handle_log(ctx, req, route)
    handlers = {
        "get": rest.handle_get, "list": rest.handle_list, "watch": handle_watch,
        "create": rest.handle_create, "update": rest.handle_update, "patch": rest.handle_patch,
        "delete": rest.handle_delete, "deletecollection": rest.handle_deletecollection,
    }
    return handlers[verb](ctx, req, route)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Answer without Nagle's delay, as kube-apiserver does: otherwise each request on a
    # kept-alive connection waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def _read_body(self) -> bytes:
        if (self.headers.get("Transfer-Encoding") or "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        owner = self.server.owner
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        body = self._read_body()
        headers = {k: v for k, v in self.headers.items()}
        record = RecordedRequest(self.command, url.path, query, body=body,
                                 content_type=self.headers.get("Content-Type") or "",
                                 user_agent=self.headers.get("User-Agent") or "", headers=headers,
                                 groups=self.headers.get_all("Impersonate-Group") or [])
        owner.record(record)
        req = Request(self.command, url.path, query, cast(Mapping[str, str], self.headers), body)
        try:
            response = dispatch(owner.ctx, req)
        except errors.ApiError as exc:
            response = Response.error(exc)
        except Exception:  # a harness bug: report it as 500 and remember it
            owner.internal_errors.append(traceback.format_exc())
            response = Response.error(errors.internal("fakekube handler crashed"))
        record.user, record.status = req.user, response.code
        self._write(response)

    def __getattr__(self, name: str) -> Any:
        # Every HTTP method (GET, HEAD, FOO...) is recorded and answered with a Status;
        # the router decides what is a 405, instead of http.server's HTML 501.
        if name.startswith("do_"):
            return self._handle
        raise AttributeError(name)

    def _start(self, response: Response, length: int | None) -> None:
        self.send_response(response.code)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for key, value in response.headers.items():
            self.send_header(key, value)
        if length is None:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()

    def _write(self, response: Response) -> None:
        if response.stream is None:
            body = response.body
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self._start(response, len(data))
            if self.command != "HEAD":
                self.wfile.write(data)
            return
        self._start(response, None)
        stream = response.stream
        try:
            for chunk in stream:
                if isinstance(chunk, Abort):
                    if chunk.mode == "abort":
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    break
                if chunk:
                    self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # socketserver's default listen backlog is 5; a real API server takes many clients at once
    # (dozens of `kubectl gadget` runs starting together overflowed it: connection resets).
    request_queue_size = 128

    def __init__(self, owner: FakeApiServer, address: tuple[str, int]) -> None:
        self.owner = owner
        self._conns: set[socket.socket] = set()
        self._conns_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, add: bool) -> None:
        with self._conns_lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def close_connections(self) -> None:
        with self._conns_lock:
            conns = list(self._conns)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class FakeApiServer:
    """A strict fake kube-apiserver. Use as a context manager or call start()/stop()."""

    def __init__(self, ctx: ApiContext | None = None, host: str = "127.0.0.1",
                 port: int = 0, tls: bool = False) -> None:
        self.ctx = ctx or ApiContext(Store(), LogStore(), Admission(), Faults())
        self._address = (host, port)
        self.cert = self_signed(host) if tls else None
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ns_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.requests: list[RecordedRequest] = []
        self.internal_errors: list[str] = []

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        scheme = "https" if self.cert else "http"
        return f"{scheme}://{self._address[0]}:{self._httpd.server_port}"

    def record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def recorded(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self.requests)

    def clear_requests(self) -> None:
        with self._lock:
            self.requests.clear()

    def start(self) -> FakeApiServer:
        self._httpd = _Server(self, self._address)
        if self.cert is not None:  # handshake lazily, in the handler thread
            self._httpd.socket = self.cert.server_context().wrap_socket(
                self._httpd.socket, server_side=True, do_handshake_on_connect=False)
        self.ctx.server_address = self.url.split("://", 1)[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="fakekube-apiserver", daemon=True)
        self._thread.start()
        self._ns_thread = threading.Thread(target=self._namespace_controller,
                                           name="fakekube-namespace-controller", daemon=True)
        self._ns_thread.start()
        return self

    def _namespace_controller(self) -> None:
        sub, _ = self.ctx.store.subscribe(["pods", "events", "namespaces"])
        try:
            while (change := sub.queue.get()) is not None:
                if change.resource == "namespaces":
                    rest.finalize_namespace(self.ctx, change.obj["metadata"]["name"])
                elif change.type == "DELETED":
                    rest.finalize_namespace(self.ctx, change.obj["metadata"]["namespace"])
        finally:
            self.ctx.store.unsubscribe(sub)

    def stop(self) -> None:
        self.ctx.stopping.set()
        self.ctx.store.close_all_subscriptions()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd.close_connections()
        for thread in (self._thread, self._ns_thread):
            if thread is not None:
                thread.join(timeout=5)

    def __enter__(self) -> FakeApiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
