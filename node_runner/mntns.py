"""Mount namespaces of processes, read from ``/proc``: one pid's, the host's, every process's.

The trap it avoids: processes come and go during a scan, so a pid that vanishes mid-scan is
skipped rather than an error, and a container process whose namespace may not be read (no
CAP_SYS_PTRACE) is still reported, with no namespace, so the caller can say why.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

from node_runner.cgroups import CgroupIdentity, container_of_pid

_MNT_LINK = re.compile(r"mnt:\[(\d+)\]")


def mntns_of(pid: int, proc_root: str = "/proc") -> int:
    """Mount namespace id (nsfs inode) of a process; ``OSError`` when it is gone."""
    path = os.path.join(proc_root, str(pid), "ns", "mnt")
    match = _MNT_LINK.fullmatch(os.readlink(path))
    return int(match.group(1)) if match else os.stat(path).st_ino


def host_mntns(proc_root: str = "/proc") -> int | None:
    """The host's mount namespace: pid 1's, else kthreadd's (pid 2 shares init's), else None.

    pid 1 can be unreadable even to root (a sandbox's non-dumpable init); kernel threads
    always live in the initial mount namespace.
    """
    for pid in (1, 2):
        try:
            return mntns_of(pid, proc_root)
        except OSError:
            continue
    return None


def scan_processes(proc_root: str) -> Iterator[tuple[int, int | None, CgroupIdentity | None]]:
    """``(pid, mntns, identity)`` of every process still alive when it is read; ``mntns`` is
    None for a container's process whose mount namespace may not be read (permission)."""
    try:
        names = os.listdir(proc_root)
    except OSError:
        return
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            identity = container_of_pid(pid, proc_root)
        except (OSError, ValueError):
            continue
        try:
            mntns: int | None = mntns_of(pid, proc_root)
        except PermissionError:  # reading another's namespace needs CAP_SYS_PTRACE
            if identity is None:
                continue
            mntns = None
        except OSError:
            continue
        yield pid, mntns, identity
