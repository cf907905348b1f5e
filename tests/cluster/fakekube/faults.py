"""Failure injection rules, matched against pods by node, name, namespace or labels.

Tests describe *what* goes wrong ("image pulls fail on node-b", "the runner on node-c crashes
with exit 3 after printing these lines", "drop the first follow stream after 5 lines"); the
scheduler, kubelet and log server consult these rules at the point where a real cluster
would fail. Rules live in one registry so a test can inspect and clear them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

Obj = dict[str, Any]


@dataclass(frozen=True)
class PodMatch:
    """Which pods a rule applies to; unset fields match anything."""

    node: str | None = None
    name: str | None = None
    name_prefix: str | None = None
    namespace: str | None = None
    labels: Mapping[str, str] | None = None

    def matches(self, pod: Obj) -> bool:
        meta = pod.get("metadata", {})
        name = meta.get("name", "")
        have = meta.get("labels") or {}
        return (
            (self.node is None or (pod.get("spec") or {}).get("nodeName") == self.node)
            and (self.name is None or name == self.name)
            and (self.name_prefix is None or name.startswith(self.name_prefix))
            and (self.namespace is None or meta.get("namespace") == self.namespace)
            and (self.labels is None or all(have.get(k) == v for k, v in self.labels.items()))
        )


@dataclass(frozen=True)
class ImagePullFault:
    match: PodMatch
    image: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class CrashFault:
    """Replace the container's process with one printing ``lines`` and exiting ``exit_code``."""

    match: PodMatch
    exit_code: int = 1
    lines: tuple[str, ...] = ()
    after_seconds: float = 0.0
    container: str | None = None


@dataclass(frozen=True)
class RejectFault:
    """Kubelet admission refusal: pod goes straight to Failed with this reason."""

    match: PodMatch
    reason: str = "OutOfcpu"
    message: str = "Pod was rejected: Node didn't have enough resource: cpu"


@dataclass(frozen=True)
class ScheduleFault:
    """The scheduler finds no node for matching pods (reason per node, e.g. Insufficient cpu)."""

    match: PodMatch
    reason: str = "Insufficient cpu"


@dataclass
class LogDropFault:
    """Cut follow streams of matching pods after ``after_lines`` lines, ``times`` times.

    ``mode`` "abort" closes the socket without the terminating chunk (the client sees a broken
    connection); "eof" ends the response cleanly, like a kubelet restart mid-stream.
    """

    match: PodMatch
    after_lines: int = 0
    times: int = 1
    mode: str = "abort"
    container: str | None = None
    fired: int = 0


@dataclass
class Faults:
    """The registry consulted by the scheduler, the kubelet and the log server."""

    image_pull: list[ImagePullFault] = field(default_factory=list)
    crash: list[CrashFault] = field(default_factory=list)
    reject: list[RejectFault] = field(default_factory=list)
    schedule: list[ScheduleFault] = field(default_factory=list)
    log_drops: list[LogDropFault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            for rules in (self.image_pull, self.crash, self.reject, self.schedule, self.log_drops):
                rules.clear()

    def image_pull_failure(self, pod: Obj, image: str) -> ImagePullFault | None:
        with self.lock:
            for rule in self.image_pull:
                if rule.match.matches(pod) and rule.image in (None, image):
                    return rule
        return None

    def crash_for(self, pod: Obj, container: str) -> CrashFault | None:
        with self.lock:
            for rule in self.crash:
                if rule.match.matches(pod) and rule.container in (None, container):
                    return rule
        return None

    def reject_for(self, pod: Obj) -> RejectFault | None:
        with self.lock:
            return next((r for r in self.reject if r.match.matches(pod)), None)

    def schedule_for(self, pod: Obj) -> ScheduleFault | None:
        with self.lock:
            return next((r for r in self.schedule if r.match.matches(pod)), None)

    def log_drop(self, pod: Obj, container: str, sent_lines: int) -> str | None:
        """Return the drop mode if this stream must be cut now (and count the firing)."""
        with self.lock:
            for rule in self.log_drops:
                if (
                    rule.fired < rule.times
                    and rule.match.matches(pod)
                    and rule.container in (None, container)
                    and sent_lines >= rule.after_lines
                ):
                    rule.fired += 1
                    return rule.mode
        return None
