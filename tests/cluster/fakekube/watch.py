"""Watch streams: newline-delimited ``{"type": ..., "object": ...}`` over chunked HTTP.

Semantics follow the watch cache: no ``resourceVersion`` (or "0") starts with synthetic
ADDED events for the current state; a resourceVersion replays retained history after it or
fails with 410 Expired once compacted; selectors apply to both old and new object, so an
object leaving the selection is reported DELETED. ``timeoutSeconds`` ends the stream cleanly.
Bookmarks are sent only when asked for, and only carry a version the watcher has caught up
to — a bookmark ahead of an undelivered event would make a reconnecting client skip it.
"""

from __future__ import annotations

import json
import queue
import time
from collections.abc import Callable, Iterator
from typing import Any

from . import errors
from .context import ApiContext, Request, Response
from .logs import Abort
from .resources import Resource
from .rest import object_filter, typed
from .routing import Route
from .storage import Change
from .tables import to_table, wants_table

Obj = dict[str, Any]


def _line(event_type: str, obj: Obj) -> bytes:
    return (json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n").encode()


def _bookmark(resource: Resource, rv: int, initial_end: bool = False) -> bytes:
    meta: Obj = {"resourceVersion": str(rv)}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return _line("BOOKMARK", {"kind": resource.kind, "apiVersion": resource.api_version,
                              "metadata": meta})


def _since(req: Request, current: int) -> int | None:
    raw = req.param("resourceVersion")
    if raw in (None, "", "0"):
        return None
    try:
        since = int(raw)
    except ValueError:
        raise errors.bad_request(f"invalid resource version: {raw}") from None
    if since > current:
        raise errors.ApiError(
            504, "Timeout", f"Too large resource version: {since}, current: {current}",
            {"causes": [{"reason": "ResourceVersionTooLarge",
                         "message": "Too large resource version"}], "retryAfterSeconds": 1},
        )
    return since


def handle_watch(ctx: ApiContext, req: Request, route: Route) -> Response:
    resource = route.resource
    assert resource is not None
    keep_obj = object_filter(req, resource)
    namespace = route.namespace if resource.namespaced else ""
    bookmarks = req.flag("allowWatchBookmarks")
    send_initial = req.param("sendInitialEvents") == "true"
    if send_initial and not bookmarks:
        raise errors.invalid("ListOptions", "", [("sendInitialEvents", "FieldValueForbidden",
                             "Forbidden: sendInitialEvents requires setting allowWatchBookmarks "
                             "to true")])
    timeout = req.int_param("timeoutSeconds") or ctx.default_watch_timeout
    as_table = wants_table(req.headers.get("Accept"))

    def keep(obj: Obj | None) -> bool:
        if obj is None:
            return False
        if namespace and obj["metadata"].get("namespace") != namespace:
            return False
        return keep_obj(obj)

    def render(obj: Obj) -> Obj:
        if as_table:
            return to_table(resource.plural, [obj], {"resourceVersion":
                                                     obj["metadata"]["resourceVersion"]})
        return typed(resource, obj)

    store = ctx.store
    with store.lock:
        since = _since(req, store.current_rv())
        initial: list[Obj] = []
        start_rv = store.current_rv()
        if since is None or send_initial:
            initial = [o for o in store.list(resource.plural)[0] if keep(o)]
            sub, backlog = store.subscribe([resource.plural])
        else:
            try:
                sub, backlog = store.subscribe([resource.plural], since)
            except errors.ApiError as exc:
                if exc.code != 410 or not ctx.watch_expired_as_event:
                    raise
                return Response(stream=iter([_line("ERROR", exc.status())]))

    def translate(change: Change) -> bytes | None:
        new_in, old_in = keep(change.obj), keep(change.old)
        if change.type == "DELETED":
            return _line("DELETED", render(change.obj)) if new_in else None
        if new_in and (old_in or change.type == "ADDED"):
            return _line(change.type, render(change.obj))
        if new_in:
            return _line("ADDED", render(change.obj))
        if old_in:
            return _line("DELETED", render(change.obj))
        return None

    def caught_up_rv() -> int | None:
        with store.lock:
            return store.current_rv() if sub.queue.empty() else None

    def events() -> Iterator[bytes | Abort]:
        try:
            for obj in initial:
                yield _line("ADDED", render(obj))
            if send_initial:
                yield _bookmark(resource, start_rv, initial_end=True)
            for change in backlog:
                if (line := translate(change)) is not None:
                    yield line
            yield from _follow(ctx, sub.queue, translate, timeout,
                               (lambda: caught_up_rv()) if bookmarks else None, resource)
        finally:
            store.unsubscribe(sub)

    return Response(stream=events())


def _follow(
    ctx: ApiContext,
    changes: queue.Queue[Change | None],
    translate: Callable[[Change], bytes | None],
    timeout: float,
    bookmark_rv: Callable[[], int | None] | None,
    resource: Resource,
) -> Iterator[bytes]:
    deadline = time.monotonic() + timeout
    last_bookmark = time.monotonic()
    while not ctx.stopping.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        try:
            change = changes.get(timeout=min(remaining, 0.2))
        except queue.Empty:
            if bookmark_rv and time.monotonic() - last_bookmark >= ctx.bookmark_interval:
                rv = bookmark_rv()
                if rv is not None:
                    last_bookmark = time.monotonic()
                    yield _bookmark(resource, rv)
            continue
        if change is None:
            return
        if (line := translate(change)) is not None:
            yield line
