"""Where a container runtime records a container: its cgroup path and its state files.

One job: lay a test workload out as a real runtime would, so the node's code is exercised on
the real layouts: the cgroup path each runtime and cgroup driver gives a container, and the
names it records on disk (containerd's OCI bundle annotations, CRI-O's bundle plus its pod
infra container, docker's config.v2.json with dockershim labels, podman's containers/storage
index).

Trap avoided: pod labels live on the pod's sandbox, not on the container, for CRI-O and
dockershim, so a sandbox record is written too; and podman's shared ``containers.json`` index
is appended to, never overwritten, so workloads sharing a state root do not erase each other.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from node_runner.runtime_state import RuntimePaths


@dataclass(frozen=True)
class ContainerState:
    """Names written to the runtime's state file for the workload."""

    container_name: str = "app"
    pod_name: str = "app-pod"
    namespace: str = "default"
    image: str = "docker.io/library/busybox:1.36"
    pod_labels: Mapping[str, str] = field(default_factory=dict)
    name: str = ""  # runtime container name for docker/podman (default: container_name)


def cgroup_relpath(
    runtime: str, driver: str, container_id: str, pod_uid: str, qos: str = "besteffort"
) -> str:
    """The cgroup path (relative to a hierarchy root) the runtime would give this container."""
    if driver not in ("systemd", "cgroupfs"):
        raise ValueError(f"unknown cgroup driver {driver!r}")
    systemd = driver == "systemd"
    if runtime == "podman":
        return (
            f"machine.slice/libpod-{container_id}.scope"
            if systemd
            else f"libpod_parent/libpod-{container_id}"
        )
    if runtime == "docker" and not pod_uid:
        return f"system.slice/docker-{container_id}.scope" if systemd else f"docker/{container_id}"
    if runtime not in ("containerd", "cri-o", "docker"):
        raise ValueError(f"unknown runtime {runtime!r}")
    if systemd:
        leaf = {"containerd": "cri-containerd-", "cri-o": "crio-", "docker": "docker-"}[runtime]
        uid = pod_uid.replace("-", "_")
        return (
            f"kubepods.slice/kubepods-{qos}.slice/kubepods-{qos}-pod{uid}.slice/"
            f"{leaf}{container_id}.scope"
        )
    leaf = "crio-" if runtime == "cri-o" else ""
    return f"kubepods/{qos}/pod{pod_uid}/{leaf}{container_id}"


def _write_json(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(data, file)


def _k8s_labels(state: ContainerState, pod_uid: str) -> dict[str, str]:
    return {
        "io.kubernetes.container.name": state.container_name,
        "io.kubernetes.pod.name": state.pod_name,
        "io.kubernetes.pod.namespace": state.namespace,
        "io.kubernetes.pod.uid": pod_uid,
    }


def _containerd_state(cid: str, uid: str, st: ContainerState, paths: RuntimePaths) -> list[str]:
    bundle = os.path.join(paths.containerd_state, "io.containerd.runtime.v2.task", "k8s.io", cid)
    notes = {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": st.container_name,
        "io.kubernetes.cri.image-name": st.image,
        "io.kubernetes.cri.sandbox-id": secrets.token_hex(32),
        "io.kubernetes.cri.sandbox-name": st.pod_name,
        "io.kubernetes.cri.sandbox-namespace": st.namespace,
        "io.kubernetes.cri.sandbox-uid": uid,
    }
    _write_json(os.path.join(bundle, "config.json"), {"ociVersion": "1.1.0", "annotations": notes})
    return [bundle]


def _crio_state(cid: str, uid: str, st: ContainerState, paths: RuntimePaths) -> list[str]:
    """The container's bundle, and its pod's infra container's (which holds the pod labels)."""
    sandbox_id = secrets.token_hex(32)
    dirs = []
    for this_id, kind, labels in (
        (cid, "container", _k8s_labels(st, uid)),
        (sandbox_id, "sandbox", {**_k8s_labels(st, uid), **st.pod_labels}),
    ):
        notes = {
            **_k8s_labels(st, uid),
            "io.kubernetes.cri-o.ContainerType": kind,
            "io.kubernetes.cri-o.ImageName": st.image,
            "io.kubernetes.cri-o.SandboxID": sandbox_id,
            "io.kubernetes.cri-o.Labels": json.dumps(labels),
        }
        container_dir = os.path.join(paths.containers_run, "overlay-containers", this_id)
        _write_json(os.path.join(container_dir, "userdata", "config.json"), {"annotations": notes})
        dirs.append(container_dir)
    return dirs


def _docker_state(cid: str, uid: str, st: ContainerState, paths: RuntimePaths) -> list[str]:
    """config.v2.json; under Kubernetes (a pod uid) also the pod sandbox's, dockershim style."""
    root = os.path.join(paths.docker_root, "containers")
    name, labels, dirs = st.name or st.container_name, {}, [os.path.join(root, cid)]
    if uid:
        sandbox_id = secrets.token_hex(32)
        name = f"k8s_{st.container_name}_{st.pod_name}_{st.namespace}_{uid}_0"
        labels = {**_k8s_labels(st, uid), "io.kubernetes.sandbox.id": sandbox_id}
        sandbox = {
            **_k8s_labels(st, uid),
            **st.pod_labels,
            "io.kubernetes.docker.type": "podsandbox",
        }
        sandbox_config = {"ID": sandbox_id, "Name": "/k8s_POD", "Config": {"Labels": sandbox}}
        _write_json(os.path.join(root, sandbox_id, "config.v2.json"), sandbox_config)
        dirs.append(os.path.join(root, sandbox_id))
    config = {"ID": cid, "Name": "/" + name, "Config": {"Image": st.image, "Labels": labels}}
    _write_json(os.path.join(root, cid, "config.v2.json"), config)
    return dirs


def _podman_state(cid: str, uid: str, st: ContainerState, paths: RuntimePaths) -> list[str]:
    """userdata/config.json plus this container's entry in containers/storage's index."""
    storage = os.path.join(paths.containers_storage, "overlay-containers")
    config = {"annotations": {"io.container.manager": "libpod"}}
    _write_json(os.path.join(storage, cid, "userdata", "config.json"), config)
    index = os.path.join(storage, "containers.json")
    try:
        with open(index, encoding="utf-8") as file:
            entries = json.load(file)
    except FileNotFoundError:
        entries = []
    metadata = {"image-name": st.image, "name": st.name or st.container_name}
    entries.append({"id": cid, "names": [metadata["name"]], "metadata": json.dumps(metadata)})
    _write_json(index, entries)
    return [os.path.join(storage, cid)]


_STATE_WRITERS = {
    "containerd": _containerd_state,
    "cri-o": _crio_state,
    "docker": _docker_state,
    "podman": _podman_state,
}


def write_runtime_state(
    runtime: str, container_id: str, pod_uid: str, state: ContainerState, paths: RuntimePaths
) -> list[str]:
    """Write the runtime's own state file(s) for a container; return the dirs to remove."""
    return _STATE_WRITERS[runtime](container_id, pod_uid, state, paths)
