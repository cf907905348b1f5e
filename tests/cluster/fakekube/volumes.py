"""Pod volumes a runner pod's container sees: configMap files, for runc and for processes.

The kubelet materializes a `configMap` volume into a directory of its own (one per pod and
volume). A runc container gets it as a read-only bind mount (oci_spec). A container run as a
plain process has no root filesystem of its own, so it runs in a mount namespace of its own
(`unshare --mount --propagation private`) where the directory is bind-mounted read-only at the
volumeMount's path; hostPath volumes stay what they are (the host's own paths).

A mount point missing on this machine is created for the pod and removed afterwards. Several
pods (and several test processes) may share a path, and removing a directory that is a mount
point in another mount namespace would detach that mount there, so creation and removal go
under an exclusive file lock, every user holds a shared lock meanwhile, and the directories
are removed (when empty) by the last user only.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .runtime import StartError

Obj = dict[str, Any]
_STATE = Path(tempfile.gettempdir()) / "fakekube-mountpoints"
_MOUNT = ('while [ "$1" != -- ]; do mount --bind -o ro "$1" "$2" || exit 111; shift 2; done\n'
          'shift; exec "$@"\n')


class MountPoints:
    """The mount points one pod's process containers need, created while the pod lives."""

    def __init__(self, state: Path = _STATE) -> None:
        self.state = state
        self._user: int | None = None

    def _locked(self) -> int:
        self.state.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.state / "registry.lock", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        return fd

    def _registry(self) -> list[str]:
        try:
            return list(json.loads((self.state / "created.json").read_text()))
        except (OSError, ValueError):
            return []

    def _save(self, created: list[str]) -> None:
        (self.state / "created.json").write_text(json.dumps(sorted(set(created))))

    def acquire(self, paths: Sequence[str]) -> None:
        """Make sure every path exists as a directory (creating missing parents too)."""
        lock = self._locked()
        try:
            created = self._registry()
            for path in paths:
                missing = []
                p = Path(path)
                while not p.exists():
                    missing.append(str(p))
                    p = p.parent
                Path(path).mkdir(parents=True, exist_ok=True)
                created += missing
            self._save(created)
            if self._user is None:
                self._user = os.open(self.state / "users.lock", os.O_RDWR | os.O_CREAT, 0o600)
                fcntl.flock(self._user, fcntl.LOCK_SH)
        finally:
            os.close(lock)

    def release(self) -> None:
        """Stop using them; the last user removes the directories created for pods."""
        if self._user is None:
            return
        lock = self._locked()
        try:
            os.close(self._user)
            self._user = None
            probe = os.open(self.state / "users.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # another pod still uses them
            finally:
                os.close(probe)
            for path in sorted(self._registry(), key=len, reverse=True):
                try:
                    os.rmdir(path)
                except OSError:
                    pass  # gone already, or not empty: no longer only a mount point
            self._save([])
        finally:
            os.close(lock)


def configmap_mounts(container: Obj, dirs: dict[str, str]) -> list[tuple[str, str]]:
    """(materialized dir, mountPath) of each configMap volume the container mounts."""
    out = []
    for vm in container.get("volumeMounts") or []:
        if vm.get("name") in dirs:
            out.append((dirs[vm["name"]], vm["mountPath"]))
    return out


def in_mount_namespace(argv: Sequence[str], mounts: Sequence[tuple[str, str]]) -> list[str]:
    """`argv` run in a private mount namespace with each (source, target) bind-mounted
    read-only; the same process (unshare and sh exec), so signals reach the container."""
    unshare, sh = shutil.which("unshare"), shutil.which("sh")
    if not mounts:
        return list(argv)
    if unshare is None or sh is None:
        raise StartError("unshare(1) and sh are needed for configMap volumes of process pods")
    pairs = [part for source, target in mounts for part in (source, target)]
    return [unshare, "--mount", "--propagation", "private", "--", sh, "-c", _MOUNT,
            "fakekube-volumes", *pairs, "--", *argv]
