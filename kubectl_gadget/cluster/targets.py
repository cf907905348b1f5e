"""Which pods, containers and nodes a cluster run targets: resolved once, as plain values.

`resolve_targets` turns the user's selection (namespace, label selector, pod, container names,
nodes) into frozen `NodePlan`s, one per node that will run a runner, plus the reasons other
nodes will not, using read-only API calls only. Nothing is created here. The trap avoided:
deciding placement while creating pods, which makes "why is there no runner on node X?"
unanswerable and leaves half-created sessions behind on bad input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from kubectl_gadget.errors import GadgetError, UsageError

NO_TARGETS = "no target pods on this node"  # why most nodes of a big cluster get no runner

LINUX = "linux"


class PodLister(Protocol):
    def list_pods(self, namespace: str | None, label_selector: str = "",
                  field_selector: str = "") -> list[dict[str, Any]]: ...
    def list_nodes(self) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class Selection:
    namespace: str | None  # None: all namespaces
    label_selector: str = ""
    pod: str = ""
    containers: tuple[str, ...] = ()
    nodes: tuple[str, ...] = ()

    @property
    def narrows(self) -> bool:
        """False when the run is cluster-wide with no pod criteria: trace whole hosts."""
        return bool(self.namespace is not None or self.label_selector or self.pod
                    or self.containers)


@dataclass(frozen=True)
class TargetContainer:
    namespace: str
    pod: str
    pod_uid: str
    container: str
    container_id: str  # without the runtime:// prefix
    runtime: str
    labels: tuple[tuple[str, str], ...] = ()
    owner_kind: str = ""
    owner_name: str = ""

    def metadata(self) -> dict[str, Any]:
        """The runner's --k8s-metadata entry for this container."""
        return {"namespace": self.namespace, "pod_name": self.pod,
                "container_name": self.container, "pod_labels": dict(self.labels),
                "owner_kind": self.owner_kind, "owner_name": self.owner_name}


@dataclass(frozen=True)
class NodePlan:
    node: str
    containers: tuple[TargetContainer, ...] = ()
    whole_host: bool = False


@dataclass(frozen=True)
class TargetPlan:
    nodes: tuple[NodePlan, ...]
    skipped: tuple[tuple[str, str], ...] = ()  # (node, why no runner)
    notes: tuple[str, ...] = field(default=())
    eligible: tuple[str, ...] = ()  # nodes that could run a runner
    arches: tuple[tuple[str, str], ...] = ()  # (node, node.status.nodeInfo.architecture)

    def arch(self, node: str) -> str:
        return dict(self.arches).get(node, "")


def _node_ready(node: Mapping[str, Any]) -> bool:
    for cond in node.get("status", {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _owner(pod: Mapping[str, Any]) -> tuple[str, str]:
    refs = pod.get("metadata", {}).get("ownerReferences") or []
    ref = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    return (str(ref.get("kind", "")), str(ref.get("name", ""))) if ref else ("", "")


def pod_containers(pod: Mapping[str, Any], names: Iterable[str] = ()) -> list[TargetContainer]:
    """Running containers of a pod (those with a container id), optionally by name."""
    wanted = set(names)
    meta = pod.get("metadata", {})
    labels = tuple(sorted((str(k), str(v)) for k, v in (meta.get("labels") or {}).items()))
    owner_kind, owner_name = _owner(pod)
    out = []
    for status in pod.get("status", {}).get("containerStatuses") or []:
        runtime, sep, cid = str(status.get("containerID") or "").partition("://")
        if not sep or not cid or (wanted and status.get("name") not in wanted):
            continue
        out.append(TargetContainer(str(meta.get("namespace", "")), str(meta.get("name", "")),
                                   str(meta.get("uid", "")), str(status.get("name", "")), cid,
                                   runtime, labels, owner_kind, owner_name))
    return out


def _arches(nodes: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(n.get("metadata", {}).get("name", "")),
                  str(((n.get("status") or {}).get("nodeInfo") or {}).get("architecture") or ""))
                 for n in nodes)


def _eligible_nodes(kube: PodLister, sel: Selection) -> tuple[list[str], list[tuple[str, str]],
                                                               tuple[tuple[str, str], ...]]:
    nodes = kube.list_nodes()
    known = {n.get("metadata", {}).get("name", "") for n in nodes}
    missing = [n for n in sel.nodes if n not in known]
    if missing:
        raise UsageError(f"--node: no such node: {', '.join(missing)} "
                         f"(nodes: {', '.join(sorted(known)) or 'none'})")
    usable, skipped = [], []
    for n in nodes:
        name = n.get("metadata", {}).get("name", "")
        os_label = (n.get("metadata", {}).get("labels") or {}).get("kubernetes.io/os", LINUX)
        if sel.nodes and name not in sel.nodes:
            continue
        if os_label != LINUX:
            skipped.append((name, f"not a Linux node ({os_label})"))
        elif not _node_ready(n):
            skipped.append((name, "node is not Ready"))
        else:
            usable.append(name)
    return sorted(usable), skipped, _arches(nodes)


def resolve_targets(kube: PodLister, sel: Selection) -> TargetPlan:
    usable, skipped, arches = _eligible_nodes(kube, sel)
    if not sel.narrows:
        return TargetPlan(tuple(NodePlan(n, whole_host=True) for n in usable), tuple(skipped),
                          eligible=tuple(usable), arches=arches)
    field_sel = f"metadata.name={sel.pod}" if sel.pod else ""
    pods = kube.list_pods(sel.namespace, sel.label_selector, field_sel)
    by_node: dict[str, list[TargetContainer]] = {}
    notes = []
    for pod in pods:
        node = pod.get("spec", {}).get("nodeName") or ""
        name = f"{pod['metadata'].get('namespace')}/{pod['metadata'].get('name')}"
        containers = pod_containers(pod, sel.containers)
        if not node or not containers:
            phase = pod.get("status", {}).get("phase", "Unknown")
            notes.append(f"pod {name} has no running target container yet ({phase})")
            continue
        if node in usable:
            by_node.setdefault(node, []).extend(containers)
        elif not sel.nodes or node in sel.nodes:
            notes.append(f"pod {name} is on node {node}, which cannot run a runner")
    where = f"namespace {sel.namespace}" if sel.namespace else "any namespace"
    if not pods:
        raise GadgetError(f"no pod matches in {where}"
                          + (f" with selector {sel.label_selector!r}" if sel.label_selector else "")
                          + (f" named {sel.pod!r}" if sel.pod else ""))
    for node in usable:
        if node not in by_node:
            skipped.append((node, NO_TARGETS))
    plans = tuple(NodePlan(n, tuple(by_node[n])) for n in sorted(by_node))
    return TargetPlan(plans, tuple(skipped), tuple(notes), tuple(usable), arches)
