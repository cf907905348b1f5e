"""Builders for kubelet-owned objects: pod conditions, container statuses, events, nodes.

Kept apart from the kubelet's control flow so every status it writes has the complete shape
the official client's models require (``imageID``, ``restartCount``, ``ready`` ...) — a
missing required field would only show up as a deserialization error in product tests.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from typing import Any

from .runtime import image_repository, normalize_image
from .storage import Store
from .timeutil import rfc3339

Obj = dict[str, Any]
TARGET_ANNOTATION = "fakekube.test/target"


def container_id() -> str:
    return "containerd://" + secrets.token_hex(32)


def image_id(image: str) -> str:
    normalized = normalize_image(image)
    digest = hashlib.sha256(normalized.encode()).hexdigest()
    return f"{image_repository(normalized)}@sha256:{digest}"


def waiting(container: Obj, reason: str, message: str | None = None,
            restart_count: int = 0, last: Obj | None = None) -> Obj:
    state: Obj = {"reason": reason}
    if message:
        state["message"] = message
    return {"name": container["name"], "image": normalize_image(container["image"]),
            "imageID": "", "ready": False, "started": False, "restartCount": restart_count,
            "state": {"waiting": state}, "lastState": last or {}}


def running(container: Obj, cid: str, started: float, restart_count: int = 0,
            last: Obj | None = None) -> Obj:
    return {"name": container["name"], "image": normalize_image(container["image"]),
            "imageID": image_id(container["image"]), "containerID": cid, "ready": True,
            "started": True, "restartCount": restart_count,
            "state": {"running": {"startedAt": rfc3339(started)}}, "lastState": last or {}}


def terminated_state(cid: str | None, exit_code: int, started: float | None, finished: float,
                     reason: str | None = None, message: str | None = None) -> Obj:
    state: Obj = {"exitCode": exit_code,
                  "reason": reason or ("Completed" if exit_code == 0 else "Error"),
                  "startedAt": rfc3339(started) if started else None,
                  "finishedAt": rfc3339(finished)}
    if cid:
        state["containerID"] = cid
    if message:
        state["message"] = message
    return state


def terminated(container: Obj, cid: str | None, state: Obj, restart_count: int = 0,
               last: Obj | None = None) -> Obj:
    status = {"name": container["name"], "image": normalize_image(container["image"]),
              "imageID": image_id(container["image"]) if cid else "", "ready": False,
              "started": False, "restartCount": restart_count,
              "state": {"terminated": state}, "lastState": last or {}}
    if cid:
        status["containerID"] = cid
    return status


def set_condition(pod: Obj, ctype: str, value: bool, reason: str | None = None,
                  message: str | None = None) -> None:
    """Set a pod condition, keeping lastTransitionTime when the status does not change."""
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    text = "True" if value else "False"
    for cond in conditions:
        if cond["type"] == ctype:
            if cond["status"] != text:
                cond["lastTransitionTime"] = rfc3339()
            cond["status"] = text
            break
    else:
        cond = {"type": ctype, "status": text, "lastProbeTime": None,
                "lastTransitionTime": rfc3339()}
        conditions.append(cond)
    for key, val in (("reason", reason), ("message", message)):
        if val:
            cond[key] = val
        else:
            cond.pop(key, None)


def set_readiness(pod: Obj) -> None:
    """Derive Ready/ContainersReady from the container statuses."""
    statuses = pod["status"].get("containerStatuses") or []
    unready = [cs["name"] for cs in statuses if not cs.get("ready")]
    terminal = pod["status"].get("phase") in ("Succeeded", "Failed")
    if terminal:
        reason, message = "PodCompleted", None
    elif unready:
        reason = "ContainersNotReady"
        message = f"containers with unready status: [{' '.join(unready)}]"
    else:
        reason, message = None, None
    for ctype in ("Ready", "ContainersReady"):
        set_condition(pod, ctype, not unready and not terminal, reason, message)


def record_event(store: Store, pod: Obj, reason: str, message: str, type_: str = "Normal",
                 component: str = "kubelet", host: str | None = None,
                 container: str | None = None) -> None:
    meta = pod["metadata"]
    now = rfc3339()
    involved: Obj = {"kind": "Pod", "namespace": meta["namespace"], "name": meta["name"],
                     "uid": meta.get("uid", ""), "apiVersion": "v1",
                     "resourceVersion": meta.get("resourceVersion", "")}
    if container:
        involved["fieldPath"] = f"spec.containers{{{container}}}"
    source: Obj = {"component": component}
    if host:
        source["host"] = host
    event = {"apiVersion": "v1", "kind": "Event",
             "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}",
                          "namespace": meta["namespace"]},
             "involvedObject": involved, "reason": reason, "message": message,
             "source": source, "firstTimestamp": now, "lastTimestamp": now, "count": 1,
             "type": type_, "eventTime": None, "reportingComponent": component,
             "reportingInstance": host or ""}
    namespace = store.get("namespaces", "", meta["namespace"])
    # Like the real API: no new content in a missing or terminating namespace.
    if namespace is not None and namespace.get("status", {}).get("phase") != "Terminating":
        store.create("events", event)


def node_object(name: str, index: int, labels: dict[str, str] | None = None,
                taints: list[Obj] | None = None) -> Obj:
    now = rfc3339()
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "message": "kubelet is posting ready status", "lastHeartbeatTime": now,
             "lastTransitionTime": now}
    pressure = [{"type": t, "status": "False", "reason": f"KubeletHas{r}", "message": m,
                 "lastHeartbeatTime": now, "lastTransitionTime": now}
                for t, r, m in (
                    ("MemoryPressure", "SufficientMemory",
                     "kubelet has sufficient memory available"),
                    ("DiskPressure", "NoDiskPressure", "kubelet has no disk pressure"),
                    ("PIDPressure", "SufficientPID", "kubelet has sufficient PID available"))]
    resources = {"cpu": "8", "memory": "16318872Ki", "pods": "110", "ephemeral-storage": "100Gi"}
    return {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {
            "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
            "beta.kubernetes.io/arch": "amd64", **(labels or {})},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
        "spec": {"podCIDR": f"10.244.{index}.0/24", "podCIDRs": [f"10.244.{index}.0/24"],
                 "providerID": f"kind://docker/fakekube/{name}", "taints": list(taints or [])},
        "status": {
            "conditions": pressure + [ready],
            "addresses": [{"type": "InternalIP", "address": node_ip(index)},
                          {"type": "Hostname", "address": name}],
            "capacity": resources, "allocatable": resources,
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                         "kernelVersion": os.uname().release, "osImage": "Debian GNU/Linux 12",
                         "containerRuntimeVersion": "containerd://1.7.24",
                         "kubeletVersion": "v1.32.0", "kubeProxyVersion": "v1.32.0",
                         "machineID": hashlib.md5(name.encode()).hexdigest(),
                         "systemUUID": hashlib.md5(name.encode()).hexdigest(),
                         "bootID": hashlib.md5(f"{name}{time.time()}".encode()).hexdigest()},
        },
    }


def node_ip(index: int) -> str:
    return f"172.18.0.{index + 2}"
