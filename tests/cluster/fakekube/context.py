"""Shared request/response types and the state every API handler needs.

Handlers are plain functions ``(ApiContext, Request, Route) -> Response`` so they can be
reasoned about without HTTP; the HTTP layer only parses, records and writes. A streaming
response is an iterator of byte chunks (or :class:`~.logs.Abort` to cut the connection).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from .admission import Admission
from .errors import ApiError, bad_request
from .faults import Faults
from .logs import Abort, LogStore
from .services import DEFAULT_SERVICE_CIDR
from .storage import Store

Obj = dict[str, Any]


class NodeAgent(Protocol):
    """What the API server asks of the kubelet side (absent when no kubelet runs)."""

    def node_reachable(self, node: str) -> bool: ...

    def manages_node(self, node: str) -> bool: ...


@dataclass
class Request:
    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes
    user: str = "system:anonymous"

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else default

    def flag(self, name: str) -> bool:
        value = self.param(name)
        return value is not None and value.lower() in ("true", "1", "")

    def int_param(self, name: str) -> int | None:
        value = self.param(name)
        if value is None or value == "":
            return None
        try:
            return int(value)
        except ValueError:
            raise bad_request(
                f'strconv.ParseInt: parsing "{value}": invalid syntax (parameter {name})'
            ) from None

    def content_type(self) -> str:
        return (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()

    def json_body(self, kind: str) -> Any:
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise bad_request(
                f"the object provided is unrecognized (must be of type {kind}): couldn't get "
                f"version/kind; json parse error: {exc}"
            ) from None


@dataclass
class Response:
    code: int = 200
    body: Any = None
    stream: Iterator[bytes | Abort] | None = None
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, err: ApiError) -> Response:
        return cls(err.code, err.status(), headers=dict(err.headers))


@dataclass
class ApiContext:
    store: Store
    logs: LogStore
    admission: Admission
    faults: Faults
    stopping: threading.Event = field(default_factory=threading.Event)
    agent: NodeAgent | None = None
    server_address: str = "127.0.0.1:0"
    watch_expired_as_event: bool = False
    default_watch_timeout: float = 300.0
    bookmark_interval: float = 1.0
    service_cidr: str = DEFAULT_SERVICE_CIDR  # the range ClusterIPs are allocated from
