"""Read the names a container runtime keeps on disk for one container id.

One job: given ``(runtime, container_id)``, find the runtime's own state file for that
container (OCI bundle ``config.json`` of containerd and CRI-O, ``config.v2.json`` of docker,
``containers.json`` of containers/storage for podman) and pull out the container name, image and
Kubernetes names (namespace, pod, container, pod uid, pod labels when the runtime keeps them).

Traps avoided:
- Best effort, never raising: state files vanish when a container exits, can be half written,
  unreadable in a restricted pod, or not JSON. Every such case is "unknown" (``None``), because
  enrichment must never stop a run.
- All roots come from one frozen ``RuntimePaths`` so a runner pod, which mounts the host's
  directories somewhere else, and tests, which use temp dirs, point them elsewhere.
- Files are read with a size cap so a corrupt or hostile file cannot eat the runner's memory.
- Pod labels are not in a container's own files: CRI-O and dockershim keep them on the pod's
  sandbox (infra) container, so they are read from there, minus the runtime's own keys.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from node_runner.cgroups import CONTAINERD, CRIO, DOCKER, PODMAN

_MAX_STATE_BYTES = 4 * 1024 * 1024
_CONTAINERD_TASKS = "io.containerd.runtime.v2.task"
Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class RuntimePaths:
    """Where each runtime keeps its per-container state (host paths by default)."""

    containerd_state: str = "/run/containerd"
    containers_run: str = "/run/containers/storage"
    containers_storage: str = "/var/lib/containers/storage"
    docker_root: str = "/var/lib/docker"

    @classmethod
    def under(cls, root: str) -> RuntimePaths:
        """The default paths below ``root`` (e.g. ``/host`` in a runner pod)."""
        defaults = cls()
        return cls(
            containerd_state=_rebase(root, defaults.containerd_state),
            containers_run=_rebase(root, defaults.containers_run),
            containers_storage=_rebase(root, defaults.containers_storage),
            docker_root=_rebase(root, defaults.docker_root),
        )


def _rebase(root: str, path: str) -> str:
    return os.path.join(root, path.lstrip("/"))


@dataclass(frozen=True)
class RuntimeInfo:
    """What the runtime's state says about one container; empty strings when unknown."""

    name: str = ""
    image: str = ""
    k8s_namespace: str = ""
    k8s_pod_name: str = ""
    k8s_container_name: str = ""
    k8s_pod_uid: str = ""
    k8s_pod_labels: Labels = ()


def _load_json(path: str) -> Any:
    """Parsed JSON of a file, or None when missing, unreadable, too big or malformed."""
    try:
        with open(path, "rb") as file:
            data = file.read(_MAX_STATE_BYTES + 1)
    except OSError:
        return None
    if len(data) > _MAX_STATE_BYTES:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return None


def _str_dict(value: Any) -> dict[str, str]:
    """Only the string-to-string entries of a JSON object (anything else: empty)."""
    if not isinstance(value, dict):
        return {}
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)}


def _annotations(config: Any) -> dict[str, str]:
    return _str_dict(config.get("annotations")) if isinstance(config, dict) else {}


def _pod_labels(labels: dict[str, str]) -> Labels:
    """A sandbox's labels minus the runtime's own bookkeeping keys."""
    return tuple(
        sorted(
            (k, v)
            for k, v in labels.items()
            if not k.startswith(("io.kubernetes.", "annotation.", "io.cri-containerd."))
        )
    )


def read_containerd(container_id: str, paths: RuntimePaths) -> RuntimeInfo | None:
    """CRI annotations of containerd's OCI bundle, searching every containerd namespace."""
    tasks = os.path.join(paths.containerd_state, _CONTAINERD_TASKS)
    try:
        namespaces = sorted(os.listdir(tasks), key=lambda ns: ns != "k8s.io")
    except OSError:
        return None
    for namespace in namespaces:
        config = _load_json(os.path.join(tasks, namespace, container_id, "config.json"))
        if not isinstance(config, dict):
            continue
        notes = _annotations(config)
        k8s_name = notes.get("io.kubernetes.cri.container-name", "")
        return RuntimeInfo(
            name=k8s_name or notes.get("nerdctl/name", ""),
            image=notes.get("io.kubernetes.cri.image-name", ""),
            k8s_namespace=notes.get("io.kubernetes.cri.sandbox-namespace", ""),
            k8s_pod_name=notes.get("io.kubernetes.cri.sandbox-name", ""),
            k8s_container_name=k8s_name,
            k8s_pod_uid=notes.get("io.kubernetes.cri.sandbox-uid", ""),
        )
    return None


def _userdata_config(container_id: str, paths: RuntimePaths) -> dict[str, Any] | None:
    """containers/storage's ``userdata/config.json`` (run root first, then graph root)."""
    for root in (paths.containers_run, paths.containers_storage):
        config = _load_json(
            os.path.join(root, "overlay-containers", container_id, "userdata", "config.json")
        )
        if isinstance(config, dict):
            return config
    return None


def _crio_labels(notes: dict[str, str]) -> dict[str, str]:
    raw = notes.get("io.kubernetes.cri-o.Labels", "")
    try:
        return _str_dict(json.loads(raw)) if raw else {}
    except ValueError:
        return {}


