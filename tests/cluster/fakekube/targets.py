"""Ordinary "target" workload pods, created the way a ReplicaSet's pods would look.

Targets are what the product resolves with label selectors; they are not runners, so by
default no process runs for them: their containers get ``containerd://<64 hex>`` ids and a
Running status at once. A test may pass a runtime hook (``start(pod) -> {container: id}``,
``stop(pod)``, or a plain callable ``hook("start"|"stop", pod)``) to back them with real
processes (tests/workloads.py), or ``run_as_process=True`` to let the kubelet run the
containers' commands like any other pod.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from . import podstatus as ps
from . import validation
from .kubelet import Kubelet, TargetRuntime
from .timeutil import rfc3339

Obj = dict[str, Any]
Owner = Obj | tuple[str, str] | Sequence[Obj]
HookLike = TargetRuntime | Callable[[str, Obj], Mapping[str, str] | None]


class _CallableRuntime:
    def __init__(self, hook: Callable[[str, Obj], Mapping[str, str] | None]) -> None:
        self._hook = hook

    def start(self, pod: Obj) -> Mapping[str, str]:
        return self._hook("start", pod) or {}

    def stop(self, pod: Obj) -> None:
        self._hook("stop", pod)


def as_runtime(hook: HookLike | None) -> TargetRuntime | None:
    if hook is None:
        return None
    if hasattr(hook, "start") and hasattr(hook, "stop"):
        return cast(TargetRuntime, hook)
    return _CallableRuntime(cast(Callable[[str, Obj], Mapping[str, str] | None], hook))


def owner_references(owner: Owner | None) -> list[Obj]:
    if owner is None:
        return []
    if isinstance(owner, tuple) and len(owner) == 2 and all(isinstance(x, str) for x in owner):
        kind, name = owner
        api = "v1" if kind in ("ReplicationController", "Node") else (
            "batch/v1" if kind in ("Job", "CronJob") else "apps/v1")
        return [{"apiVersion": api, "kind": kind, "name": name, "uid": str(uuid.uuid4()),
                 "controller": True, "blockOwnerDeletion": True}]
    if isinstance(owner, Mapping):
        return [dict(owner)]
    return [dict(cast(Obj, o)) for o in owner]


def build_pod(name: str, namespace: str, node: str, *, labels: Mapping[str, str] | None,
              containers: Sequence[str | Obj], image: str, owner: Owner | None,
              annotations: Mapping[str, str] | None, target: bool) -> Obj:
    specs = [{"name": c, "image": image} if isinstance(c, str) else dict(c) for c in containers]
    for spec in specs:
        spec.setdefault("image", image)
    notes = dict(annotations or {})
    if target:
        notes[ps.TARGET_ANNOTATION] = "true"
    pod: Obj = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {}),
                     "annotations": notes, "ownerReferences": owner_references(owner)},
        "spec": {"nodeName": node, "containers": specs},
    }
    validation.default_pod(pod)
    validation.validate_pod(pod)
    return pod


def start_target(kubelet: Kubelet, pod: Obj, runtime: TargetRuntime | None,
                 pod_ip: str | None = None) -> Obj:
    """Run the hook, then mark the stored pod Running with container ids (and its pod IP:
    ``pod_ip``, the node's address for a hostNetwork pod, else the node's next one)."""
    meta = pod["metadata"]
    node = kubelet.nodes[pod["spec"]["nodeName"]]
    ids = kubelet.start_target(pod, runtime)
    if pod["spec"].get("hostNetwork"):
        pod_ip = node.ip
    pod_ip, now = pod_ip or kubelet.allocate_ip(node), time.time()
    for container in pod["spec"]["containers"]:
        kubelet.ctx.logs.open(meta["uid"], container["name"])

    def run(obj: Obj) -> Obj:
        status = obj["status"]
        status.update(phase="Running", hostIP=node.ip, hostIPs=[{"ip": node.ip}], podIP=pod_ip,
                      podIPs=[{"ip": pod_ip}], startTime=rfc3339(now))
        status["containerStatuses"] = [ps.running(c, ids[c["name"]], now)
                                       for c in obj["spec"]["containers"]]
        for ctype in ("PodReadyToStartContainers", "Initialized", "PodScheduled"):
            ps.set_condition(obj, ctype, True)
        ps.set_readiness(obj)
        return obj

    updated = kubelet.ctx.store.mutate("pods", meta["namespace"], meta["name"], run, meta["uid"])
    assert updated is not None
    return updated
