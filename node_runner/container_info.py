"""What one container is: its record, what the cluster client adds to it, and its event fields.

One job: combine a container's cgroup identity, its runtime's state files and the metadata the
cluster client sends (``ContainerMetadata``) into one frozen ``Container``, and turn that into
the ``k8s.*``/``runtime.*`` values of an event. The trap it avoids: several sources name the
same container; non-empty client values win, a container entry over its pod's entry, and an
unknown container still yields every enrichment field (empty), so rows keep one shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TypedDict

from node_runner.cgroups import CgroupIdentity
from node_runner.gadget.schema import ENRICHMENT_FIELDS
from node_runner.runtime_state import Labels, RuntimeInfo


@dataclass(frozen=True)
class Container:
    """One container on this node; names are empty strings when unknown."""

    container_id: str
    runtime: str
    mntns_id: int
    pid: int
    pod_uid: str = ""
    name: str = ""
    image: str = ""
    k8s_namespace: str = ""
    k8s_pod_name: str = ""
    k8s_container_name: str = ""
    k8s_pod_labels: Labels = ()
    k8s_owner_kind: str = ""
    k8s_owner_name: str = ""


class ContainerMetadata(TypedDict, total=False):
    """What the cluster client knows about a container (or a whole pod) from the API.

    Keys of ``extra_metadata`` are container ids (``containerd://`` style prefixes allowed) or
    pod uids; a pod entry applies to every container of the pod, a container entry wins over it.
    Non-empty values override what the runtime's state files say.
    """

    namespace: str
    pod_name: str
    container_name: str
    pod_labels: Mapping[str, str]
    owner_kind: str
    owner_name: str
    image: str
    name: str


def build_container(
    identity: CgroupIdentity,
    pid: int,
    mntns: int,
    state: tuple[str, RuntimeInfo | None],
    extra: Mapping[str, ContainerMetadata],
) -> Container:
    """The container of `identity`, first seen as `pid` in `mntns`."""
    runtime, info = state
    info = info or RuntimeInfo()
    pod_uid = identity.pod_uid or info.k8s_pod_uid
    meta: dict[str, object] = {}
    for key in (pod_uid, identity.container_id):
        meta.update((k, v) for k, v in extra.get(key, {}).items() if v)

    def text(key: str, default: str) -> str:
        value = meta.get(key)
        return value if isinstance(value, str) else default

    labels = meta.get("pod_labels")
    return Container(
        container_id=identity.container_id,
        runtime=runtime,
        mntns_id=mntns,
        pid=pid,
        pod_uid=pod_uid,
        name=text("name", info.name),
        image=text("image", info.image),
        k8s_namespace=text("namespace", info.k8s_namespace),
        k8s_pod_name=text("pod_name", info.k8s_pod_name),
        k8s_container_name=text("container_name", info.k8s_container_name),
        k8s_pod_labels=(
            tuple(sorted((str(k), str(v)) for k, v in labels.items()))
            if isinstance(labels, Mapping)
            else info.k8s_pod_labels
        ),
        k8s_owner_kind=text("owner_kind", ""),
        k8s_owner_name=text("owner_name", ""),
    )


def enrichment_fields(c: Container | None, node: str) -> dict[str, str]:
    """The ``k8s.*``/``runtime.*`` values of one event (exactly ``ENRICHMENT_FIELDS``)."""
    if c is None:
        values = dict.fromkeys(ENRICHMENT_FIELDS, "")
        values["k8s.node"] = node
        return values
    return {
        "k8s.node": node,
        "k8s.namespace": c.k8s_namespace,
        "k8s.podName": c.k8s_pod_name,
        "k8s.containerName": c.k8s_container_name,
        "k8s.podLabels": ",".join(f"{k}={v}" for k, v in c.k8s_pod_labels),
        "k8s.owner.kind": c.k8s_owner_kind,
        "k8s.owner.name": c.k8s_owner_name,
        "runtime.containerId": c.container_id,
        "runtime.containerName": c.name,
        "runtime.runtimeName": c.runtime,
        "runtime.containerImageName": c.image,
        "runtime.containerPid": str(c.pid),
    }
