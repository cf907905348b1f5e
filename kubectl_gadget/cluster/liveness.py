"""A session's liveness signal: the client renews an annotation on its runner pods.

While a run goes on, the client writes the time into `kubectl-gadget.io/renewed-at` on each of
its runner pods every RENEW_INTERVAL seconds (the manifest carries the creation time, so a pod
is alive from its first second). `gc` deletes only pods whose session stopped renewing for
STALE_AFTER seconds, whose deadline passed or whose runner ended, and `list` shows how long
ago each was renewed.
The trap avoided: a cleanup that goes by labels alone and deletes a session that is running.
"""

from __future__ import annotations

import calendar
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from kubectl_gadget.cluster.runner_pod import CREATED_AT, DEADLINE, RENEWED_AT, rfc3339

if TYPE_CHECKING:  # `gc`/`list` import this module; the Kubernetes client loads when used
    from kubectl_gadget.cluster.kube import Kube

RENEW_INTERVAL = 10.0
STALE_AFTER = 60.0  # six missed renewals: the client is gone (or cut off from the API)


class RenewedPod(Protocol):
    namespace: str
    pod: str
    created: bool
    stream_done: bool


class Renewer:
    """Renews the liveness annotation of a session's pods from one background thread."""

    def __init__(self, kube: Kube, pods: Callable[[], Iterable[RenewedPod]],
                 diag: Callable[[str], None], interval: float = RENEW_INTERVAL) -> None:
        self.kube, self.pods, self.diag, self.interval = kube, pods, diag, interval
        self._warned = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="renew", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        from kubectl_gadget.cluster.kube import Forbidden, KubeError

        while not self._stop.wait(self.interval):
            stamp = {RENEWED_AT: rfc3339(time.time())}
            for pod in list(self.pods()):
                if not pod.created or pod.stream_done or self._stop.is_set():
                    continue
                try:
                    self.kube.annotate_pod(pod.namespace, pod.pod, stamp)
                except Forbidden as exc:
                    if not self._warned:
                        self._warned = True
                        self.diag(f"warning: cannot renew the session's pods ({exc}); "
                                  "`gc` will take this session for an orphan after "
                                  f"{STALE_AFTER:.0f}s (RBAC: pods patch)")
                except KubeError:
                    pass  # the API is away for now; the next round tries again


def _parse(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ")))
    except ValueError:
        return None


@dataclass(frozen=True)
class Liveness:
    created: float | None
    renewed: float | None
    deadline: float | None
    orphaned: bool
    why: str  # why it is orphaned, or how long ago it was renewed


def liveness(pod: dict[str, Any], now: float | None = None) -> Liveness:
    """Whether a runner pod is left over: its runner ended, its deadline passed, or its
    session stopped renewing it (or never did)."""
    now = time.time() if now is None else now
    notes = pod.get("metadata", {}).get("annotations") or {}
    created, deadline = _parse(notes.get(CREATED_AT)), _parse(notes.get(DEADLINE))
    renewed = _parse(notes.get(RENEWED_AT))
    if pod.get("status", {}).get("phase") in ("Succeeded", "Failed"):
        return Liveness(created, renewed, deadline, True, "runner ended")
    if deadline is not None and now >= deadline:
        return Liveness(created, renewed, deadline, True, "deadline passed")
    if renewed is None:
        return Liveness(created, renewed, deadline, True, "never renewed")
    if now - renewed > STALE_AFTER:
        return Liveness(created, renewed, deadline, True,
                        f"not renewed for {now - renewed:.0f}s")
    return Liveness(created, renewed, deadline, False, f"renewed {now - renewed:.0f}s ago")


def age(seconds: float | None) -> str:
    """`42s`, `5m`, `3h`, `2d`, or `?`: the style of kubectl's AGE column."""
    if seconds is None:
        return "?"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
