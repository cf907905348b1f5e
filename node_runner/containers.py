"""Know which container a mount namespace belongs to on this node, and the other way round.

One job: keep a table of the node's containers built from ``/proc`` (mount namespace + cgroup
of every process) and the runtimes' state files, so that the runner can (a) enrich an event,
which carries the mntns id of its task, with container/pod names, and (b) turn the container ids
or names a user targets into the mntns ids of the in-kernel filter map.

Traps avoided:
- Lookups run once per event, so a hit is a dict get and a miss does not rescan ``/proc`` each
  time: at most one rescan per ``min_rescan_interval`` (a new container is found within about a
  second), the host's mntns never triggers one, and namespaces already seen as "not a
  container" (systemd services with private mounts, ...) are rechecked only every
  ``negative_recheck_interval``, so a flood of host events costs no scans.
- Processes come and go during a scan: a pid that vanishes mid-scan is skipped, not an error.
- The host mntns is never mapped to a container, even if a host process sits in a container's
  cgroup (``nsenter -t 1 -m`` from a privileged pod), or every host event would be misnamed.
- Readers and the rescanning thread never see a half-built table: each scan builds a new
  immutable snapshot and swaps it in with one assignment.
- A container that ends between an event and its enrichment (a top's row is read up to an
  interval after its samples) keeps its name: the table remembers the last containers of
  namespaces no live process holds any more (``gone``), and forgets one as soon as a scan
  finds its namespace id held again (ids are reused). Without it, such a row named no
  container at all, and a cluster client, which keeps rows naming none, showed it.
- A container whose processes' mount namespaces may not be read (a runner without
  CAP_SYS_PTRACE) is not dropped silently: its id is kept as unreadable, so a run that targets
  it can say why instead of filtering on nothing.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from node_runner.cgroups import (
    CgroupIdentity,
    container_of_pid,
    parse_cgroup,
    parse_cgroup_path,
)
from node_runner.container_info import Container, ContainerMetadata, build_container
from node_runner.mntns import host_mntns, scan_processes
from node_runner.runtime_state import RuntimeInfo, RuntimePaths, read_runtime_info

__all__ = [
    "AmbiguousContainerError",
    "ContainerSelectorError",
    "ContainerTable",
    "RuntimePaths",
    "container_of_pid",
    "parse_cgroup",
    "parse_cgroup_path",
]

MIN_ID_PREFIX = 12
GONE_KEPT = 1024  # containers remembered after their namespace is left by its last process
_ID_SCHEME = re.compile(r"^[a-z-]+://")
_HEX = re.compile(r"[0-9a-f]+")


class ContainerSelectorError(ValueError):
    """A container id or name given to target containers cannot be used as it is."""


class AmbiguousContainerError(ContainerSelectorError):
    """A container id prefix matches more than one container."""


def _norm_id(value: str) -> str:
    return _ID_SCHEME.sub("", value.strip().lower())


@dataclass(frozen=True)
class _Snapshot:
    scanned_at: float
    by_mntns: Mapping[int, Container] = field(default_factory=dict)
    by_id: Mapping[str, Container] = field(default_factory=dict)
    mntns_by_id: Mapping[str, frozenset[int]] = field(default_factory=dict)
    not_containers: frozenset[int] = frozenset()
    unreadable: frozenset[str] = frozenset()  # container ids seen, no mntns readable
    gone: Mapping[int, Container] = field(default_factory=dict)  # held by no live process


class ContainerTable:
    """Containers of this node by mntns id and by container id, rescanned on demand."""

    def __init__(
        self,
        proc_root: str = "/proc",
        paths: RuntimePaths | None = None,
        *,
        extra_metadata: Mapping[str, ContainerMetadata] | None = None,
        min_rescan_interval: float = 1.0,
        negative_recheck_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.proc_root = proc_root
        self.paths = paths or RuntimePaths()
        self.min_rescan_interval = min_rescan_interval
        self.negative_recheck_interval = negative_recheck_interval
        self._clock = clock
        self._extra: dict[str, ContainerMetadata] = {}
        self._state_cache: dict[tuple[str, str], tuple[str, RuntimeInfo | None]] = {}
        self._lock = threading.Lock()
        self.scans = 0
        self.host_mntns = host_mntns(proc_root)
        self._snapshot = _Snapshot(scanned_at=float("-inf"))
        self.set_extra_metadata(extra_metadata or {})

    def set_extra_metadata(self, extra_metadata: Mapping[str, ContainerMetadata]) -> None:
        """Replace the client-provided metadata and rescan so it takes effect."""
        self._extra = {_norm_id(k): v for k, v in extra_metadata.items()}
        self.refresh()

    def refresh(self) -> None:
        """Rescan ``/proc`` and the runtimes' state now."""
        with self._lock:
            self._snapshot = self._build()

    def _read_state(self, identity: CgroupIdentity) -> tuple[str, RuntimeInfo | None]:
        key = (identity.runtime, identity.container_id)
        cached = self._state_cache.get(key)
        if cached is None or cached[1] is None:
            cached = read_runtime_info(identity.runtime, identity.container_id, self.paths)
            self._state_cache[key] = cached
        return cached

    def _build(self) -> _Snapshot:
        self.scans += 1
        by_mntns: dict[int, Container] = {}
        by_id: dict[str, Container] = {}
        mntns_by_id: dict[str, set[int]] = {}
        seen: set[int] = set()
        denied: set[str] = set()
        scanned = sorted(scan_processes(self.proc_root), key=lambda item: item[0])
        for pid, mntns, identity in scanned:
            if mntns is None:
                if identity is not None:
                    denied.add(identity.container_id)
                continue
            seen.add(mntns)
            if identity is None or mntns == self.host_mntns or mntns in by_mntns:
                continue
            cid = identity.container_id
            if cid not in by_id:
                state = self._read_state(identity)
                by_id[cid] = build_container(identity, pid, mntns, state, self._extra)
            by_mntns[mntns] = by_id[cid]
            mntns_by_id.setdefault(cid, set()).add(mntns)
        self._state_cache = {k: v for k, v in self._state_cache.items() if k[1] in by_id}
        old = self._snapshot
        gone = {ns: c for ns, c in {**old.gone, **old.by_mntns}.items() if ns not in seen}
        if len(gone) > GONE_KEPT:  # the most recently gone are last (dict order)
            gone = dict(list(gone.items())[-GONE_KEPT:])
        return _Snapshot(
            scanned_at=self._clock(),
            by_mntns=by_mntns,
            by_id=by_id,
            mntns_by_id={k: frozenset(v) for k, v in mntns_by_id.items()},
            not_containers=frozenset(seen - by_mntns.keys()),
            unreadable=frozenset(denied - by_id.keys()),
            gone=gone,
        )

    def _rescan_if_older(self, age: float) -> bool:
        """Rescan unless the table is younger than ``age`` seconds; True if it rescanned."""
        with self._lock:
            if self._clock() - self._snapshot.scanned_at < age:
                return False
            self._snapshot = self._build()
            return True

    def lookup_mntns(self, mntns_id: int) -> Container | None:
        """The container whose processes are in this mount namespace, None for the host; a
        container gone since (no live process holds the namespace) is still named."""
        snapshot = self._snapshot
        found = snapshot.by_mntns.get(mntns_id)
        if found is not None or mntns_id == self.host_mntns:
            return found
        age = self._clock() - snapshot.scanned_at
        if mntns_id in snapshot.not_containers:
            recheck = self.negative_recheck_interval
        else:
            recheck = self.min_rescan_interval
        if age >= recheck and self._rescan_if_older(recheck):
            snapshot = self._snapshot
            found = snapshot.by_mntns.get(mntns_id)
        return found if found is not None else snapshot.gone.get(mntns_id)

    def non_container_mntns(self) -> frozenset[int]:
        """Mount namespaces the last scan found held only by processes of no container."""
        return self._snapshot.not_containers

    def containers(self) -> list[Container]:
        """Every container found by the last scan, by container id."""
        return sorted(self._snapshot.by_id.values(), key=lambda c: c.container_id)

    def unreadable(self) -> frozenset[str]:
        """Container ids the last scan saw whose mount namespace could not be read."""
        return self._snapshot.unreadable

    def unreadable_targets(self, ids: Iterable[str], names: Iterable[str],
                           found: Iterable[Container]) -> list[str]:
        """Unreadable containers that unresolved selectors may mean: those whose id starts
        with a wanted id; all of them for a wanted name (unknown until a container is read)."""
        got, out = list(found), set()
        for wanted in map(_norm_id, ids):
            if not any(c.container_id.startswith(wanted) for c in got):
                out |= {cid for cid in self._snapshot.unreadable if cid.startswith(wanted)}
        if any(not any(n in (c.name, c.k8s_container_name) for c in got) for n in names):
            out |= self._snapshot.unreadable
        return sorted(out)

    def mntns_ids(self, container: Container) -> frozenset[int]:
        """All mount namespaces of a container's processes (usually just ``mntns_id``)."""
        return self._snapshot.mntns_by_id.get(container.container_id, frozenset())

    def resolve(
        self, container_ids: Iterable[str] = (), names: Iterable[str] = ()
    ) -> list[Container]:
        """Containers named by full id, unique id prefix (>= 12 chars) or name.

        A name matches the runtime's container name or the Kubernetes container name (every
        container with that name). Ids and names that match nothing are left out (the caller
        compares); a prefix that matches several containers raises ``AmbiguousContainerError``.
        One rescan is made first if something is missing and the table is not fresh.
        """
        ids = [_checked_id(value) for value in container_ids]
        wanted_names = list(names)
        found, complete = self._match(ids, wanted_names)
        if not complete and self._rescan_if_older(self.min_rescan_interval):
            found, complete = self._match(ids, wanted_names)
        return sorted(found.values(), key=lambda c: c.container_id)

    def _match(self, ids: list[str], names: list[str]) -> tuple[dict[str, Container], bool]:
        by_id = self._snapshot.by_id
        found: dict[str, Container] = {}
        complete = True
        for wanted in ids:
            hits = [c for cid, c in by_id.items() if cid.startswith(wanted)]
            if len(hits) > 1 and wanted not in by_id:
                shown = ", ".join(sorted(c.container_id[:MIN_ID_PREFIX] for c in hits))
                raise AmbiguousContainerError(
                    f"resolving container id {wanted!r}: it matches {len(hits)} containers"
                    f" ({shown}); give more characters"
                )
            if wanted in by_id:
                hits = [by_id[wanted]]
            complete = complete and bool(hits)
            found.update((c.container_id, c) for c in hits)
        for name in names:
            hits = [c for c in by_id.values() if name in (c.name, c.k8s_container_name)]
            complete = complete and bool(hits)
            found.update((c.container_id, c) for c in hits)
        return found, complete


def _checked_id(value: str) -> str:
    wanted = _norm_id(value)
    if not _HEX.fullmatch(wanted):
        raise ContainerSelectorError(f"resolving container id {value!r}: not a hex container id")
    if len(wanted) < MIN_ID_PREFIX:
        raise ContainerSelectorError(
            f"resolving container id {value!r}: a prefix needs at least {MIN_ID_PREFIX} characters"
        )
    return wanted