def read_crio(container_id: str, paths: RuntimePaths) -> RuntimeInfo | None:
    """Kubernetes annotations of CRI-O's bundle, pod labels from the pod's infra container."""
    notes = _annotations(_userdata_config(container_id, paths))
    if not notes:
        return None
    labels = _crio_labels(notes)
    sandbox_id = notes.get("io.kubernetes.cri-o.SandboxID", "")
    if sandbox_id and sandbox_id != container_id:
        labels = _crio_labels(_annotations(_userdata_config(sandbox_id, paths)))
    k8s_name = notes.get("io.kubernetes.container.name", "")
    return RuntimeInfo(
        name=k8s_name,
        image=(
            notes.get("io.kubernetes.cri-o.ImageName") or notes.get("io.kubernetes.cri-o.Image", "")
        ),
        k8s_namespace=notes.get("io.kubernetes.pod.namespace", ""),
        k8s_pod_name=notes.get("io.kubernetes.pod.name", ""),
        k8s_container_name=k8s_name,
        k8s_pod_uid=notes.get("io.kubernetes.pod.uid", ""),
        k8s_pod_labels=_pod_labels(labels),
    )


def _storage_entry(container_id: str, paths: RuntimePaths) -> dict[str, Any]:
    """This container's record in containers/storage's ``containers.json`` (or empty)."""
    entries = _load_json(
        os.path.join(paths.containers_storage, "overlay-containers", "containers.json")
    )
    if isinstance(entries, list):
        for entry in entries:
            if isinstance(entry, dict) and entry.get("id") == container_id:
                return entry
    return {}


def read_podman(container_id: str, paths: RuntimePaths) -> RuntimeInfo | None:
    """Podman: name and image from containers.json, Kubernetes names from annotations."""
    config = _userdata_config(container_id, paths)
    entry = _storage_entry(container_id, paths)
    if config is None and not entry:
        return None
    notes = _annotations(config)
    names = entry.get("names")
    name = names[0] if isinstance(names, list) and names and isinstance(names[0], str) else ""
    try:
        metadata = _str_dict(json.loads(entry.get("metadata") or "{}"))
    except (TypeError, ValueError):
        metadata = {}
    return RuntimeInfo(
        name=name or metadata.get("name", ""),
        image=metadata.get("image-name", ""),
        k8s_namespace=notes.get("io.kubernetes.pod.namespace", ""),
        k8s_pod_name=notes.get("io.kubernetes.pod.name", ""),
        k8s_container_name=notes.get("io.kubernetes.container.name", ""),
        k8s_pod_uid=notes.get("io.kubernetes.pod.uid", ""),
    )


def _docker_config(container_id: str, paths: RuntimePaths) -> dict[str, Any] | None:
    config = _load_json(
        os.path.join(paths.docker_root, "containers", container_id, "config.v2.json")
    )
    return config if isinstance(config, dict) else None


def _docker_labels(config: dict[str, Any] | None) -> dict[str, str]:
    inner = config.get("Config") if config else None
    return _str_dict(inner.get("Labels")) if isinstance(inner, dict) else {}


def read_docker(container_id: str, paths: RuntimePaths) -> RuntimeInfo | None:
    """Docker's config.v2.json; dockershim/cri-dockerd labels give the Kubernetes names."""
    config = _docker_config(container_id, paths)
    if config is None:
        return None
    inner = config.get("Config")
    image = inner.get("Image", "") if isinstance(inner, dict) else ""
    labels = _docker_labels(config)
    sandbox_id = labels.get("io.kubernetes.sandbox.id", "")
    pod_labels: Labels = ()
    if labels.get("io.kubernetes.docker.type") == "podsandbox":
        pod_labels = _pod_labels(labels)
    elif sandbox_id:
        pod_labels = _pod_labels(_docker_labels(_docker_config(sandbox_id, paths)))
    name = config.get("Name", "")
    return RuntimeInfo(
        name=name.lstrip("/") if isinstance(name, str) else "",
        image=image if isinstance(image, str) else "",
        k8s_namespace=labels.get("io.kubernetes.pod.namespace", ""),
        k8s_pod_name=labels.get("io.kubernetes.pod.name", ""),
        k8s_container_name=labels.get("io.kubernetes.container.name", ""),
        k8s_pod_uid=labels.get("io.kubernetes.pod.uid", ""),
        k8s_pod_labels=pod_labels,
    )


_READERS = {CONTAINERD: read_containerd, CRIO: read_crio, DOCKER: read_docker, PODMAN: read_podman}


def read_runtime_info(
    runtime: str, container_id: str, paths: RuntimePaths
) -> tuple[str, RuntimeInfo | None]:
    """``(runtime, info)`` for one container; info None when no state file was found.

    The cgroupfs driver gives containerd and dockershim the same cgroup shape, so a
    "containerd" container without containerd state but with docker state is docker's.
    """
    reader = _READERS.get(runtime)
    info = reader(container_id, paths) if reader else None
    if info is None and runtime == CONTAINERD:
        docker_info = read_docker(container_id, paths)
        if docker_info is not None:
            return DOCKER, docker_info
    return runtime, info
