"""In-memory object store with a global resourceVersion and a bounded change history.

Every write bumps one counter (like etcd's revision) and appends a :class:`Change`; watches
replay the history after their ``resourceVersion`` and then follow live changes through a
per-subscriber queue. Backlog and subscription are taken under one lock so no change can fall
between "replay" and "follow" — the classic lost-event race of hand-rolled watch fakes.
Objects go in and out as deep copies: callers can never mutate stored state by accident.
"""

from __future__ import annotations

import builtins
import json
import queue
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from . import errors
from .timeutil import rfc3339

Obj = dict[str, Any]
Key = tuple[str, str]


def clone(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


@dataclass(frozen=True)
class Change:
    """One committed write. ``obj`` is the new state (the last state for DELETED)."""

    rv: int
    type: str
    resource: str
    obj: Obj
    old: Obj | None


@dataclass(eq=False)
class Subscription:
    resources: frozenset[str]
    queue: queue.Queue[Change | None] = field(default_factory=queue.Queue)


class Store:
    """Thread-safe object storage for all resources, keyed by (namespace, name)."""

    def __init__(self, history_size: int = 2000) -> None:
        self.lock = threading.RLock()
        self._objects: dict[str, dict[Key, Obj]] = {}
        self._rv = 1
        self._history: deque[Change] = deque()
        self._history_size = history_size
        self._compacted_rv = 0
        self._subs: set[Subscription] = set()

    # -- reads ---------------------------------------------------------------------------
    def current_rv(self) -> int:
        with self.lock:
            return self._rv

    def get(self, resource: str, namespace: str, name: str) -> Obj | None:
        with self.lock:
            obj = self._objects.get(resource, {}).get((namespace, name))
            return clone(obj) if obj is not None else None

    def list(self, resource: str, namespace: str | None = None) -> tuple[list[Obj], int]:
        """Objects sorted by (namespace, name), plus the resourceVersion of the snapshot."""
        with self.lock:
            items = [
                clone(obj)
                for (ns, _), obj in sorted(self._objects.get(resource, {}).items())
                if namespace is None or ns == namespace
            ]
            return items, self._rv

    # -- writes --------------------------------------------------------------------------
    def _commit(self, type_: str, resource: str, obj: Obj, old: Obj | None) -> Obj:
        self._rv += 1
        obj["metadata"]["resourceVersion"] = str(self._rv)
        change = Change(self._rv, type_, resource, clone(obj), old)
        self._history.append(change)
        while len(self._history) > self._history_size:
            self._compacted_rv = self._history.popleft().rv
        for sub in self._subs:
            if resource in sub.resources:
                sub.queue.put(change)
        return clone(obj)

    def create(self, resource: str, obj: Obj) -> Obj:
        meta = obj.setdefault("metadata", {})
        key = (meta.get("namespace", ""), meta["name"])
        with self.lock:
            table = self._objects.setdefault(resource, {})
            if key in table:
                raise errors.already_exists(resource, key[1])
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = rfc3339()
            stored = clone(obj)
            table[key] = stored
            return self._commit("ADDED", resource, stored, None)

    def mutate(
        self,
        resource: str,
        namespace: str,
        name: str,
        fn: Callable[[Obj], Obj | None],
        uid: str | None = None,
    ) -> Obj | None:
        """Apply ``fn`` to a copy under the lock; commit if it returns an object that differs.

        Returns the stored object (None when absent, or when ``uid`` no longer matches).
        """
        with self.lock:
            table = self._objects.get(resource, {})
            current = table.get((namespace, name))
            if current is None or (uid is not None and current["metadata"]["uid"] != uid):
                return None
            updated = fn(clone(current))
            if updated is None or _same(updated, current):
                return clone(current)
            table[(namespace, name)] = updated
            return self._commit("MODIFIED", resource, updated, clone(current))

    def replace(self, resource: str, obj: Obj, expect_rv: str | None = None) -> Obj:
        meta = obj["metadata"]
        key = (meta.get("namespace", ""), meta["name"])
        with self.lock:
            table = self._objects.get(resource, {})
            current = table.get(key)
            if current is None:
                raise errors.not_found(resource, key[1])
            if expect_rv and expect_rv != current["metadata"]["resourceVersion"]:
                raise errors.conflict(resource, key[1])
            if _same(obj, current):
                return clone(current)
            table[key] = clone(obj)
            return self._commit("MODIFIED", resource, table[key], clone(current))

    def remove(
        self, resource: str, namespace: str, name: str, uid: str | None = None
    ) -> Obj | None:
        with self.lock:
            table = self._objects.get(resource, {})
            current = table.get((namespace, name))
            if current is None or (uid is not None and current["metadata"]["uid"] != uid):
                return None
            del table[(namespace, name)]
            return self._commit("DELETED", resource, current, clone(current))

    # -- watching ------------------------------------------------------------------------
    def subscribe(
        self, resources: Iterable[str], since_rv: int | None = None
    ) -> tuple[Subscription, builtins.list[Change]]:
        """Subscribe to future changes; with ``since_rv``, also return the retained backlog.

        Raises 410 Expired when changes after ``since_rv`` were already compacted away.
        """
        sub = Subscription(frozenset(resources))
        with self.lock:
            backlog: builtins.list[Change] = []
            if since_rv is not None:
                if since_rv < self._compacted_rv:
                    raise errors.expired(since_rv, self._compacted_rv + 1)
                backlog = [
                    c for c in self._history if c.rv > since_rv and c.resource in sub.resources
                ]
            self._subs.add(sub)
        return sub, backlog

    def unsubscribe(self, sub: Subscription) -> None:
        with self.lock:
            self._subs.discard(sub)
        sub.queue.put(None)

    def close_all_subscriptions(self) -> None:
        with self.lock:
            subs, self._subs = list(self._subs), set()
        for sub in subs:
            sub.queue.put(None)

    def compact(self, keep: int = 0) -> int:
        """Test hook: forget all but ``keep`` history entries, like etcd compaction."""
        with self.lock:
            while len(self._history) > keep:
                self._compacted_rv = self._history.popleft().rv
            if not self._history:
                self._compacted_rv = self._rv
            return self._compacted_rv


def _same(a: Obj, b: Obj) -> bool:
    def strip(obj: Obj) -> Obj:
        copy = dict(obj)
        copy["metadata"] = {
            k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"
        }
        return copy

    return strip(a) == strip(b)
