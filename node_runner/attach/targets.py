"""The gadget programs the runner attaches per target, as one object for the loader.

Before load, `claim` takes the programs whose section asks for a per-target attach (kinds.py)
and sets the program type libbpf cannot infer from IG's section names; after load, `attach`
puts them on the targets (network namespaces, library files) and `refresh` follows the
targets as containers come and go.
"""

from __future__ import annotations

from node_runner.attach import kinds
from node_runner.attach.network import NetworkAttachments
from node_runner.attach.uprobes import UprobeAttachments
from node_runner.libbpf.objects import (
    BPF_PROG_TYPE_SCHED_CLS,
    BPF_PROG_TYPE_SOCKET_FILTER,
    BpfProgram,
)


class TargetAttachments:
    def __init__(self, gadget: str, proc_root: str = "/proc", tc_mode: str = "auto") -> None:
        self.gadget, self.proc_root, self.tc_mode = gadget, proc_root, tc_mode
        self._claimed: list[tuple[BpfProgram, kinds.Kind]] = []
        self._net: NetworkAttachments | None = None
        self._uprobes = UprobeAttachments(gadget, proc_root)

    def claim(self, prog: BpfProgram) -> bool:
        """Take `prog` if it is attached per target; set its type. Call before load."""
        kind = kinds.classify(prog.section)
        if kind.kind == kinds.DEFAULT:
            return False
        if kind.kind == kinds.SOCKET_FILTER:
            prog.set_type(BPF_PROG_TYPE_SOCKET_FILTER)
        elif kind.kind == kinds.TC:
            prog.set_type(BPF_PROG_TYPE_SCHED_CLS)
        self._claimed.append((prog, kind))
        return True

    @property
    def per_netns(self) -> bool:
        """Socket filter or tc programs: attached in the targets' network namespaces only."""
        return any(k.kind in (kinds.SOCKET_FILTER, kinds.TC) for _, k in self._claimed)

    def claims(self, name: str) -> bool:
        return any(prog.name == name for prog, _ in self._claimed)

    @property
    def warnings(self) -> list[str]:
        return self._uprobes.warnings

    def take_notices(self) -> list[str]:
        """What the attachments did since the last call (lines for the runner's log)."""
        if self._net is None:
            return []
        notices, self._net.notices = self._net.notices, []
        return notices

    def attach(self, targets: set[int] | None) -> None:
        socks = [(p.name, p.fd) for p, k in self._claimed if k.kind == kinds.SOCKET_FILTER]
        tcs = [(p.name, p.fd, k.ingress) for p, k in self._claimed if k.kind == kinds.TC]
        if socks or tcs:
            self._net = NetworkAttachments(self.gadget, socks, tcs, self.proc_root,
                                           self.tc_mode)
        for prog, kind in self._claimed:
            if kind.kind == kinds.UPROBE:
                self._uprobes.add(prog, kind.library, kind.symbol, kind.retprobe)
        self.refresh(targets)

    def refresh(self, targets: set[int] | None) -> None:
        if self._net is not None:
            self._net.refresh(targets)
        self._uprobes.refresh(targets)

    def network_namespaces(self) -> list[int]:
        return self._net.namespaces() if self._net is not None else []

    def close(self) -> None:
        self._uprobes.close()
        if self._net is not None:
            self._net.close()
            self._net = None
