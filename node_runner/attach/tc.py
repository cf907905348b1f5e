"""tc programs on an interface: a tcx link where the kernel has tcx, else a clsact qdisc filter.

A tcx link (Linux 6.6+) belongs to the runner's fd: when the runner ends, even by SIGKILL, the
kernel detaches it and nothing stays on the interface. Older kernels only have the clsact
qdisc, whose filters outlive a killed runner; so each filter made here carries a mark, and a
runner starting on an interface removes the marked filters whose runner is gone. The mark:
- program: the dispatcher, named DISPATCHER_NAME (libbpf names the filter "<name>:[<id>]");
- handle: the runner's pid (host pid namespace) << 8 | the program's index, plus
  HANDLE_QDISC_MADE when the clsact qdisc is a runner's (made by one, or holding a filter of
  one that says so: the last runner out then knows to remove it). A runner in another pid
  namespace sets HANDLE_UNKNOWN_OWNER and random bits instead of its pid: such a filter is
  never judged gone.
A marked filter is left behind when its pid holds no fd of its program (the runner keeps one
for as long as the filter exists; bpf fds are close-on-exec, so no child inherits it).
Anything else, a user's filters and qdiscs first of all, is never touched; a clsact qdisc is
removed only when it is a runner's and no filter of anyone is left on it. Programs go first:
a tcx link before the links already there, a filter at a priority before the interface's
other filters (observers see packets that a later filter would drop). The trap avoided:
taking a live runner's filter for a leftover, which would silently stop its gadget.
"""

from __future__ import annotations

import errno
import os
import secrets
from dataclasses import dataclass, field

from node_runner.attach.dispatch import DISPATCHER_NAME
from node_runner.attach.tc_netlink import TcFilter, list_filters
from node_runner.libbpf.library import LibbpfCallError
from node_runner.libbpf.tc import (
    TC_EGRESS,
    TC_INGRESS,
    tc_attach,
    tc_detach,
    tc_hook_create,
    tc_hook_destroy,
    tcx_attach,
)

MODES = ("auto", "tcx", "qdisc")
HANDLE_UNKNOWN_OWNER = 1 << 31
HANDLE_QDISC_MADE = 1 << 30
_PID_BITS = 22  # pids are below 2^22 (PID_MAX_LIMIT)
PROC_PID_INIT_INO = 0xEFFFFFFC  # the initial pid namespace's inode
_NO_TCX = {errno.EINVAL, errno.EOPNOTSUPP, 524}  # 524: ENOTSUPP (the kernel's own)


@dataclass
class TcAttachment:
    """One program on one side of one interface; what `TcAttacher.detach` needs."""

    ifindex: int
    ingress: bool
    link_fd: int = -1  # a tcx link
    handle: int = 0  # a qdisc filter
    priority: int = 0

    @property
    def qdisc_made(self) -> bool:
        return bool(self.handle & HANDLE_QDISC_MADE)


@dataclass
class Leftovers:
    filters: int = 0
    qdisc_removed: bool = False
    pids: set[int] = field(default_factory=set)


def is_runner_filter(f: TcFilter) -> bool:
    return f.kind == "bpf" and f.name.startswith(DISPATCHER_NAME + ":[")


def owner_pid(f: TcFilter) -> int:
    """The pid of the runner that made `f`; 0 when it cannot be told."""
    if f.handle & HANDLE_UNKNOWN_OWNER:
        return 0
    return f.handle >> 8 & ((1 << _PID_BITS) - 1)


def qdisc_made(f: TcFilter) -> bool:
    return is_runner_filter(f) and bool(f.handle & HANDLE_QDISC_MADE)


def holds_program(pid: int, prog_id: int) -> bool:
    """Whether process `pid` has an fd of program `prog_id` open."""
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return False
    want = f"prog_id:\t{prog_id}\n"
    for fd in fds:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii", errors="replace") as fh:
                if want in fh.read():
                    return True
        except OSError:
            continue
    return False


def in_initial_pid_namespace() -> bool:
    try:
        return os.stat("/proc/self/ns/pid").st_ino == PROC_PID_INIT_INO
    except OSError:
        return False


