"""Targets that change during a cluster run: new matching pods, and events to admit.

Runners trace the target containers known at start and, in their namespaces, containers that
start later (the runner cannot tell pod labels apart on the node). The client decides which of
those are targets: `Follower` watches the matching pods and tells `TargetGate` their container
ids as soon as the API reports them, and asks for a runner on a node that has none yet.
`TargetGate` admits an event when its container is a target, and holds events of a container
it does not know yet for a few seconds (the API often reports a container id after the
container's first events), then releases or drops them. A container whose runner was not told
its names (a pod started during the run) is named by the runner from the runtime's state,
which has no pod labels or owner: each k8s field the runner left empty is filled from the
API. Array rows (tables of an interval) cannot wait: a row of a container that is not a target
is left out at once. Window: a new container is traced from the runner's next rescan (at most
~1 s after it starts); on a node without a runner, from when the new runner pod attaches (a
pod start, a few seconds). The trap avoided: dropping a new container's first events because
they outran the API's status update.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from kubectl_gadget.cluster.kube import Kube, KubeError
from kubectl_gadget.cluster.targets import NodePlan, Selection, TargetContainer, pod_containers

_K8S_KEYS = ("k8s.namespace", "k8s.podName", "k8s.containerName", "k8s.podLabels",
             "k8s.owner.kind", "k8s.owner.name")


def _k8s_values(c: TargetContainer) -> dict[str, str]:
    return {"k8s.namespace": c.namespace, "k8s.podName": c.pod, "k8s.containerName": c.container,
            "k8s.podLabels": ",".join(f"{k}={v}" for k, v in c.labels),
            "k8s.owner.kind": c.owner_kind, "k8s.owner.name": c.owner_name}


def _fill(data: dict[str, Any], c: TargetContainer) -> None:
    """Each k8s field the runner left empty, from the API. A runner names a container it was
    not told about from the runtime's state (namespace, pod, container), which has no pod
    labels or owner: those still come from here."""
    for key, value in _k8s_values(c).items():
        if not data.get(key):
            data[key] = value


class TargetGate:
    def __init__(self, initial: Iterable[TargetContainer], hold_seconds: float = 10.0,
                 max_held: int = 50_000) -> None:
        self._lock = threading.Lock()
        self._targets: dict[str, TargetContainer] = {}
        self._held: OrderedDict[str, list[tuple[float, str, dict[str, Any]]]] = OrderedDict()
        self._held_count = 0
        self._told: set[str] = set()  # targets whose runner got all their names at its start
        self.hold_seconds, self.max_held = hold_seconds, max_held
        self.dropped = 0
        self.allow(initial, told=True)

    def allow(self, containers: Iterable[TargetContainer], told: bool = False) -> None:
        """Make containers targets; `told`: their runner starts with their metadata."""
        with self._lock:
            for c in containers:
                self._targets[c.container_id] = c
                if told:
                    self._told.add(c.container_id)

    def shows(self, container_id: str) -> bool:
        """Whether an event of this container the runner named is shown as it came: a target
        whose runner was told its names (pod labels and owner too)."""
        return container_id in self._told

    def admit(self, ds: str, data: dict[str, Any]) -> bool:
        """True: show it now. False: held (or dropped when it is not a container event)."""
        cid = str(data.get("runtime.containerId") or "")
        target = self._targets.get(cid)
        if target is not None:
            _fill(data, target)
            return True
        if not cid:
            self.dropped += 1
            return False
        if self._held_count >= self.max_held:
            self.dropped += 1
            return False
        self._held.setdefault(cid, []).append((time.monotonic(), ds, data))
        self._held_count += 1
        return False

    def admit_row(self, row: dict[str, Any]) -> bool:
        """An array row: kept when its container is a target, or when it names no container
        (the runner could not tell it, or the datasource has none). A row of another container
        (followed by the runner for its namespace) is left out: a table cannot be held until
        the API names a new target, so a new target's first interval may miss its rows."""
        cid = str(row.get("runtime.containerId") or "")
        if not cid:
            return True
        target = self._targets.get(cid)
        if target is None:
            self.dropped += 1
            return False
        _fill(row, target)
        return True

    def release(self) -> list[tuple[str, dict[str, Any]]]:
        """Held events whose container became a target (to show now); expired ones dropped."""
        if not self._held:
            return []
        out: list[tuple[str, dict[str, Any]]] = []
        now = time.monotonic()
        for cid in list(self._held):
            events = self._held[cid]
            target = self._targets.get(cid)
            if target is not None:
                for _t, ds, data in events:
                    _fill(data, target)
                    out.append((ds, data))
            elif now - events[0][0] < self.hold_seconds:
                continue
            else:
                self.dropped += len(events)
            self._held_count -= len(events)
            del self._held[cid]
        return out


class Follower:
    """Watches the selected pods for the whole run (one thread)."""

    def __init__(self, kube: Kube, sel: Selection, gate: TargetGate, eligible: Iterable[str],
                 have_runner: Iterable[str], new_runner: Callable[[NodePlan], None],
                 diag: Callable[[str], None]) -> None:
        self.kube, self.sel, self.gate, self.diag = kube, sel, gate, diag
        self.eligible = set(eligible)
        self.have_runner = set(have_runner)
        self.new_runner = new_runner
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="follow-pods", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        field_sel = f"metadata.name={self.sel.pod}" if self.sel.pod else ""
        while not self._stop.is_set():
            try:
                for _kind, pod in self.kube.watch_pods(self.sel.namespace,
                                                       self.sel.label_selector, field_sel,
                                                       timeout_seconds=30):
                    if self._stop.is_set():
                        return
                    self._pod(pod)
            except KubeError:
                self._stop.wait(1.0)

    def _pod(self, pod: dict[str, Any]) -> None:
        containers = pod_containers(pod, self.sel.containers)
        if not containers:
            return
        self.gate.allow(containers)
        node = pod.get("spec", {}).get("nodeName") or ""
        if not node or node in self.have_runner or node not in self.eligible:
            return
        if self.sel.nodes and node not in self.sel.nodes:
            return
        self.have_runner.add(node)
        self.gate.allow(containers, told=True)  # the new runner starts with their names
        meta = pod.get("metadata", {})
        self.diag(f"node {node}: new target pod {meta.get('namespace')}/{meta.get('name')}, "
                  "starting a runner there")
        self.new_runner(NodePlan(node, tuple(containers)))
