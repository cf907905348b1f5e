"""Network namespaces of the targets, and running code inside one of them.

Socket filters and tc programs are attached per network namespace: the targets' (found from
their mount namespace ids through /proc) or the host's when nothing is filtered. A raw socket
or a netlink request belongs to the namespace of the thread that makes it, so the runner's
thread steps into the target's namespace for the few calls that need it and steps back. The
trap avoided: staying in the wrong namespace after an error; the way back is in a `finally`,
and failing to return stops the run.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator

from node_runner.errors import RunnerError
from node_runner.libbpf.library import setns

CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000


def ns_inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def pids_by_mntns(mntns_ids: Iterable[int], proc_root: str = "/proc") -> dict[int, list[int]]:
    """The live processes of each wanted mount namespace."""
    wanted = set(mntns_ids)
    found: dict[int, list[int]] = {}
    if not wanted:
        return found
    for entry in os.scandir(proc_root):
        if entry.name.isdigit():
            ino = ns_inode(f"{proc_root}/{entry.name}/ns/mnt")
            if ino in wanted:
                found.setdefault(ino, []).append(int(entry.name))
    return found


def target_netns(targets: set[int] | None, proc_root: str = "/proc") -> dict[int, str]:
    """{netns inode: a /proc path naming it}: the targets' namespaces, or the runner's own."""
    if targets is None:
        # The host's: pid 1's (a runner pod may have a namespace of its own), else ours.
        for path in (f"{proc_root}/1/ns/net", f"{proc_root}/self/ns/net"):
            ino = ns_inode(path)
            if ino is not None:
                return {ino: path}
        return {}
    out: dict[int, str] = {}
    for pids in pids_by_mntns(targets, proc_root).values():
        for pid in pids:
            path = f"{proc_root}/{pid}/ns/net"
            ino = ns_inode(path)
            if ino is not None and ino not in out:
                out[ino] = path
    return out


@contextlib.contextmanager
def entered(ns_fd: int) -> Iterator[None]:
    """Run the body with this thread in the network namespace `ns_fd` refers to."""
    if os.fstat(ns_fd).st_ino == ns_inode("/proc/thread-self/ns/net"):
        yield
        return
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        setns(ns_fd, CLONE_NEWNET)
        try:
            yield
        finally:
            try:
                setns(own, CLONE_NEWNET)
            except OSError as exc:
                raise RunnerError(f"returning to the runner's network namespace: {exc}") from None
    finally:
        os.close(own)
