"""Stack fields of array rows: stack ids in, readable frames out.

A `gadget_kernel_stack` field holds an id into the gadget's `ig_kstack` stack-trace map; a
`struct gadget_user_stack` member holds an id into `ig_ustack` plus the pid the addresses
belong to. For each row this reads the addresses by id and names them (symbols.py): the
kernel field's value becomes the frames, innermost first, joined by `; `; a user stack member
`ustack` gets a string field `ustack.symbols` after its (hidden) numeric members, so JSON
output nests it with them; the schema announces both before any row (gadget/arrays.py,
`array_fields`). A frame nothing names shows its address; a stack id the map does not hold
(lost, or the sample failed) gives an empty string. Nothing here fails a row.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from node_runner.gadget.arrays import kernel_stack_fields, user_stack_members
from node_runner.gadget.spec import DatasourceSpec
from node_runner.libbpf.library import LibbpfCallError
from node_runner.libbpf.maps import map_lookup
from node_runner.symbols import KernelSymbols, UserSymbols

STACK_DEPTH = 127
SEPARATOR = "; "
RowHook = Callable[[dict[str, object]], None]


class StackResolver:
    """Reads stacks from the gadget's stack maps by id and names their frames."""

    def __init__(self, kstack_fd: int | None, ustack_fd: int | None,
                 proc_root: str = "/proc") -> None:
        self.kstack_fd, self.ustack_fd = kstack_fd, ustack_fd
        self._kernel: KernelSymbols | None = None
        self.user = UserSymbols(proc_root)
        self.own_pidns = _pidns(proc_root)

    def _addresses(self, fd: int | None, stack_id: int) -> list[int]:
        if fd is None or not 0 <= stack_id < 0xFFFFFFFF:
            return []
        try:
            raw = map_lookup(fd, stack_id.to_bytes(4, "little"), STACK_DEPTH * 8)
        except LibbpfCallError:
            return []
        if raw is None:
            return []
        addrs = [int.from_bytes(raw[i:i + 8], "little") for i in range(0, len(raw), 8)]
        return addrs[:addrs.index(0)] if 0 in addrs else addrs

    def kernel(self, stack_id: int) -> str:
        if self._kernel is None:
            self._kernel = KernelSymbols()
        names = self._kernel
        return SEPARATOR.join(names.name(a) or f"{a:#x}"
                              for a in self._addresses(self.kstack_fd, stack_id))

    def user_stack(self, row: dict[str, object], prefix: str) -> str:
        pid = row.get(f"{prefix}.pid_level0")
        if self.own_pidns and row.get(f"{prefix}.pidns_level1") == self.own_pidns:
            pid = row.get(f"{prefix}.pid_level1")
        stack_id = row.get(f"{prefix}.stack_id")
        if not isinstance(pid, int) or not isinstance(stack_id, int):
            return ""
        return SEPARATOR.join(self.user.name(pid, a) or f"{a:#x}"
                              for a in self._addresses(self.ustack_fd, stack_id))

    def hook(self, ds: DatasourceSpec) -> RowHook | None:
        """The per-row function filling `ds`'s stack fields, None when it has none."""
        kernel, users = kernel_stack_fields(ds), user_stack_members(ds)
        if not kernel and not users:
            return None

        def fill(row: dict[str, object]) -> None:
            for name in kernel:
                value = row.get(name)
                row[name] = self.kernel(value) if isinstance(value, int) else ""
            for prefix in users:
                row[f"{prefix}.symbols"] = self.user_stack(row, prefix)

        return fill


def _pidns(proc_root: str) -> int:
    """The inode of the pid namespace of `proc_root`'s processes seen from here (0: unknown)."""
    try:
        return os.stat(f"{proc_root}/self/ns/pid").st_ino
    except OSError:
        return 0
