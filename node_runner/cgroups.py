"""Tell which container (runtime, id, pod uid) a process belongs to from its cgroup path.

One job: turn one line of ``/proc/<pid>/cgroup`` into ``(runtime, container_id, pod_uid)``
for containerd, CRI-O, docker and podman, under the systemd and cgroupfs drivers, cgroup v1
and v2, and say ``None`` for host processes.

Traps avoided:
- The *deepest* path component that names a container wins. Nested setups (a kind node is a
  docker container running containerd; a runner pod in its own cgroup namespace sees paths that
  start with ``/../..``) put several container-looking components on one path, and the
  innermost one is the container the process is really in.
- Monitor processes live next to containers and look like them: ``crio-conmon-<id>.scope``
  and ``libpod-conmon-<id>.scope`` are *not* containers.
- A bare ``/<name>/<64 hex>`` is only read as a container when ``<name>`` says which runtime
  made it (``docker``, or a well-known containerd namespace); anything else (for instance a
  sandbox's own ``/process_api/<hex>``) is left alone rather than guessed.
- v1 and v2 lines can disagree (a process moved in one hierarchy only); the v2 line and the
  ``name=systemd`` line are trusted first, then any v1 controller line.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

CONTAINERD = "containerd"
CRIO = "cri-o"
DOCKER = "docker"
PODMAN = "podman"
RUNTIMES = (CONTAINERD, CRIO, DOCKER, PODMAN)

_ID = r"([0-9a-f]{64})"
# Container components, tried in order on each path component (deepest component first).
_CONTAINER_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"cri-containerd-" + _ID + r"\.scope"), CONTAINERD),
    (re.compile(r"crio-" + _ID + r"(?:\.scope)?"), CRIO),
    (re.compile(r"docker-" + _ID + r"\.scope"), DOCKER),
    (re.compile(r"libpod-" + _ID + r"(?:\.scope)?"), PODMAN),
    (re.compile(r"nerdctl-" + _ID + r"\.scope"), CONTAINERD),
)
_BARE_ID = re.compile(_ID)
# cgroupfs: pod<uid-with-dashes>; systemd: [kubelet-]kubepods[-<qos>]-pod<uid_as_underscores>.slice
_POD_CGROUPFS = re.compile(r"pod([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})")
_POD_SYSTEMD = re.compile(
    r"(?:[a-z]+-)?kubepods(?:-[a-z]+)?-pod"
    r"([0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12})\.slice"
)
# Parents that make a bare 64-hex component unambiguous (cgroupfs driver).
_BARE_PARENTS = {"docker": DOCKER, "default": CONTAINERD, "k8s.io": CONTAINERD}
_DELETED_SUFFIX = " (deleted)"


class CgroupIdentity(NamedTuple):
    """Which container a cgroup path names. ``pod_uid`` is ``""`` outside Kubernetes."""

    runtime: str
    container_id: str
    pod_uid: str


def _pod_uid(component: str) -> str:
    match = _POD_CGROUPFS.fullmatch(component)
    if match:
        return match.group(1)
    match = _POD_SYSTEMD.fullmatch(component)
    if match:
        return match.group(1).replace("_", "-")
    return ""


def _match_component(components: list[str], index: int) -> tuple[str, str] | None:
    """(runtime, id) if ``components[index]`` names a container, else None."""
    component = components[index]
    for pattern, runtime in _CONTAINER_PATTERNS:
        match = pattern.fullmatch(component)
        if match:
            return runtime, match.group(1)
    if not _BARE_ID.fullmatch(component) or index == 0:
        return None
    parent = components[index - 1]
    if _pod_uid(parent):
        # /kubepods/<qos>/pod<uid>/<id>: the cgroupfs driver of containerd (dockershim and
        # cri-dockerd use the same shape; the state files can tell them apart later).
        return CONTAINERD, component
    bare_runtime = _BARE_PARENTS.get(parent)
    return (bare_runtime, component) if bare_runtime else None


def parse_cgroup(path: str) -> CgroupIdentity | None:
    """Container identity named by one cgroup path, or None for a host process."""
    if path.endswith(_DELETED_SUFFIX):
        path = path[: -len(_DELETED_SUFFIX)]
    components = [c for c in path.strip().split("/") if c and c not in (".", "..")]
    for index in range(len(components) - 1, -1, -1):
        found = _match_component(components, index)
        if found is None:
            continue
        runtime, container_id = found
        pod_uid = ""
        for parent in reversed(components[:index]):
            pod_uid = _pod_uid(parent)
            if pod_uid:
                break
        return CgroupIdentity(runtime, container_id, pod_uid)
    return None


def parse_cgroup_path(path: str) -> tuple[str, str] | None:
    """``(runtime, container_id)`` named by one cgroup path, or None for a host process."""
    found = parse_cgroup(path)
    return (found.runtime, found.container_id) if found else None


def _line_rank(hierarchy_id: str, controllers: str) -> int:
    """Lower is more trusted: the v2 line, then name=systemd, then v1 controllers."""
    if hierarchy_id == "0" and controllers == "":
        return 0
    if "name=systemd" in controllers.split(","):
        return 1
    return 2


def parse_proc_cgroup(text: str) -> CgroupIdentity | None:
    """Container identity from the whole text of a ``/proc/<pid>/cgroup`` file.

    Any line that names a container wins over lines that do not; when several lines name
    different containers, the v2 line, then the ``name=systemd`` line, is preferred.
    """
    best: tuple[int, CgroupIdentity] | None = None
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        found = parse_cgroup(parts[2])
        if found is None:
            continue
        rank = _line_rank(parts[0], parts[1])
        if best is None or rank < best[0]:
            best = (rank, found)
    return best[1] if best else None


def container_of_pid(pid: int, proc_root: str = "/proc") -> CgroupIdentity | None:
    """Container identity of a live process, None for a host process.

    Raises ``OSError`` (``FileNotFoundError``/``ProcessLookupError``) when the process is gone,
    so a scanner can tell "host process" from "vanished".
    """
    with open(os.path.join(proc_root, str(pid), "cgroup"), encoding="utf-8") as file:
        return parse_proc_cgroup(file.read())
