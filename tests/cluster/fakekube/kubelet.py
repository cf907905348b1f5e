"""The process-kubelet: registers fake nodes, schedules pods, runs runner pods as processes.

One dispatcher thread follows pod and node changes from the store: unbound pods go through
the trivial scheduler (and are re-tried when nodes change), bound runner pods get a
:class:`~.podworker.PodWorker`, target pods (annotated, created by the test helpers) only
have their deletion handled through the test's runtime hook. ``lose_node`` simulates a dead
node: its processes are SIGKILLed, the node turns NotReady/unreachable and its pods NodeLost,
and nothing there is ever finalized again — exactly the leftovers the product must cope with.
``stop`` kills every process group it started; :meth:`leaked_process_groups` proves it.
"""

from __future__ import annotations

import os
import queue
import sys
import tempfile
import threading
import time
import traceback
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import podstatus as ps
from . import runc
from .context import ApiContext
from .podworker import PodWorker
from .runtime import ImageTable, group_alive
from .scheduler import schedule
from .timeutil import rfc3339

Obj = dict[str, Any]


class TargetRuntime(Protocol):
    """Hook that gives target pods real "containers" (see tests/workloads.py)."""

    def start(self, pod: Obj) -> Mapping[str, str]:
        """Start the pod's containers; return container name -> ``containerd://<id>``."""
        ...

    def stop(self, pod: Obj) -> None:
        ...


@dataclass
class NodeSpec:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[Obj] = field(default_factory=list)


@dataclass
class NodeState:
    name: str
    index: int
    lost: bool = False
    next_ip: int = 2

    @property
    def ip(self) -> str:
        return ps.node_ip(self.index)


