"""Runner pods as nodes of a session: create, watch, follow logs, classify, delete.

`PodNode` implements the same node interface as the local runner (start / chunks / stop /
wait), so the merge -> operators -> output path does not know it talks to a cluster. One
`SessionWatch` per session watches all its pods with a single API watch (not one poll loop per
node), and reports "waiting on N nodes: reason" on stderr while pods start. A dropped log
stream is reopened with backoff; lines already delivered are skipped by count and a partial
last line is held back until its newline arrives, so a reconnect neither loses nor duplicates
records. Failures are classified per node (admission denied, unschedulable, image pull, kernel
not supported, gadget failed, deadline exceeded, node lost) and never stop the other nodes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from kubectl_gadget.cluster.kube import Forbidden, Kube, KubeError
from kubectl_gadget.cluster.runner_pod import SESSION_LABEL
from kubectl_gadget.errors import crash_signal

Diag = Callable[[str], None]
_RUNNER_CODES = {3: "gadget invalid", 4: "kernel not supported", 5: "verifier rejected",
                 6: "permission denied", 7: "image refused"}
_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")
IMAGE_CODE = 7  # the runner's `image` exit code: every node's pull failing exits with it
SIGTERM_CODE = 143
# A dropped log stream is reopened with backoff; the budget is per outage: a follow that
# delivered lines (or stayed open a while) starts the count again.
RECONNECTS_PER_OUTAGE = 6
MAX_BACKOFF = 4.0
STREAM_UP = 5.0  # seconds a follow must stay open to count as a working stream


class SessionWatch:
    """Keeps the latest state of every pod of one session, from a single watch."""

    def __init__(self, kube: Kube, namespace: str, session: str, diag: Diag) -> None:
        self.kube, self.namespace, self.diag = kube, namespace, diag
        self.selector = f"{SESSION_LABEL}={session}"
        self.pods: dict[str, dict[str, Any]] = {}
        self.final: dict[str, dict[str, Any]] = {}  # last state of deleted pods
        self.pull_errors: dict[str, str] = {}  # pod -> last ErrImagePull message
        self.gone: set[str] = set()
        self.cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="session-watch", daemon=True)
        self._reporter = threading.Thread(target=self._report, name="progress", daemon=True)
        self.waiting: dict[str, str] = {}  # node -> why it is not streaming yet
        self.status: Callable[[str], None] | None = None  # a terminal's status line, if any

    def start(self) -> None:
        self._thread.start()
        self._reporter.start()

    def _run(self) -> None:
        version = None
        while not self._stop.is_set():
            try:
                for kind, pod in self.kube.watch_pods(self.namespace, self.selector,
                                                      timeout_seconds=30,
                                                      resource_version=version):
                    version = pod.get("metadata", {}).get("resourceVersion") or version
                    self._update(kind, pod)
                    if self._stop.is_set():
                        return
            except KubeError:
                version = None  # too old or dropped: relist from now
                time.sleep(0.5)

    def _update(self, kind: str, pod: dict[str, Any]) -> None:
        name = pod.get("metadata", {}).get("name", "")
        with self.cond:
            if kind == "DELETED":
                self.pods.pop(name, None)
                self.final[name] = pod  # its exit status, for the summary
                self.gone.add(name)
            elif kind in ("ADDED", "MODIFIED"):
                self.pods[name] = pod
                self._remember_pull_error(name, pod)
            self.cond.notify_all()

    def _remember_pull_error(self, name: str, pod: dict[str, Any]) -> None:
        # ErrImagePull carries the cause; the ImagePullBackOff that follows only says "back-off".
        for cs in pod.get("status", {}).get("containerStatuses") or []:
            waiting = cs.get("state", {}).get("waiting") or {}
            if waiting.get("reason") == "ErrImagePull" and waiting.get("message"):
                self.pull_errors[name] = str(waiting["message"])

    def wait_for(self, name: str, predicate: Callable[[dict[str, Any] | None], bool],
                 timeout: float) -> dict[str, Any] | None:
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                pod = self.pods.get(name)
                if predicate(pod) or (name in self.gone and pod is None):
                    return pod
                left = end - time.monotonic()
                if left <= 0:
                    return pod
                self.cond.wait(min(left, 1.0))

    def _report(self) -> None:
        """Every 2 s while nodes are not streaming: the line when it changed, else every 10 s."""
        last, shown_at = "", 0.0
        while not self._stop.wait(1.0 if self.status else 2.0):
            waiting = dict(self.waiting)
            line = waiting_line(waiting) if waiting else ""
            if self.status is not None:
                self.status(line)  # updated in place; gone when every node streams
                continue
            if line and (line != last or time.monotonic() - shown_at >= 10.0):
                self.diag(line)
                shown_at = time.monotonic()
            last = line

    def stop(self) -> None:
        self._stop.set()
        if self._reporter.is_alive():  # it may be drawing the status line or a waiting line
            self._reporter.join(5.0)
        if self.status is not None:
            self.status("")


def waiting_line(waiting: dict[str, str], names_per_reason: int = 4) -> str:
    """`waiting on 3 node(s): unschedulable (node-a, node-b); pulling image (node-c)`."""
    by_reason: dict[str, list[str]] = {}
    for node, why in sorted(waiting.items()):
        by_reason.setdefault(why, []).append(node)
    parts = []
    for why, nodes in sorted(by_reason.items()):
        more = len(nodes) - names_per_reason
        names = ", ".join(nodes[:names_per_reason]) + (f", +{more} more" if more > 0 else "")
        parts.append(f"{why} ({names})")
    return f"waiting on {len(waiting)} node(s): " + "; ".join(parts)


def _terminated(pod: dict[str, Any] | None) -> dict[str, Any] | None:
    for status in (pod or {}).get("status", {}).get("containerStatuses") or []:
        term = status.get("state", {}).get("terminated")
        if term:
            return dict(term)
    return None


def pending_reason(pod: dict[str, Any] | None) -> tuple[str, bool]:
    """(why the pod is not running yet, whether that is final)."""
    if pod is None:
        return "pod not created yet", False
    status = pod.get("status", {})
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            return f"unschedulable: {cond.get('message') or cond.get('reason')}", False
    for cs in status.get("containerStatuses") or []:
        waiting = cs.get("state", {}).get("waiting") or {}
        reason = waiting.get("reason", "")
        if reason in _PULL_REASONS:
            return f"image pull failed: {waiting.get('message') or reason}", True
        if reason:
            return reason, False
    return f"pod {status.get('phase', 'Pending')}", False


def classify_end(pod: dict[str, Any] | None, code: int | None) -> str:
    """One line naming how a runner pod ended."""
    status = (pod or {}).get("status", {})
    if status.get("reason") == "DeadlineExceeded":
        return "deadline exceeded"
    if status.get("reason") == "NodeLost" or status.get("phase") == "Unknown":
        return "node lost"
    term = _terminated(pod)
    if term and term.get("reason") == "OOMKilled":
        return "runner killed: out of memory"
    if code in _RUNNER_CODES:
        return _RUNNER_CODES[code]
    crash = crash_signal(code) if code is not None else None
    if crash is not None:
        return f"runner crashed: {crash}"
    return "ok" if code == 0 else f"gadget failed (exit code {code})"


class PodNode:
    """One runner pod, seen as a node of the merged stream."""

    def __init__(self, kube: Kube, watch: SessionWatch, manifest: dict[str, Any],
                 node: str, startup_timeout: float) -> None:
        self.kube, self.watch, self.manifest = kube, watch, manifest
        self.name = node
        self.pod = str(manifest["metadata"]["name"])
        self.namespace = str(manifest["metadata"]["namespace"])
        self.startup_timeout = startup_timeout
        self.failure = ""  # set when the pod never ran or could not be followed
        self.failure_code = 1
        self.ended_before_start = False  # stopped (Ctrl-C) before its runner was ready
        self.created = False
        self.stopping = False
        self.stream_done = False
        self.lines_seen = 0

    def start(self) -> None:
        self.watch.waiting[self.name] = "creating runner pod"
        try:
            self.kube.create_pod(self.namespace, self.manifest)
            self.created = True
        except Forbidden as exc:
            self._fail(f"admission denied: {exc}")
        except KubeError as exc:
            self._fail(f"runner pod not created: {exc}")

    def _fail(self, why: str, code: int = 1) -> None:
        self.failure, self.failure_code = why, code
        self.watch.waiting.pop(self.name, None)
        if not self.stopping:  # now, not only in the summary: a dead node is not a quiet one
            self.watch.diag(f"node {self.name}: {why}")

    def _wait_started(self) -> bool:
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline and not self.stopping:
            pod = self.watch.wait_for(
                self.pod, lambda p: _started(p) or pending_reason(p)[1], 1.0)
            if _started(pod):
                self.watch.waiting.pop(self.name, None)
                return True
            reason, final = pending_reason(pod)
            self.watch.waiting[self.name] = reason
            cause = self.watch.pull_errors.get(self.pod)
            if final and reason.startswith("image pull failed") and cause:
                reason = f"image pull failed: {cause}"
            if final:
                self._fail(reason, IMAGE_CODE if reason.startswith("image pull") else 1)
                return False
        if self.stopping:
            self.failure, self.failure_code = "stopped before it started", 0
            self.ended_before_start = True
            self.watch.waiting.pop(self.name, None)
            return False
        reason, _final = pending_reason(self.watch.pods.get(self.pod))
        self._fail(f"not started after {self.startup_timeout:.0f}s: {reason}")
        return False

    def chunks(self) -> Iterator[bytes]:
        try:
            yield from self._chunks()
        finally:
            self.stream_done = True
            if self.created and not self.failure and not self.stopping:
                self._report_early_end()

    def _chunks(self) -> Iterator[bytes]:
        if not self.created or not self._wait_started():
            return
        failures, delay = 0, 0.5
        while True:
            seen, opened = self.lines_seen, time.monotonic()
            try:
                yield from self._follow_once()
            except KubeError as exc:
                last_error = str(exc)
            else:
                last_error = ""
            pod = self.watch.pods.get(self.pod)
            if _terminated(pod) or pod is None or _node_lost(pod) or (
                    self.stopping and not last_error):
                return
            if self.lines_seen > seen or time.monotonic() - opened > STREAM_UP:
                failures, delay = 0, 0.5  # the stream worked: this is a new outage
            failures += 1
            if failures > RECONNECTS_PER_OUTAGE:
                self._fail(f"log stream lost: {last_error or 'closed repeatedly'} "
                           f"({RECONNECTS_PER_OUTAGE} reconnects failed; no longer "
                           "following this node)")
                return
            time.sleep(delay)
            delay = min(delay * 2, MAX_BACKOFF)

    def _report_early_end(self) -> None:
        """The stream ended while nobody asked the runner to stop: say how, at once."""
        pod = self.watch.wait_for(
            self.pod, lambda p: _terminated(p) is not None or _node_lost(p), 5.0)
        term = _terminated(pod)
        if _node_lost(pod):
            self.watch.diag(f"node {self.name}: node lost; the other nodes go on")
        elif term is not None and int(term.get("exitCode", 1)) != 0:
            how = classify_end(pod, int(term.get("exitCode", 1)))
            self.watch.diag(f"node {self.name}: runner ended: {how}; the other nodes go on")

    def _follow_once(self) -> Iterator[bytes]:
        skip, held = self.lines_seen, b""
        for chunk in self.kube.follow_log(self.namespace, self.pod):
            data = held + chunk
            while skip and data:
                cut = data.find(b"\n")
                if cut < 0:
                    break
                data, skip = data[cut + 1:], skip - 1
            if skip:
                held = data
                continue
            cut = data.rfind(b"\n")
            held = data[cut + 1:]
            if cut >= 0:
                out = data[:cut + 1]
                self.lines_seen += out.count(b"\n")
                yield out
        if held and skip == 0 and _terminated(self.watch.pods.get(self.pod)):
            self.lines_seen += 1
            yield held + b"\n"

    def stop(self, graceful: bool = True) -> None:
        self.stopping = True
        if not self.created or (graceful and self.stream_done):
            return  # the runner ended by itself: wait() reads its status, then deletes
        try:
            grace = None if graceful else 0
            self.kube.delete_pod(self.namespace, self.pod, grace)
        except KubeError:
            pass

    def wait(self, timeout: float = 30.0) -> tuple[int, str]:
        """Exit code and how the pod ended; deletes the pod and waits until it is gone."""
        self.watch.waiting.pop(self.name, None)
        if not self.created:
            return self.failure_code, self.failure
        pod = self.watch.pods.get(self.pod)
        if not (self.failure or _node_lost(pod)):  # else it will not end by itself: delete
            pod = self.watch.wait_for(self.pod, lambda p: _terminated(p) is not None, timeout)
        pod = pod or self.watch.final.get(self.pod)
        term = _terminated(pod)
        code = int(term.get("exitCode", 1)) if term else 1
        if self.failure:
            how = self.failure
        elif self.stopping and code == SIGTERM_CODE:
            # Deleted (Ctrl-C) while its runner was still starting, before it handled SIGTERM.
            how, self.failure_code, self.ended_before_start = "stopped before it started", 0, True
            self.failure = how
        elif term is None and not _node_lost(pod):
            how = "runner pod ended without an exit status (deleted or lost)"
        else:
            how = classify_end(pod, code)
        try:
            self.kube.delete_pod(self.namespace, self.pod, 0)
        except KubeError as exc:
            how += f"; deleting the pod failed: {exc}"
        self.watch.wait_for(self.pod, lambda p: p is None, 15.0)
        if self.failure:
            return self.failure_code, how
        return (0 if how == "ok" else code or 1), how


def _node_lost(pod: dict[str, Any] | None) -> bool:
    status = (pod or {}).get("status", {})
    return status.get("reason") == "NodeLost" or status.get("phase") == "Unknown"


def _started(pod: dict[str, Any] | None) -> bool:
    if pod is None:
        return False
    phase = pod.get("status", {}).get("phase")
    return phase in ("Running", "Succeeded", "Failed") or _terminated(pod) is not None
