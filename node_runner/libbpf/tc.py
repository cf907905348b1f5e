"""Traffic control attachment: clsact qdiscs, direct-action tc filters and tcx links.

The trap this avoids: these calls act on the network namespace of the calling thread, so the
caller enters the namespace first; the hook and option structs are sized (`sz`) so libbpf
accepts them across its 1.x versions.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod

from node_runner.libbpf.library import check, lib

_c_int = ctypes.c_int
_c_uint32 = ctypes.c_uint32
_c_size_t = ctypes.c_size_t


class _TcHook(ctypes.Structure):
    _fields_ = [("sz", _c_size_t), ("ifindex", _c_int), ("attach_point", _c_int),
                ("parent", _c_uint32)]


class _TcOpts(ctypes.Structure):
    _fields_ = [("sz", _c_size_t), ("prog_fd", _c_int), ("flags", _c_uint32),
                ("prog_id", _c_uint32), ("handle", _c_uint32), ("priority", _c_uint32)]


class _LinkCreateOpts(ctypes.Structure):  # struct bpf_link_create_opts, up to flags
    _fields_ = [("sz", _c_size_t), ("flags", _c_uint32)]


TC_INGRESS = 1
TC_EGRESS = 2
BPF_TCX_INGRESS = 46
BPF_TCX_EGRESS = 47
BPF_F_BEFORE = 1 << 3


def tc_hook_create(ifindex: int) -> bool:
    """A clsact qdisc on `ifindex` (in this thread's network namespace); False: one was there."""
    hook = _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex, attach_point=TC_INGRESS)
    rc = lib().lib.bpf_tc_hook_create(ctypes.byref(hook))
    if rc == -errno_mod.EEXIST:
        return False
    check(rc, f"creating a clsact qdisc on interface {ifindex}")
    return True


def tc_hook_destroy(ifindex: int) -> None:
    """Remove the clsact qdisc of `ifindex`, with every filter still on it."""
    hook = _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex,
                   attach_point=TC_INGRESS | TC_EGRESS)
    check(lib().lib.bpf_tc_hook_destroy(ctypes.byref(hook)),
           f"removing the clsact qdisc of interface {ifindex}")


def tc_attach(ifindex: int, attach_point: int, prog_fd: int, handle: int,
              priority: int) -> int:
    """A direct-action bpf filter with this handle on the clsact qdisc; its priority (the
    one given, or the kernel's choice for 0)."""
    hook = _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex, attach_point=attach_point)
    opts = _TcOpts(sz=ctypes.sizeof(_TcOpts), prog_fd=prog_fd, handle=handle,
                   priority=priority)
    check(lib().lib.bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts)),
           f"attaching a tc filter on interface {ifindex}")
    return int(opts.priority)


def tc_detach(ifindex: int, attach_point: int, handle: int, priority: int) -> None:
    hook = _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex, attach_point=attach_point)
    opts = _TcOpts(sz=ctypes.sizeof(_TcOpts), handle=handle, priority=priority)
    check(lib().lib.bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts)),
           f"detaching the tc filter of interface {ifindex}")


def tcx_attach(prog_fd: int, ifindex: int, ingress: bool, first: bool = False) -> int:
    """A tcx link (Linux 6.6+) of a sched_cls program on `ifindex`, before the programs
    already there with `first`: the link's fd. Closing it, or the process ending, detaches
    the program; nothing stays on the interface. The same BPF_LINK_CREATE that libbpf 1.3's
    bpf_program__attach_tcx makes, here from a bare fd (libbpf 1.1 has only the generic
    call, whose options end at `flags` as far as tcx is concerned: no relative program means
    the first or last place). A kernel without tcx answers EINVAL."""
    kind = BPF_TCX_INGRESS if ingress else BPF_TCX_EGRESS
    opts = _LinkCreateOpts(sz=ctypes.sizeof(_LinkCreateOpts), flags=BPF_F_BEFORE if first else 0)
    return check(lib().lib.bpf_link_create(prog_fd, ifindex, kind, ctypes.byref(opts)),
                  f"attaching a tcx link on interface {ifindex}")

