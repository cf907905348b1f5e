"""Per-namespace dispatchers: tell a socket filter or tc program which network namespace it
runs in, the way IG's runtime does.

IG's networking gadgets read the namespace inode from `skb->cb[0]` (see gadget_socket_lookup
in <gadget/sockets-map.h>); IG sets it with a tiny program per namespace that tail-calls the
gadget's. The same is done here with seven instructions assembled in place (no compiler on
the node): the gadget's program sits in a one-slot program array; each namespace gets its
own dispatcher with the inode as an immediate. The trap avoided: a store-immediate into the
context, which the verifier refuses; the value goes through a register.
"""

from __future__ import annotations

import os
import struct

from node_runner.libbpf.maps import BPF_MAP_TYPE_PROG_ARRAY, create_map, map_update
from node_runner.libbpf.objects import load_raw_program

_CB0_OFFSET = 48          # offsetof(struct __sk_buff, cb[0])
_BPF_FUNC_TAIL_CALL = 12
TC_ACT_UNSPEC = -1
DISPATCHER_NAME = "kg_disp"  # tc leftovers of a killed runner are recognised by it (tc.py)


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


def dispatcher_code(netns: int, prog_array_fd: int, fallback: int) -> bytes:
    """cb[0] = netns; tail-call slot 0 of the array; return `fallback` if that fails."""
    imm = netns - (1 << 32) if netns >= 1 << 31 else netns
    return b"".join((
        _insn(0xb4, dst=2, imm=imm),                 # w2 = netns
        _insn(0x63, dst=1, src=2, off=_CB0_OFFSET),  # *(u32 *)(r1 + cb[0]) = w2
        _insn(0x18, dst=2, src=1, imm=prog_array_fd), _insn(0),  # r2 = &prog_array
        _insn(0xb7, dst=3, imm=0),                   # r3 = 0
        _insn(0x85, imm=_BPF_FUNC_TAIL_CALL),        # tail_call(ctx, r2, r3)
        _insn(0xb7, dst=0, imm=fallback),            # r0 = fallback
        _insn(0x95),                                 # exit
    ))


class Dispatcher:
    """The program array of one gadget program and its dispatchers, one per namespace."""

    def __init__(self, name: str, prog_type: int, prog_fd: int, fallback: int) -> None:
        self.name, self.prog_type, self.fallback = name, prog_type, fallback
        self._array = create_map(BPF_MAP_TYPE_PROG_ARRAY, "kg_dispatch", 4, 4, 1)
        self._fds: dict[int, int] = {}
        try:
            map_update(self._array, b"\0\0\0\0", prog_fd.to_bytes(4, "little"))
        except BaseException:
            os.close(self._array)
            raise

    def fd_for(self, netns: int) -> int:
        """The dispatcher program of namespace `netns` (loaded on first use)."""
        if netns not in self._fds:
            code = dispatcher_code(netns, self._array, self.fallback)
            self._fds[netns] = load_raw_program(self.prog_type, DISPATCHER_NAME, code)
        return self._fds[netns]

    def release(self, netns: int) -> None:
        fd = self._fds.pop(netns, None)
        if fd is not None:
            os.close(fd)

    def close(self) -> None:
        for netns in list(self._fds):
            self.release(netns)
        if self._array >= 0:
            os.close(self._array)
            self._array = -1
