"""Socket filters and tc programs attached in every target network namespace.

A socket filter runs on a raw AF_PACKET socket opened inside the namespace (it then sees every
packet of every interface there, loopback included); a tc program runs on each interface of
the namespace but `lo`, as a tcx link or a clsact qdisc filter (tc.py, which also removes what
a killed runner left on an interface before anything is attached to it). Both run behind a
dispatcher that tells them the namespace (dispatch.py). The set follows the targets:
namespaces of new targets are added, those no target uses any more are released. The trap
avoided: leaving qdiscs and filters behind; each attachment made here is recorded and undone
on close, inside its namespace.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from node_runner.attach import netns
from node_runner.attach.dispatch import TC_ACT_UNSPEC, Dispatcher
from node_runner.attach.tc import TcAttacher, TcAttachment
from node_runner.errors import NotSupported
from node_runner.libbpf.library import LibbpfCallError
from node_runner.libbpf.objects import BPF_PROG_TYPE_SCHED_CLS, BPF_PROG_TYPE_SOCKET_FILTER

SO_ATTACH_BPF = 50
ETH_P_ALL = 0x0003


@dataclass
class _Namespace:
    inode: int
    fd: int
    sockets: list[socket.socket] = field(default_factory=list)
    tc: list[TcAttachment] = field(default_factory=list)


class NetworkAttachments:
    """Socket filter and tc programs of one gadget, attached per network namespace."""

    def __init__(self, gadget: str, socket_progs: list[tuple[str, int]],
                 tc_progs: list[tuple[str, int, bool]], proc_root: str = "/proc",
                 tc_mode: str = "auto") -> None:
        self.gadget, self.proc_root = gadget, proc_root
        self.notices: list[str] = []  # what was attached how, and leftovers removed
        self._attacher = TcAttacher(tc_mode)
        self._sock = [Dispatcher(name, BPF_PROG_TYPE_SOCKET_FILTER, fd, 0)
                      for name, fd in socket_progs]
        self._tc = [(Dispatcher(name, BPF_PROG_TYPE_SCHED_CLS, fd, TC_ACT_UNSPEC), ingress)
                    for name, fd, ingress in tc_progs]
        self._ns: dict[int, _Namespace] = {}

    def __bool__(self) -> bool:
        return bool(self._sock or self._tc)

    def refresh(self, targets: set[int] | None) -> None:
        """Attach in the targets' namespaces (the runner's own for None); release the rest."""
        if not self:
            return
        wanted = netns.target_netns(targets, self.proc_root)
        for inode in set(self._ns) - set(wanted):
            self._release(self._ns.pop(inode))
        for inode, path in wanted.items():
            if inode not in self._ns:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue  # the process left between the scan and now
                ns = self._ns[inode] = _Namespace(inode, fd)
                self._attach(ns)

    def namespaces(self) -> list[int]:
        return sorted(self._ns)

    def _attach(self, ns: _Namespace) -> None:
        where = f"attaching network programs of gadget {self.gadget} in netns {ns.inode}"
        try:
            with netns.entered(ns.fd):
                for disp in self._sock:
                    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW,
                                         socket.htons(ETH_P_ALL))
                    ns.sockets.append(sock)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 0)
                    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, disp.fd_for(ns.inode))
                if self._tc:
                    self._attach_tc(ns)
        except LibbpfCallError as exc:
            raise NotSupported(f"{where}: {exc.message}", detail=exc.log) from None
        except OSError as exc:
            raise NotSupported(f"{where}: {exc.strerror or exc}") from None

    def _attach_tc(self, ns: _Namespace) -> None:
        interfaces = [(i, n) for i, n in socket.if_nameindex() if n != "lo"]
        for ifindex, name in interfaces:
            left = self._attacher.remove_leftovers(ifindex)
            if left.filters:
                pids = ", ".join(str(p) for p in sorted(left.pids))
                self.notices.append(
                    f"removed {left.filters} tc filter(s) left on {name} in netns {ns.inode} "
                    f"by a runner that is gone (pid {pids})"
                    + (" and the clsact qdisc it had added" if left.qdisc_removed else ""))
            for index, (disp, ingress) in enumerate(self._tc):
                ns.tc.append(self._attacher.attach(ifindex, ingress, disp.fd_for(ns.inode),
                                                   index))
        self.notices.append(f"tc programs of gadget {self.gadget} on {len(interfaces)} "
                            f"interface(s) of netns {ns.inode}: {self._attacher.describe()}")

    def _release(self, ns: _Namespace) -> None:
        for sock in ns.sockets:
            sock.close()
        ns.sockets.clear()
        try:
            if ns.tc:
                with netns.entered(ns.fd):
                    self._attacher.detach(ns.tc)
        finally:
            ns.tc.clear()
            os.close(ns.fd)
            for disp in self._sock:
                disp.release(ns.inode)
            for disp, _ in self._tc:
                disp.release(ns.inode)

    def close(self) -> None:
        while self._ns:
            self._release(self._ns.popitem()[1])
        for disp in self._sock:
            disp.close()
        for disp, _ in self._tc:
            disp.close()
