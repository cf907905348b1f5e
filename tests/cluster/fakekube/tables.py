"""Server-side printing: ``meta.k8s.io/v1 Table`` responses for ``kubectl get``.

kubectl asks for ``Accept: application/json;as=Table;v=v1;g=meta.k8s.io`` and prints the
columns the server chose. Without this, ``kubectl get nodes`` would only show NAME and AGE,
and tests reading its output would be testing a degraded path real clusters never take.
"""

from __future__ import annotations

from typing import Any

from .timeutil import age

Obj = dict[str, Any]


def wants_table(accept: str | None) -> bool:
    return accept is not None and "as=Table" in accept and "g=meta.k8s.io" in accept


def _column(name: str, type_: str = "string", priority: int = 0, fmt: str = "") -> Obj:
    return {"name": name, "type": type_, "format": fmt, "description": name, "priority": priority}


def pod_status_text(pod: Obj) -> str:
    """The STATUS column kubectl shows (reason, container state, Terminating...)."""
    status = pod.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for cs in status.get("containerStatuses") or []:
        state = cs.get("state") or {}
        if state.get("waiting", {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif state.get("terminated"):
            term = state["terminated"]
            reason = term.get("reason") or (
                f"Signal:{term['signal']}" if term.get("signal") else f"ExitCode:{term['exitCode']}"
            )
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Unknown" if status.get("reason") == "NodeLost" else "Terminating"
    return reason


def _pod_row(pod: Obj) -> list[Any]:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    total = len(pod.get("spec", {}).get("containers") or [])
    ready = sum(1 for cs in statuses if cs.get("ready"))
    restarts = sum(cs.get("restartCount", 0) for cs in statuses)
    return [
        pod["metadata"]["name"],
        f"{ready}/{total}",
        pod_status_text(pod),
        restarts,
        age(pod["metadata"].get("creationTimestamp")),
        pod.get("status", {}).get("podIP") or "<none>",
        pod.get("spec", {}).get("nodeName") or "<none>",
        "<none>",
        "<none>",
    ]


def _node_row(node: Obj) -> list[Any]:
    conditions = {c["type"]: c["status"] for c in node.get("status", {}).get("conditions") or []}
    ready = conditions.get("Ready")
    status = "Ready" if ready == "True" else ("NotReady" if ready else "Unknown")
    if node.get("spec", {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    info = node.get("status", {}).get("nodeInfo") or {}
    addresses = {a["type"]: a["address"] for a in node.get("status", {}).get("addresses") or []}
    return [
        node["metadata"]["name"],
        status,
        "<none>",
        age(node["metadata"].get("creationTimestamp")),
        info.get("kubeletVersion", ""),
        addresses.get("InternalIP", "<none>"),
        "<none>",
        info.get("osImage", ""),
        info.get("kernelVersion", ""),
        info.get("containerRuntimeVersion", ""),
    ]


def _service_row(svc: Obj) -> list[Any]:
    spec = svc.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    selector = ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
    return [svc["metadata"]["name"], spec.get("type", ""), spec.get("clusterIP") or "<none>",
            spec.get("externalName") or "<none>", ports or "<none>",
            age(svc["metadata"].get("creationTimestamp")), selector or "<none>"]


_COLUMNS: dict[str, list[Obj]] = {
    "pods": [
        _column("Name", fmt="name"), _column("Ready"), _column("Status"),
        _column("Restarts", "string"), _column("Age"), _column("IP", priority=1),
        _column("Node", priority=1), _column("Nominated Node", priority=1),
        _column("Readiness Gates", priority=1),
    ],
    "nodes": [
        _column("Name", fmt="name"), _column("Status"), _column("Roles"), _column("Age"),
        _column("Version"), _column("Internal-IP", priority=1),
        _column("External-IP", priority=1), _column("OS-Image", priority=1),
        _column("Kernel-Version", priority=1), _column("Container-Runtime", priority=1),
    ],
    "namespaces": [_column("Name", fmt="name"), _column("Status"), _column("Age")],
    "configmaps": [_column("Name", fmt="name"), _column("Data", "integer"), _column("Age")],
    "services": [_column("Name", fmt="name"), _column("Type"), _column("Cluster-IP"),
                 _column("External-IP"), _column("Port(s)"), _column("Age"),
                 _column("Selector", priority=1)],
    "events": [_column("Last Seen"), _column("Type"), _column("Reason"), _column("Object"),
               _column("Message")],
}


def _row(resource: str, obj: Obj) -> list[Any]:
    if resource == "pods":
        return _pod_row(obj)
    if resource == "nodes":
        return _node_row(obj)
    if resource == "namespaces":
        return [obj["metadata"]["name"], obj.get("status", {}).get("phase", ""),
                age(obj["metadata"].get("creationTimestamp"))]
    if resource == "services":
        return _service_row(obj)
    if resource == "configmaps":
        keys = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
        return [obj["metadata"]["name"], keys, age(obj["metadata"].get("creationTimestamp"))]
    if resource == "events":
        involved = obj.get("involvedObject") or {}
        return [age(obj.get("lastTimestamp") or obj["metadata"].get("creationTimestamp")),
                obj.get("type", ""), obj.get("reason", ""),
                f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
                obj.get("message", "")]
    return [obj["metadata"]["name"], age(obj["metadata"].get("creationTimestamp"))]


def to_table(resource: str, items: list[Obj], list_meta: Obj) -> Obj:
    columns = _COLUMNS.get(resource, [_column("Name", fmt="name"), _column("Age")])
    rows = []
    for obj in items:
        rows.append(
            {
                "cells": _row(resource, obj),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": obj["metadata"],
                },
            }
        )
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta,
        "columnDefinitions": columns,
        "rows": rows,
    }
