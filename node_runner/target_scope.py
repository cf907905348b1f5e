"""Which mount namespaces a run traces, and what to say when containers cannot be read.

One job: turn the container selectors of a run into the set of mount namespaces the in-kernel
filter keeps (None: the whole host), with a clear error when a selected container's namespace
cannot be read, and a warning text for whole-host runs that cannot tell containers apart.
The trap avoided: a missing CAP_SYS_PTRACE silently meaning "no container" (a filter letting
nothing through, or container events shown as host processes).
"""

from __future__ import annotations

from node_runner import system
from node_runner.containers import ContainerSelectorError, ContainerTable
from node_runner.errors import PermissionDenied, UsageError


def target_mntns(table: ContainerTable, container_ids: tuple[str, ...],
                 container_names: tuple[str, ...], mntns_ids: tuple[int, ...],
                 cluster: bool) -> set[int] | None:
    """Mount namespaces to filter on, or None to trace the whole host."""
    if not (container_ids or container_names or mntns_ids):
        return None
    mntns = set(mntns_ids)
    if container_ids or container_names:
        try:
            found = table.resolve(container_ids, container_names)
        except ContainerSelectorError as exc:
            raise UsageError(str(exc)) from None
        denied = table.unreadable_targets(container_ids, container_names, found)
        if denied:
            raise PermissionDenied(_unreadable_message(denied))
        if not found and not cluster:
            wanted = ", ".join(container_ids + container_names)
            raise UsageError(f"resolving containers: no running container matches {wanted}")
        for c in found:
            mntns |= table.mntns_ids(c) or {c.mntns_id}
    return mntns


def _unreadable_message(ids: list[str]) -> str:
    return (f"resolving containers: the mount namespace of container "
            f"{', '.join(c[:12] for c in ids)} cannot be read (permission denied): "
            f"{_unreadable_why()}")


def unattributed_message(ids: list[str]) -> str:
    """A whole-host run that cannot tell some containers apart: their events carry no
    container, which would otherwise look like host processes."""
    return (f"{len(ids)} container(s) on this node cannot be identified ({ids[0][:12]}"
            f"{', ...' if len(ids) > 1 else ''}): {_unreadable_why()}; their events show no "
            "container")


def _unreadable_why() -> str:
    return ("the runner lacks CAP_SYS_PTRACE, which reading another process's /proc/<pid>/ns/mnt "
            "needs (grant it)" if not system.has_capability(system.CAP_SYS_PTRACE) else
            "reading their mount namespace was refused although the runner has CAP_SYS_PTRACE "
            "(a security module?)")
