"""The tc filters on an interface's clsact qdisc, read with one rtnetlink dump per side.

libbpf can add and remove a tc filter whose handle and priority it is told, but cannot list
them; finding what an earlier runner left behind needs the list (priority, handle, kind, the
bpf program's name and id). This is the `tc filter show dev X ingress|egress` request, made
on a netlink socket of the calling thread's network namespace. The trap avoided: treating a
device without a clsact qdisc (the kernel answers the dump with an error) as a failure; it
simply has no filters.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass

NETLINK_ROUTE = 0
RTM_NEWTFILTER, RTM_GETTFILTER = 44, 46
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_BPF_NAME, TCA_BPF_ID = 7, 11
INGRESS_PARENT, EGRESS_PARENT = 0xFFFFFFF2, 0xFFFFFFF3  # TC_H_MAKE(TC_H_CLSACT, MIN_*)
_NLMSG = struct.Struct("=IHHII")
_TCMSG = struct.Struct("=BxxxiIII")
_NLA = struct.Struct("=HH")


@dataclass(frozen=True)
class TcFilter:
    ingress: bool
    priority: int
    handle: int
    kind: str
    name: str = ""  # a bpf filter's name: "<program name>:[<program id>]" as libbpf sets it
    prog_id: int = 0


def _attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    off = 0
    while off + _NLA.size <= len(data):
        length, kind = _NLA.unpack_from(data, off)
        if length < _NLA.size:
            return
        yield kind & 0x3FFF, data[off + _NLA.size:off + length]
        off += (length + 3) & ~3


def _filter(ingress: bool, body: bytes) -> TcFilter | None:
    if len(body) < _TCMSG.size:
        return None
    _family, _ifindex, handle, _parent, info = _TCMSG.unpack_from(body)
    if handle == 0:  # the priority's own entry (its classifier), not a filter
        return None
    kind, options, name, prog_id = "", b"", "", 0
    for attr, value in _attrs(body[_TCMSG.size:]):
        if attr == TCA_KIND:
            kind = value.rstrip(b"\0").decode("utf-8", "replace")
        elif attr == TCA_OPTIONS:
            options = value
    for opt, v in _attrs(options) if kind == "bpf" else ():  # options are per kind
        if opt == TCA_BPF_NAME:
            name = v.rstrip(b"\0").decode("utf-8", "replace")
        elif opt == TCA_BPF_ID and len(v) >= 4:
            prog_id = int.from_bytes(v[:4], "little")
    return TcFilter(ingress, info >> 16, handle, kind, name, prog_id)


def _dump(sock: socket.socket, ifindex: int, ingress: bool) -> list[TcFilter]:
    parent = INGRESS_PARENT if ingress else EGRESS_PARENT
    seq = 1 if ingress else 2
    req = _TCMSG.pack(socket.AF_UNSPEC, ifindex, 0, parent, 0)
    sock.send(_NLMSG.pack(_NLMSG.size + len(req), RTM_GETTFILTER, NLM_F_REQUEST | NLM_F_DUMP,
                          seq, 0) + req)
    found: list[TcFilter] = []
    while True:
        data = sock.recv(1 << 16)
        off = 0
        while off + _NLMSG.size <= len(data):
            length, kind, _flags, _seq, _pid = _NLMSG.unpack_from(data, off)
            if length < _NLMSG.size:
                return found
            body = data[off + _NLMSG.size:off + length]
            off += (length + 3) & ~3
            if kind == NLMSG_DONE:
                return found
            if kind == NLMSG_ERROR:
                err = -struct.unpack_from("=i", body)[0] if len(body) >= 4 else 0
                if err == 0:
                    continue
                if err in (2, 22):  # ENOENT, EINVAL: no clsact qdisc, so no filters
                    return found
                raise OSError(err, os.strerror(err))
            if kind == RTM_NEWTFILTER:
                f = _filter(ingress, body)
                if f is not None:
                    found.append(f)


def list_filters(ifindex: int) -> list[TcFilter]:
    """The filters on both sides of the clsact qdisc of `ifindex`, in this thread's netns."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                       NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        return _dump(sock, ifindex, True) + _dump(sock, ifindex, False)
