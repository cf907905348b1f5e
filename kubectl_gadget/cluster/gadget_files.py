"""A local gadget directory shipped to the runner pods of one session as a ConfigMap.

A gadget built on this machine (`run ./mygadget` on a cluster) exists only here; runner pods
on other nodes get its files through one ConfigMap per session in the runner namespace,
mounted read-only into each runner pod (`--gadget` names the mount). The ConfigMap carries the
session's labels and annotations, like its pods, so the session deletes it after its pods and
`gc` finds it when a client died. Two checks come first, before anything is created: the
files fit in a ConfigMap (1 MiB), and every target node has this machine's architecture
(the object was compiled for it). The trap avoided: handing runners a path of the client's
file system, which no node has.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubectl_gadget.cluster.kube import Forbidden, Kube, KubeError
from kubectl_gadget.cluster.runner_pod import (
    CLIENT_VERSION,
    COMPONENT_LABEL,
    CREATED_AT,
    DEADLINE,
    FILES_COMPONENT,
    GADGET,
    MANAGED_BY,
    MANAGER,
    SESSION_LABEL,
    RunnerSettings,
    configmap_name,
    rfc3339,
)
from kubectl_gadget.errors import GadgetError
from node_runner import __version__
from node_runner.gadget.spec import METADATA_FILE, OBJECT_FILE

VOLUME = "gadget-files"
MOUNT_PATH = "/run/kubectl-gadget/gadget"
MAX_BYTES = 1024 * 1024  # what the API server accepts in one ConfigMap's values
# What a runner reads from a gadget directory: the object, its metadata, and a WASM module
# (kept beside the object so the runner can say it runs without it).
SHIPPED_FILES = (OBJECT_FILE, METADATA_FILE, "program.wasm")
# uname -m -> Kubernetes' node.status.nodeInfo.architecture (GOARCH)
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64", "armv7l": "arm",
          "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


def local_arch() -> str:
    machine = os.uname().machine
    return GOARCH.get(machine, machine)


def _dir_name(path: Path) -> str:
    """The directory the runner sees the gadget in (its name is the gadget's name)."""
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", path.name).strip(".") or "gadget"
    return name[:100]


def image_hint(source: str) -> str:
    return (f"build and push it as an image instead: kubectl gadget image build {source} -t "
            "REGISTRY/NAME:TAG && kubectl gadget image push REGISTRY/NAME:TAG, then run "
            "REGISTRY/NAME:TAG")


@dataclass(frozen=True)
class GadgetFiles:
    """The files of a built gadget directory, as they go into the ConfigMap."""

    source: str  # what the user named (for messages)
    name: str  # the directory name under MOUNT_PATH
    files: tuple[tuple[str, bytes], ...]
    arch: str  # Kubernetes architecture the object was built for

    @classmethod
    def from_dir(cls, source: str, built: str | Path, name: str | None = None) -> GadgetFiles:
        """Read `built` (program.bpf.o + gadget.yaml ...); GadgetError when too big."""
        root = Path(built)
        files = []
        for file in SHIPPED_FILES:
            path = root / file
            if path.is_file():
                try:
                    files.append((file, path.read_bytes()))
                except OSError as exc:
                    raise GadgetError(f"reading gadget {source}: {path}: {exc.strerror}") \
                        from None
        total = sum(len(data) for _name, data in files)
        if total > MAX_BYTES:
            sizes = ", ".join(f"{n} {len(d):,} bytes" for n, d in files)
            raise GadgetError(f"gadget {source} is too big to ship to the runner pods in a "
                              f"ConfigMap: {total:,} bytes ({sizes}), the limit is {MAX_BYTES:,} "
                              f"bytes (1 MiB); {image_hint(source)}")
        return cls(source, _dir_name(Path(name) if name else root), tuple(files), local_arch())

    @property
    def runner_path(self) -> str:
        """What the runners get as --gadget."""
        return f"{MOUNT_PATH}/{self.name}"

    def manifest(self, settings: RunnerSettings, session: str, now: float) -> dict[str, Any]:
        labels = {MANAGED_BY: MANAGER, COMPONENT_LABEL: FILES_COMPONENT, SESSION_LABEL: session,
                  **dict(settings.extra_labels)}
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": configmap_name(session),
                "namespace": settings.namespace,
                "labels": labels,
                "annotations": {CREATED_AT: rfc3339(now),
                                DEADLINE: rfc3339(now + settings.deadline_seconds),
                                CLIENT_VERSION: __version__, GADGET: self.name},
            },
            "immutable": True,
            "binaryData": {n: base64.b64encode(d).decode() for n, d in self.files},
        }

    def volume(self, session: str) -> dict[str, Any]:
        items = [{"key": n, "path": f"{self.name}/{n}"} for n, _d in self.files]
        return {"name": VOLUME, "configMap": {"name": configmap_name(session), "items": items}}


def volume_mount() -> dict[str, Any]:
    return {"name": VOLUME, "mountPath": MOUNT_PATH, "readOnly": True}


def arch_error(files: GadgetFiles, wrong: dict[str, str]) -> str:
    """The message for target nodes of another architecture (node -> architecture)."""
    nodes = ", ".join(f"{n} ({a})" for n, a in sorted(wrong.items()))
    return (f"gadget {files.source} was built on this machine for {files.arch}, but target "
            f"node(s) {nodes} run another architecture; to run a gadget on several "
            f"architectures, {image_hint(files.source)} (an image carries amd64 and arm64)")


def _help(files: GadgetFiles, namespace: str) -> str:
    return (f"fix: the user needs configmaps create and delete in namespace {namespace} to ship "
            f"the gadget directory {files.source} to the runner pods (see README, 'What the "
            f"cluster needs'), or {image_hint(files.source)}")


def preflight(kube: Kube, files: GadgetFiles, manifest: dict[str, Any]) -> None:
    """A server-side dry run of the ConfigMap, and of its deletion (a ConfigMap not there
    yet: NotFound when allowed, Forbidden when not), so RBAC is one message, up front."""
    meta = manifest["metadata"]
    try:
        kube.create_configmap(meta["namespace"], manifest, dry_run=True)
        kube.delete_configmap(meta["namespace"], meta["name"], dry_run=True)
    except Forbidden as exc:
        raise GadgetError(f"{exc}\n{_help(files, meta['namespace'])}") from None
    except KubeError as exc:
        if exc.status == 422:  # refused as too big, or otherwise invalid
            raise GadgetError(f"{exc}\n{image_hint(files.source)}") from None
        raise


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Ctrl-C (SIGINT) waits until the block is done, then raises KeyboardInterrupt: a
    ConfigMap is never created or deleted without the session knowing it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda sig, _frame: seen.append(sig))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if seen:
        raise KeyboardInterrupt


def remove(kube: Kube, namespace: str, session: str, diag: Callable[[str], None]) -> None:
    """Delete the session's ConfigMap (after its pods); a failure is a warning naming gc."""
    name = configmap_name(session)
    try:
        with interrupts_deferred():
            kube.delete_configmap(namespace, name)
    except KubeError as exc:
        diag(f"warning: the gadget's ConfigMap {namespace}/{name} was not deleted ({exc}); "
             "`kubectl gadget gc` deletes it")