class Kubelet:
    """Kubelets for all fake nodes plus the scheduler, in one dispatcher thread."""

    def __init__(self, ctx: ApiContext, nodes: Sequence[NodeSpec | str],
                 images: ImageTable | None = None, *, extra_env: Mapping[str, str] | None = None,
                 workdir: str | None = None, start_delay: float = 0.05,
                 pull_backoff: float = 0.3, restart_backoff: float = 0.2,
                 max_grace: float | None = None, python: str = sys.executable) -> None:
        self.ctx = ctx
        self.specs = [NodeSpec(n) if isinstance(n, str) else n for n in nodes]
        self.nodes = {spec.name: NodeState(spec.name, i + 1) for i, spec in enumerate(self.specs)}
        self.images = images or ImageTable()
        self.extra_env = dict(extra_env or {})
        self.workdir = workdir or tempfile.gettempdir()
        self.start_delay, self.pull_backoff = start_delay, pull_backoff
        self.restart_backoff, self.max_grace, self.python = restart_backoff, max_grace, python
        self.stopping = threading.Event()
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._workers: dict[str, PodWorker] = {}
        self._targets: dict[str, tuple[Obj, TargetRuntime | None]] = {}
        self._started_groups: list[int] = []
        self._started_cgroups: list[str] = []
        self._kick = threading.Event()
        self._thread: threading.Thread | None = None
        self._sub: Any = None

    # -- NodeAgent -----------------------------------------------------------------------
    def node_reachable(self, node: str) -> bool:
        state = self.nodes.get(node)
        return state is not None and not state.lost

    def manages_node(self, node: str) -> bool:
        return node in self.nodes

    # -- setup ---------------------------------------------------------------------------
    def start(self) -> Kubelet:
        store = self.ctx.store
        for spec in self.specs:
            if store.get("nodes", "", spec.name) is None:
                index = self.nodes[spec.name].index
                store.create("nodes", ps.node_object(spec.name, index, spec.labels, spec.taints))
        self._sub, _ = store.subscribe(["pods", "nodes"])
        self.ctx.agent = self
        for pod in store.list("pods")[0]:
            self._sub.queue.put(_Replay(pod))
        self._thread = threading.Thread(target=self._dispatch, name="fakekube-kubelet",
                                        daemon=True)
        self._thread.start()
        return self

    def base_env(self, pod: Obj) -> dict[str, str]:
        host, _, port = self.ctx.server_address.partition(":")
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/root",
               "HOSTNAME": pod["metadata"]["name"], "KUBERNETES_SERVICE_HOST": host,
               "KUBERNETES_SERVICE_PORT": port}
        env.update(self.extra_env)
        return env

    def allocate_ip(self, node: NodeState) -> str:
        with self._lock:
            node.next_ip += 1
            return f"10.244.{node.index}.{node.next_ip}"

    def kick(self) -> None:
        """Re-run scheduling now (after faults or nodes changed)."""
        self._kick.set()

    # -- dispatch ------------------------------------------------------------------------
    def _dispatch(self) -> None:
        last_retry = 0.0
        while not self.stopping.is_set():
            try:
                change = self._sub.queue.get(timeout=0.1)
            except queue.Empty:
                change = False
            if change is None:
                return
            try:
                if change and change.resource == "pods":
                    self._on_pod(change.type, change.obj)
                if change and change.resource == "nodes" or self._kick.is_set() or (
                        time.monotonic() - last_retry > 0.5):
                    self._kick.clear()
                    last_retry = time.monotonic()
                    self._retry_unscheduled()
            except Exception:
                self.errors.append(traceback.format_exc())

    def _on_pod(self, type_: str, pod: Obj) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        uid, node = meta["uid"], spec.get("nodeName")
        if (meta.get("annotations") or {}).get(ps.TARGET_ANNOTATION):
            if type_ == "DELETED" or (meta.get("deletionTimestamp") and
                                      self.node_reachable(node or "")):
                self._stop_target(pod)
            return
        if type_ == "DELETED":
            worker = self._workers.get(uid)
            if worker is not None:
                worker.wake.set()
            return
        if not node:
            self._try_schedule(pod)
            return
        state = self.nodes.get(node)
        if state is None:
            return
        worker = self._workers.get(uid)
        if worker is None and not state.lost and not self.stopping.is_set():
            worker = self._workers[uid] = PodWorker(self, pod, state)
            worker.thread.start()
        elif worker is not None:
            worker.wake.set()

    def _retry_unscheduled(self) -> None:
        for pod in self.ctx.store.list("pods")[0]:
            if not (pod.get("spec") or {}).get("nodeName") and not pod["metadata"].get(
                    "deletionTimestamp"):
                self._try_schedule(pod)

    def _try_schedule(self, pod: Obj) -> None:
        """Bind or mark Unschedulable, deciding on the *stored* pod under the store lock.

        The dispatcher may hold a stale snapshot (its event was queued before a retry already
        handled the pod); deciding and choosing the event inside ``mutate`` keeps both the
        binding and the Scheduled/FailedScheduling events exactly-once.
        """
        store = self.ctx.store
        if pod["spec"].get("schedulerName", "default-scheduler") != "default-scheduler":
            return
        meta = pod["metadata"]
        outcome: dict[str, str] = {}

        def bind(obj: Obj) -> Obj | None:
            if obj["spec"].get("nodeName") or obj["metadata"].get("deletionTimestamp"):
                return None
            nodes = store.list("nodes")[0]
            load = Counter(p["spec"].get("nodeName") for p in store.list("pods")[0])
            forced = self.ctx.faults.schedule_for(obj)
            chosen, message = schedule(obj, nodes, load, forced.reason if forced else None)
            previous = next((c for c in obj.get("status", {}).get("conditions") or []
                             if c["type"] == "PodScheduled"), None)
            if chosen:
                obj["spec"]["nodeName"] = chosen
                ps.set_condition(obj, "PodScheduled", True)
                outcome["Scheduled"] = (f"Successfully assigned {meta['namespace']}/"
                                        f"{meta['name']} to {chosen}")
            else:
                if previous is None or previous.get("message") != message:
                    outcome["FailedScheduling"] = message
                ps.set_condition(obj, "PodScheduled", False, "Unschedulable", message)
            return obj

        store.mutate("pods", meta["namespace"], meta["name"], bind, meta["uid"])
        for reason, message in outcome.items():
            ps.record_event(store, pod, reason, message,
                            "Normal" if reason == "Scheduled" else "Warning",
                            component="default-scheduler")

    # -- target pods ---------------------------------------------------------------------
    def start_target(self, pod: Obj, runtime: TargetRuntime | None) -> dict[str, str]:
        names = [c["name"] for c in pod["spec"]["containers"]]
        ids = dict(runtime.start(pod)) if runtime is not None else {}
        with self._lock:
            self._targets[pod["metadata"]["uid"]] = (pod, runtime)
        return {name: ids.get(name) or ps.container_id() for name in names}

    def _stop_target(self, pod: Obj) -> None:
        meta = pod["metadata"]
        with self._lock:
            entry = self._targets.pop(meta["uid"], None)
        if entry is not None and entry[1] is not None:
            entry[1].stop(entry[0])
        self.ctx.logs.forget(meta["uid"])
        self.ctx.store.remove("pods", meta["namespace"], meta["name"], meta["uid"])

    # -- failures ------------------------------------------------------------------------
    def lose_node(self, name: str, pod_phase: str = "Unknown") -> None:
        """The node dies: processes killed, node NotReady + unreachable, pods NodeLost."""
        state = self.nodes[name]
        store = self.ctx.store
        with store.lock:
            state.lost = True
        for worker in [w for w in list(self._workers.values()) if w.node is state]:
            for run in worker.runs:
                if run.process is not None:
                    run.process.kill()
        now = rfc3339()

        def node_down(node: Obj) -> Obj:
            for cond in node["status"]["conditions"]:
                cond.update(status="Unknown", reason="NodeStatusUnknown",
                            message="Kubelet stopped posting node status.",
                            lastTransitionTime=now)
            taints = node["spec"].setdefault("taints", [])
            taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule",
                           "timeAdded": now})
            taints.append({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
                           "timeAdded": now})
            return node

        store.mutate("nodes", "", name, node_down)

        def pod_lost(pod: Obj) -> Obj:
            status = pod.setdefault("status", {})
            if status.get("phase") in ("Succeeded", "Failed"):
                return pod
            status["phase"], status["reason"] = pod_phase, "NodeLost"
            status["message"] = f"Node {name} which was running pod {pod['metadata']['name']} " \
                                "is unresponsive"
            ps.set_condition(pod, "Ready", False)
            return pod

        for pod in store.list("pods")[0]:
            if pod["spec"].get("nodeName") == name:
                meta = pod["metadata"]
                store.mutate("pods", meta["namespace"], meta["name"], pod_lost, meta["uid"])

    # -- teardown ------------------------------------------------------------------------
    def register_group(self, pgid: int, cgroup: str | None = None) -> None:
        """A container started: its process group, and for a runc container its cgroup
        (with hostPID its processes need not stay in runc's process group)."""
        with self._lock:
            self._started_groups.append(pgid)
            if cgroup is not None:
                self._started_cgroups.append(cgroup)

    def process_groups(self) -> list[int]:
        """Every process group (= container) this kubelet ever started."""
        with self._lock:
            return list(self._started_groups)

    def leaked_process_groups(self) -> list[int | str]:
        """Process groups, and cgroups of runc containers, that still hold a live process."""
        with self._lock:
            cgroups = list(self._started_cgroups)
        leaked: list[int | str] = [pgid for pgid in self.process_groups() if group_alive(pgid)]
        return leaked + [path for path in cgroups if runc.cgroup_alive(path)]

    def stop(self) -> None:
        self.stopping.set()
        workers = list(self._workers.values())
        for worker in workers:
            for run in worker.runs:
                if run.process is not None:
                    run.process.kill()
            worker.wake.set()
        for worker in workers:
            worker.thread.join(timeout=10)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._sub is not None:
            self.ctx.store.unsubscribe(self._sub)
        with self._lock:
            targets, self._targets = list(self._targets.values()), {}
        for pod, runtime in targets:
            if runtime is not None:
                runtime.stop(pod)
        if self.ctx.agent is self:
            self.ctx.agent = None


@dataclass(frozen=True)
class _Replay:
    """A pod that existed before the kubelet started, fed through the dispatcher once."""

    obj: Obj
    type: str = "ADDED"
    resource: str = "pods"