class TcAttacher:
    """Attaches and detaches the tc programs of one runner (in the caller's netns)."""

    def __init__(self, mode: str = "auto") -> None:
        if mode not in MODES:
            raise ValueError(f"tc attach mode {mode!r}: not one of {', '.join(MODES)}")
        self.mode = mode
        self.tcx = mode != "qdisc"
        self.no_tcx_reason = "" if self.tcx else "--tc-attach qdisc"
        self.used: set[str] = set()
        self._judge_owners = in_initial_pid_namespace()

    def _handle(self, index: int, made: bool) -> int:
        flag = HANDLE_QDISC_MADE if made else 0
        pid = os.getpid()
        if self._judge_owners and 0 < pid < 1 << _PID_BITS and index < 0xFF:
            return flag | pid << 8 | (index + 1)
        return HANDLE_UNKNOWN_OWNER | flag | secrets.randbits(30)

    def remove_leftovers(self, ifindex: int) -> Leftovers:
        """Remove the marked filters on `ifindex` whose runner is gone (and the clsact qdisc
        when it was a runner's and is left empty)."""
        out = Leftovers()
        if not self._judge_owners:  # pids in handles are not ours to look up
            return out
        gone = [f for f in list_filters(ifindex) if is_runner_filter(f) and owner_pid(f)
                and f.prog_id and not holds_program(owner_pid(f), f.prog_id)]
        for f in gone:
            point = TC_INGRESS if f.ingress else TC_EGRESS
            try:
                tc_detach(ifindex, point, f.handle, f.priority)
            except LibbpfCallError as exc:
                if exc.errno != errno.ENOENT:  # ENOENT: another runner was quicker
                    raise
                continue
            out.filters += 1
            out.pids.add(owner_pid(f))
        if any(qdisc_made(f) for f in gone) and not list_filters(ifindex):
            out.qdisc_removed = self._destroy_qdisc(ifindex)
        return out

    def attach(self, ifindex: int, ingress: bool, prog_fd: int, index: int) -> TcAttachment:
        if self.tcx:
            try:
                fd = tcx_attach(prog_fd, ifindex, ingress, first=True)
            except LibbpfCallError as exc:
                if self.mode == "tcx" or exc.errno not in _NO_TCX:
                    raise
                self.tcx = False
                self.no_tcx_reason = f"no tcx on this kernel ({exc.message.split(': ')[-1]})"
            else:
                self.used.add("tcx")
                return TcAttachment(ifindex, ingress, link_fd=fd)
        return self._attach_filter(ifindex, ingress, prog_fd, index)

    def _attach_filter(self, ifindex: int, ingress: bool, prog_fd: int,
                       index: int) -> TcAttachment:
        point = TC_INGRESS if ingress else TC_EGRESS
        for attempt in range(3):
            created = tc_hook_create(ifindex)
            present = list_filters(ifindex)
            made = created or any(qdisc_made(f) for f in present)
            prios = [f.priority for f in present if f.ingress == ingress]
            # Before the others where there is room; else the kernel's choice (0).
            prio = min(prios) - 1 if prios and min(prios) > 1 else 0
            handle = self._handle(index, made)
            try:
                prio = tc_attach(ifindex, point, prog_fd, handle, prio)
            except LibbpfCallError as exc:
                # The qdisc went away between its check and the attach (the last runner on it
                # left): make it again.
                if exc.errno not in (errno.ENOENT, errno.EINVAL) or attempt == 2:
                    raise
                continue
            self.used.add("qdisc")
            return TcAttachment(ifindex, ingress, handle=handle, priority=prio)
        raise AssertionError("unreachable")

    def detach(self, attachments: list[TcAttachment]) -> None:
        """Detach these (tcx links closed, filters removed), then remove each clsact qdisc a
        runner made that no filter is left on. An interface that is gone is skipped."""
        made: set[int] = set()
        for a in reversed(attachments):
            if a.link_fd >= 0:
                os.close(a.link_fd)
                a.link_fd = -1
                continue
            point = TC_INGRESS if a.ingress else TC_EGRESS
            try:
                tc_detach(a.ifindex, point, a.handle, a.priority)
            except LibbpfCallError:
                continue  # the interface went away with its filters
            if a.qdisc_made:
                made.add(a.ifindex)
        for ifindex in made:
            try:
                empty = not list_filters(ifindex)
            except OSError:
                continue
            if empty:
                self._destroy_qdisc(ifindex)

    @staticmethod
    def _destroy_qdisc(ifindex: int) -> bool:
        try:
            tc_hook_destroy(ifindex)
        except LibbpfCallError:
            return False  # gone already (another runner, or the interface)
        return True

    def describe(self) -> str:
        """Which attach method ran, for the runner's log."""
        tcx = "tcx links (the kernel detaches them when the runner exits)"
        qdisc = (f"filters on clsact qdiscs ({self.no_tcx_reason}; what a killed runner "
                 "leaves is removed by the next runner on the interface)")
        if self.used == {"tcx"}:
            return tcx
        if self.used == {"qdisc"}:
            return qdisc
        return f"{tcx}, and {qdisc}" if self.used else "nothing attached"
