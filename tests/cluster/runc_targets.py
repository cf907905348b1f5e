"""Target pods as real runc containers, laid out on this machine as containerd lays out a pod.

One job: the cluster harness's target-runtime hook (drop-in for ``Workloads`` in
product_fixtures.py) where each pod is a sandbox ("pause") container holding the pod's network,
IPC and UTS namespaces, and each of its containers a runc container with its own mount and PID
namespaces joined to the sandbox's, in the kubelet's cgroupfs-driver cgroup
``/kubepods/besteffort/pod<uid>/<id>`` of every hierarchy, its OCI bundle (with the CRI
annotations the runner reads) under ``<containerd state>/io.containerd.runtime.v2.task/k8s.io``.
The runner resolves the container from that real cgroup path and bundle, as on a node. A
``hostNetwork`` pod keeps the host's network and UTS namespaces. The pod's hostPath volumes
are bind-mounted (read-only when the volumeMount says so).

Traps avoided:
- The containerd state root is the real one (``/run/containerd``, where the runner looks) and
  its parents and the ``kubepods`` cgroups are shared with other tests and processes: they go
  through the file-locked registry of tests/workloads.py, so only dirs created here are ever
  removed, by whoever is last out. runc's own state lives in a private temp root.
- A pod's containers go before its sandbox (they use its namespaces and /etc files), and every
  step of a teardown runs even when one fails (the first error is raised at the end).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node_runner.runtime_state import RuntimePaths
from tests.cluster.fakekube.runc import RUNC
from tests.cluster.runc_container import (
    TASKS,
    ExecProcess,
    RuncContainer,
    RuncError,
    bind_mount,
    interpreter_dirs,
    oci_config,
)
from tests.workloads import _make_cgroup, _remove_cgroup

__all__ = ["ExecProcess", "RuncContainer", "RuncError", "RuncWorkloads", "runc_available"]

Obj = dict[str, Any]
QOS = "besteffort"
PAUSE = ("sleep", "infinity")
ETC_FILES = ("hostname", "hosts", "resolv.conf")


def runc_available() -> bool:
    return os.access(RUNC, os.X_OK)


def cgroup_hierarchies() -> list[str]:
    """Mount points of every cgroup hierarchy (the v2 one first): runc's cgroupfs driver puts
    a container in each of them."""
    v2, v1 = [], []
    with open("/proc/self/mounts", encoding="utf-8") as file:
        for line in file:
            point, fstype = line.split()[1:3]
            if fstype == "cgroup2":
                v2.append(point)
            elif fstype == "cgroup":
                v1.append(point)
    return list(dict.fromkeys(v2 + v1))


def _make_dir(root: str, relpath: str) -> str:
    """Create `root/relpath` and missing parents through the shared registry; retried when a
    parent someone else created is removed meanwhile."""
    for attempt in range(5):
        try:
            return _make_cgroup(root, relpath)
        except FileNotFoundError:
            if attempt == 4:
                raise
    raise AssertionError("unreachable")


@dataclass
class _Pod:
    namespace: str
    name: str
    uid: str
    host_network: bool
    containers: dict[str, RuncContainer] = field(default_factory=dict)
    sandbox: RuncContainer | None = None
    bundles: list[str] = field(default_factory=list)
    pod_cgroups: list[tuple[str, str]] = field(default_factory=list)

    @property
    def cgroup_parent(self) -> str:
        return f"/kubepods/{QOS}/pod{self.uid}"

    def close(self) -> None:
        """Containers, then the sandbox, then the pod's cgroups and bundle dirs' parents."""
        errors: list[BaseException] = []
        for item in [*self.containers.values(), self.sandbox]:
            if item is not None:
                try:
                    item.close()
                except Exception as exc:  # keep tearing down; raised below
                    errors.append(exc)
        for root, leaf in self.pod_cgroups:
            if not _remove_cgroup(root, leaf):
                errors.append(RuncError(f"removing cgroup {leaf}: still busy"))
        for bundle in self.bundles:
            shutil.rmtree(bundle, ignore_errors=True)
            _remove_cgroup("/", bundle)
        self.containers, self.sandbox, self.pod_cgroups, self.bundles = {}, None, [], []
        if errors:
            raise errors[0]


class RuncWorkloads:
    """Target runtime hook: `start(pod) -> {container: "containerd://<id>"}`, `stop(pod)`,
    and the per-test helpers of ``Workloads`` (`container`, `exec`, `by_pod`, `close`)."""

    def __init__(self, containerd_state: str | None = None) -> None:
        if not runc_available():
            raise RuncError(f"runc is not installed ({RUNC})")
        self.containerd_state = containerd_state or RuntimePaths().containerd_state
        self.runc_root = Path(tempfile.mkdtemp(prefix="runc-targets-"))
        self.hierarchies = cgroup_hierarchies()
        self._lock = threading.Lock()
        self._pods: dict[tuple[str, str], _Pod] = {}
        self.by_pod: dict[tuple[str, str], dict[str, RuncContainer]] = {}

    # -- the hook ----------------------------------------------------------------------------
    def start(self, pod: Obj) -> dict[str, str]:
        meta, spec = pod["metadata"], pod["spec"]
        state = _Pod(meta["namespace"], meta["name"], meta["uid"],
                     bool(spec.get("hostNetwork")))
        try:
            for root in self.hierarchies:
                state.pod_cgroups.append(
                    (root, _make_dir(root, state.cgroup_parent.lstrip("/"))))
            state.sandbox = self._sandbox(state)
            for c in spec["containers"]:
                state.containers[c["name"]] = self._container(state, spec, c)
        except BaseException:
            state.close()
            raise
        key = (state.namespace, state.name)
        with self._lock:
            self._pods[key] = state
            self.by_pod[key] = dict(state.containers)
        return {name: f"containerd://{c.container_id}" for name, c in state.containers.items()}

    def stop(self, pod: Obj) -> None:
        key = (pod["metadata"]["namespace"], pod["metadata"]["name"])
        with self._lock:
            self.by_pod.pop(key, None)
            state = self._pods.pop(key, None)
        if state is not None:
            state.close()

    # -- what tests use ----------------------------------------------------------------------
    def container(self, namespace: str, pod: str, container: str = "app") -> RuncContainer:
        with self._lock:
            return self.by_pod[(namespace, pod)][container]

    def exec(self, namespace: str, pod: str, argv: Sequence[str],
             container: str = "app") -> Any:
        """Run a short command in a container (`kubectl exec`); its CompletedProcess."""
        return self.container(namespace, pod, container).exec(list(argv))

    def close(self) -> None:
        with self._lock:
            pods, self._pods = list(self._pods.values()), {}
            self.by_pod.clear()
        errors = []
        for state in pods:
            try:
                state.close()
            except Exception as exc:
                errors.append(exc)
        with contextlib.suppress(OSError):
            self.runc_root.rmdir()  # runc delete emptied it; left (and named) otherwise
        if errors:
            raise errors[0]

    # -- one pod -----------------------------------------------------------------------------
    def _bundle(self, state: _Pod, cid: str) -> Path:
        rel = os.path.join(self.containerd_state, *TASKS, cid).lstrip("/")
        bundle = _make_dir("/", rel)
        state.bundles.append(bundle)
        return Path(bundle)

    def _new(self, state: _Pod, bundle: Path, config: Obj) -> RuncContainer:
        container = RuncContainer(bundle.name, bundle, config, self.runc_root, state.uid)
        try:
            container.start(self.hierarchies)
        except BaseException:
            container.close()
            raise
        return container

    def _notes(self, state: _Pod, sandbox_id: str) -> dict[str, str]:
        return {"io.kubernetes.cri.sandbox-id": sandbox_id,
                "io.kubernetes.cri.sandbox-name": state.name,
                "io.kubernetes.cri.sandbox-namespace": state.namespace,
                "io.kubernetes.cri.sandbox-uid": state.uid}

    def _sandbox(self, state: _Pod) -> RuncContainer:
        """The pause container: its namespaces are the pod's; /etc files for the pod."""
        sid = secrets.token_hex(32)
        bundle = self._bundle(state, sid)
        hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        (bundle / "hostname").write_text(state.name + "\n")
        (bundle / "hosts").write_text(hosts)
        resolv = Path("/etc/resolv.conf")
        (bundle / "resolv.conf").write_text(resolv.read_text() if resolv.is_file() else "")
        kinds = ["pid", "mount", "ipc"] + ([] if state.host_network else ["uts", "network"])
        notes = {"io.kubernetes.cri.container-type": "sandbox", **self._notes(state, sid),
                 "io.kubernetes.cri.sandbox-log-directory":
                     f"/var/log/pods/{state.namespace}_{state.name}_{state.uid}"}
        config = oci_config(args=PAUSE, cgroups_path=f"{state.cgroup_parent}/{sid}",
                            annotations=notes, namespaces=[{"type": k} for k in kinds],
                            hostname=None if state.host_network else state.name)
        return self._new(state, bundle, config)

    def _container(self, state: _Pod, spec: Obj, c: Obj) -> RuncContainer:
        sandbox = state.sandbox
        assert sandbox is not None
        cid = secrets.token_hex(32)
        bundle = self._bundle(state, cid)
        shared = ["ipc"] + ([] if state.host_network else ["uts", "network"])
        namespaces: list[dict[str, str]] = [{"type": "pid"}, {"type": "mount"}]
        namespaces += [{"type": k, "path": f"/proc/{sandbox.pid}/ns/{_ns_file(k)}"}
                       for k in shared]
        mounts = [{"destination": f"/etc/{name}", "type": "bind",
                   "source": str(sandbox.bundle / name), "options": ["rbind", "rprivate", "ro"]}
                  for name in ETC_FILES]
        mounts += [bind_mount(d, d) for d in interpreter_dirs()] + _volumes(spec, c)
        notes = {"io.kubernetes.cri.container-type": "container",
                 "io.kubernetes.cri.container-name": c["name"],
                 "io.kubernetes.cri.image-name": c.get("image", ""),
                 **self._notes(state, sandbox.container_id)}
        config = oci_config(args=PAUSE, cgroups_path=f"{state.cgroup_parent}/{cid}",
                            annotations=notes, namespaces=namespaces, extra_mounts=mounts,
                            env=[] if state.host_network else [f"HOSTNAME={state.name}"])
        return self._new(state, bundle, config)


def _ns_file(kind: str) -> str:
    return {"network": "net", "mount": "mnt"}.get(kind, kind)


def _volumes(spec: Obj, container: Obj) -> list[dict[str, Any]]:
    """The container's hostPath volumeMounts as bind mounts."""
    volumes = {v["name"]: v for v in spec.get("volumes") or []}
    out = []
    for vm in container.get("volumeMounts") or []:
        vol = volumes.get(vm["name"], {})
        if "hostPath" not in vol:
            raise RuncError(f"volume {vm['name']}: only hostPath volumes are supported")
        out.append(bind_mount(vol["hostPath"]["path"], vm["mountPath"], bool(vm.get("readOnly"))))
    return out
