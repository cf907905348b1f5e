"""The one module that talks to libbpf (ctypes over libbpf.so.1).

Everything else in the runner sees small Python wrappers (`BpfObject`, `BpfProgram`, `BpfMap`)
and `LibbpfCallError`, never a ctypes pointer or a raw errno. The traps this avoids: libbpf 1.x
reports failure as NULL or a negative errno (never by raising), and prints its diagnostics,
including the verifier log, through a callback rather than returning them. Every call here is
checked, and the printed log of the failing call is attached to the error.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_mod
import mmap
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from node_runner.errors import NotSupported, RunnerError

LIBBPF_NAMES = ("libbpf.so.1", "libbpf.so")

_c_void_p = ctypes.c_void_p
_c_char_p = ctypes.c_char_p
_c_int = ctypes.c_int
_c_uint32 = ctypes.c_uint32
_c_size_t = ctypes.c_size_t

# libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *fmt, va_list ap)
# va_list reaches a callee as a pointer on x86_64 and aarch64, so vsnprintf can expand it.
_PRINT_FN = ctypes.CFUNCTYPE(_c_int, _c_int, _c_char_p, _c_void_p)


class LibbpfCallError(RunnerError):
    """A libbpf call failed: `op` names it, `errno` is the cause, `log` what libbpf printed."""

    def __init__(self, op: str, err: int, log: str = "") -> None:
        super().__init__(f"{op}: {os.strerror(err) if err else 'failed'}", detail=log)
        self.op = op
        self.errno = err
        self.log = log


_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "bpf_object__open_file": (_c_void_p, [_c_char_p, _c_void_p]),
    "bpf_object__load": (_c_int, [_c_void_p]),
    "bpf_object__close": (None, [_c_void_p]),
    "bpf_object__next_program": (_c_void_p, [_c_void_p, _c_void_p]),
    "bpf_object__next_map": (_c_void_p, [_c_void_p, _c_void_p]),
    "bpf_object__find_map_by_name": (_c_void_p, [_c_void_p, _c_char_p]),
    "bpf_program__name": (_c_char_p, [_c_void_p]),
    "bpf_program__section_name": (_c_char_p, [_c_void_p]),
    "bpf_program__set_autoload": (_c_int, [_c_void_p, ctypes.c_bool]),
    "bpf_program__attach": (_c_void_p, [_c_void_p]),
    "bpf_program__fd": (_c_int, [_c_void_p]),
    "bpf_link__destroy": (_c_int, [_c_void_p]),
    "bpf_map__name": (_c_char_p, [_c_void_p]),
    "bpf_map__type": (_c_int, [_c_void_p]),
    "bpf_map__fd": (_c_int, [_c_void_p]),
    "bpf_map__max_entries": (_c_uint32, [_c_void_p]),
    "bpf_map__set_max_entries": (_c_int, [_c_void_p, _c_uint32]),
    "bpf_map__key_size": (_c_uint32, [_c_void_p]),
    "bpf_map__value_size": (_c_uint32, [_c_void_p]),
    "bpf_map__is_internal": (ctypes.c_bool, [_c_void_p]),
    "bpf_map__initial_value": (_c_void_p, [_c_void_p, ctypes.POINTER(_c_size_t)]),
    "bpf_map_update_elem": (_c_int, [_c_int, _c_void_p, _c_void_p, ctypes.c_uint64]),
    "bpf_map_lookup_elem": (_c_int, [_c_int, _c_void_p, _c_void_p]),
    "bpf_map_delete_elem": (_c_int, [_c_int, _c_void_p]),
    "bpf_map_get_next_key": (_c_int, [_c_int, _c_void_p, _c_void_p]),
    "libbpf_num_possible_cpus": (_c_int, []),
    "libbpf_set_print": (_c_void_p, [_PRINT_FN]),
    # program kinds the runner attaches itself (socket filters, tc, uprobes, cgroup hooks)
    "bpf_program__set_type": (_c_int, [_c_void_p, _c_int]),
    "bpf_program__type": (_c_int, [_c_void_p]),
    "bpf_program__set_log_buf": (_c_int, [_c_void_p, _c_void_p, _c_size_t]),
    "bpf_program__set_log_level": (_c_int, [_c_void_p, _c_uint32]),
    "bpf_program__attach_cgroup": (_c_void_p, [_c_void_p, _c_int]),
    "bpf_program__attach_uprobe_opts": (_c_void_p, [_c_void_p, _c_int, _c_char_p, _c_size_t,
                                                    _c_void_p]),
    "bpf_map__reuse_fd": (_c_int, [_c_void_p, _c_int]),
    "bpf_map__inner_map": (_c_void_p, [_c_void_p]),
    "bpf_map__set_inner_map_fd": (_c_int, [_c_void_p, _c_int]),
    "bpf_map_create": (_c_int, [_c_int, _c_char_p, _c_uint32, _c_uint32, _c_uint32, _c_void_p]),
    "bpf_prog_load": (_c_int, [_c_int, _c_char_p, _c_char_p, _c_void_p, _c_size_t, _c_void_p]),
    "bpf_tc_hook_create": (_c_int, [_c_void_p]),
    "bpf_tc_hook_destroy": (_c_int, [_c_void_p]),
    "bpf_tc_attach": (_c_int, [_c_void_p, _c_void_p]),
    "bpf_tc_detach": (_c_int, [_c_void_p, _c_void_p]),
    "bpf_link_create": (_c_int, [_c_int, _c_int, _c_int, _c_void_p]),
    "perf_buffer__new": (_c_void_p, [_c_int, _c_size_t, _c_void_p, _c_void_p, _c_void_p,
                                     _c_void_p]),
    "perf_buffer__consume": (_c_int, [_c_void_p]),
    "perf_buffer__epoll_fd": (_c_int, [_c_void_p]),
    "perf_buffer__free": (None, [_c_void_p]),
}

_SIGNATURES.update({  # array datasources: batch reads, iterators, perf events
    "bpf_map_lookup_batch": (_c_int, [_c_int, _c_void_p, _c_void_p, _c_void_p, _c_void_p,
                                      ctypes.POINTER(_c_uint32), _c_void_p]),
    "bpf_map_lookup_and_delete_batch": (_c_int, [_c_int, _c_void_p, _c_void_p, _c_void_p,
                                                 _c_void_p, ctypes.POINTER(_c_uint32),
                                                 _c_void_p]),
    "bpf_program__attach_iter": (_c_void_p, [_c_void_p, _c_void_p]),
    "bpf_program__attach_perf_event": (_c_void_p, [_c_void_p, _c_int]),
    "bpf_link__fd": (_c_int, [_c_void_p]),
    "bpf_iter_create": (_c_int, [_c_int]),
})

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_HASH = 5
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_LRU_HASH = 9
BPF_MAP_TYPE_LRU_PERCPU_HASH = 10
BPF_MAP_TYPE_PROG_ARRAY = 3
BPF_MAP_TYPE_PERF_EVENT_ARRAY = 4
BPF_MAP_TYPE_ARRAY_OF_MAPS = 12
BPF_MAP_TYPE_HASH_OF_MAPS = 13
BPF_MAP_TYPE_RINGBUF = 27
BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_SCHED_CLS = 3
BPF_ANY = 0
VERIFIER_LOG_SIZE = 64 << 20  # the verifier log of a failed load, in full (pages are lazy)


class _Lib:
    """The loaded shared library with prototypes, and the print capture."""

    def __init__(self) -> None:
        self.lib = self._open()
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(self.lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._vsnprintf = libc.vsnprintf
        self._vsnprintf.argtypes = [_c_char_p, _c_size_t, _c_char_p, _c_void_p]
        self._vsnprintf.restype = _c_int
        self.setns = libc.setns
        self.setns.argtypes = [_c_int, _c_int]
        self.setns.restype = _c_int
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._print_cb = _PRINT_FN(self._on_print)  # kept alive for as long as libbpf uses it
        self.lib.libbpf_set_print(self._print_cb)

    @staticmethod
    def _open() -> ctypes.CDLL:
        errors = []
        for name in LIBBPF_NAMES:
            try:
                return ctypes.CDLL(name, use_errno=True)
            except OSError as exc:
                errors.append(str(exc))
        raise NotSupported(
            "loading libbpf: libbpf.so.1 not found (install libbpf1): " + "; ".join(errors)
        )

    def _on_print(self, level: int, fmt: bytes | None, args: int | None) -> int:
        buf = ctypes.create_string_buffer(8192)
        self._vsnprintf(buf, len(buf), fmt, args)
        text = buf.value.decode("utf-8", "replace")
        with self._lock:
            self._lines.append(text)
            del self._lines[:-4000]  # the verifier log can be long; keep its end
        return 0

    def take_log(self) -> str:
        with self._lock:
            text = "".join(self._lines)
            self._lines.clear()
        return text


_lib: _Lib | None = None
_lib_lock = threading.Lock()


def lib() -> _Lib:
    global _lib
    with _lib_lock:
        if _lib is None:
            _lib = _Lib()
        return _lib


def _check(rc: int, op: str) -> int:
    if rc < 0:
        raise LibbpfCallError(op, -rc, lib().take_log())
    return rc


def _check_ptr(ptr: int | None, op: str) -> int:
    if not ptr:
        err = ctypes.get_errno() or errno_mod.EINVAL
        raise LibbpfCallError(op, err, lib().take_log())
    return ptr


def num_possible_cpus() -> int:
    return _check(lib().lib.libbpf_num_possible_cpus(), "counting possible CPUs")


@dataclass
class BpfLink:
    ptr: int | None

    def destroy(self) -> None:
        if self.ptr:
            lib().lib.bpf_link__destroy(self.ptr)
            self.ptr = None


@dataclass(frozen=True)
class BpfProgram:
    ptr: int
    name: str
    section: str

    def set_autoload(self, autoload: bool) -> None:
        _check(lib().lib.bpf_program__set_autoload(self.ptr, autoload), f"autoload of {self.name}")

    def attach_iter(self, map_fd: int | None = None) -> BpfLink:
        """Attach an iter/* program; an iter/bpf_map_elem one walks the map `map_fd`."""
        lib().take_log()
        opts = None
        if map_fd is not None:
            info = (ctypes.c_uint32 * 4)(map_fd, 0, 0, 0)  # union bpf_iter_link_info
            raw = (ctypes.c_uint64 * 3)(24, ctypes.addressof(info), ctypes.sizeof(info))
            opts = ctypes.cast(raw, _c_void_p)
        ptr = lib().lib.bpf_program__attach_iter(self.ptr, opts)
        return BpfLink(_check_ptr(ptr, f"attaching iterator '{self.name}' ({self.section})"))

    def attach_perf_event(self, perf_fd: int) -> BpfLink:
        lib().take_log()
        ptr = lib().lib.bpf_program__attach_perf_event(self.ptr, perf_fd)
        if not ptr:
            os.close(perf_fd)
        return BpfLink(_check_ptr(ptr, f"attaching program '{self.name}' to a perf event"))

    def set_type(self, prog_type: int) -> None:
        _check(lib().lib.bpf_program__set_type(self.ptr, prog_type), f"type of {self.name}")

    @property
    def type(self) -> int:
        return int(lib().lib.bpf_program__type(self.ptr))

    @property
    def fd(self) -> int:
        return _check(lib().lib.bpf_program__fd(self.ptr), f"fd of program {self.name}")

    def attach_cgroup(self, cgroup_fd: int) -> BpfLink:
        lib().take_log()
        ptr = lib().lib.bpf_program__attach_cgroup(self.ptr, cgroup_fd)
        return BpfLink(_check_ptr(ptr, f"attaching program '{self.name}' ({self.section}) "
                                       "to a cgroup"))

    def attach_uprobe(self, binary: str, func: str, retprobe: bool, pid: int = -1) -> BpfLink:
        """A uprobe (or uretprobe) on `func` of the ELF file `binary`, for `pid` (-1: all)."""
        lib().take_log()
        name = func.encode()
        opts = _UprobeOpts(sz=ctypes.sizeof(_UprobeOpts), retprobe=retprobe, func_name=name)
        ptr = lib().lib.bpf_program__attach_uprobe_opts(self.ptr, pid, os.fsencode(binary), 0,
                                                        ctypes.byref(opts))
        return BpfLink(_check_ptr(ptr, f"attaching program '{self.name}' to {func} in {binary}"))

    def run_iter(self) -> bytes:
        """Attach an iterator program, run it once to the end, return what it printed."""
        lib().take_log()
        link = self.attach_iter()
        try:
            fd = _check(lib().lib.bpf_iter_create(lib().lib.bpf_link__fd(link.ptr)),
                        f"creating iterator '{self.name}'")
            chunks = []
            try:
                while chunk := os.read(fd, 65536):
                    chunks.append(chunk)
            except OSError as exc:
                raise LibbpfCallError(f"running iterator '{self.name}'", exc.errno or 0) from None
            finally:
                os.close(fd)
            return b"".join(chunks)
        finally:
            link.destroy()

    def attach(self) -> BpfLink:
        lib().take_log()
        ptr = lib().lib.bpf_program__attach(self.ptr)
        return BpfLink(_check_ptr(ptr, f"attaching program '{self.name}' ({self.section})"))


@dataclass(frozen=True)
class BpfMap:
    ptr: int
    name: str

    @property
    def type(self) -> int:
        return int(lib().lib.bpf_map__type(self.ptr))

    @property
    def fd(self) -> int:
        return _check(lib().lib.bpf_map__fd(self.ptr), f"fd of map {self.name}")

    @property
    def max_entries(self) -> int:
        return int(lib().lib.bpf_map__max_entries(self.ptr))

    @property
    def key_size(self) -> int:
        return int(lib().lib.bpf_map__key_size(self.ptr))

    @property
    def value_size(self) -> int:
        return int(lib().lib.bpf_map__value_size(self.ptr))

    @property
    def is_internal(self) -> bool:
        return bool(lib().lib.bpf_map__is_internal(self.ptr))

    def reuse_fd(self, fd: int) -> None:
        """Use an existing map (shared with another object) instead of creating this one."""
        _check(lib().lib.bpf_map__reuse_fd(self.ptr, fd), f"sharing map {self.name}")

    def inner_map(self) -> BpfMap | None:
        ptr = lib().lib.bpf_map__inner_map(self.ptr)
        return BpfMap(ptr, self.name + ".inner") if ptr else None

    def set_inner_map_fd(self, fd: int) -> None:
        """Use the map `fd` as this map-in-map's inner template (instead of the declared one)."""
        _check(lib().lib.bpf_map__set_inner_map_fd(self.ptr, fd), f"inner map of {self.name}")

    def set_max_entries(self, n: int) -> None:
        _check(lib().lib.bpf_map__set_max_entries(self.ptr, n), f"resizing map {self.name}")

    def initial_value(self) -> memoryview:
        """The writable initial contents of an internal map (.rodata), before load."""
        size = _c_size_t(0)
        ptr = _check_ptr(lib().lib.bpf_map__initial_value(self.ptr, ctypes.byref(size)),
                         f"initial value of map {self.name}")
        array = (ctypes.c_char * size.value).from_address(ptr)
        return memoryview(array).cast("B")


class BpfObject:
    """An opened (and later loaded) bpf_object. Close it exactly once."""

    def __init__(self, path: str) -> None:
        lib().take_log()
        self.ptr: int | None = _check_ptr(
            lib().lib.bpf_object__open_file(os.fsencode(path), None), f"opening {path}"
        )

    def programs(self) -> Iterator[BpfProgram]:
        prev = None
        while True:
            prev = lib().lib.bpf_object__next_program(self.ptr, prev)
            if not prev:
                return
            name = (lib().lib.bpf_program__name(prev) or b"").decode()
            sec = (lib().lib.bpf_program__section_name(prev) or b"").decode()
            yield BpfProgram(prev, name, sec)

    def maps(self) -> Iterator[BpfMap]:
        prev = None
        while True:
            prev = lib().lib.bpf_object__next_map(self.ptr, prev)
            if not prev:
                return
            yield BpfMap(prev, (lib().lib.bpf_map__name(prev) or b"").decode())

    def find_map(self, name: str) -> BpfMap | None:
        ptr = lib().lib.bpf_object__find_map_by_name(self.ptr, name.encode())
        return BpfMap(ptr, name) if ptr else None

    def load(self) -> None:
        """Load every program; a verifier refusal carries the whole verifier log.

        libbpf prints the log through the print callback, whose buffer cuts it; each program
        gets a large log buffer instead (log level 0: filled only on the retry after a
        failure), and its content replaces the cut copy in the error's log.
        """
        log = mmap.mmap(-1, VERIFIER_LOG_SIZE)
        anchor = ctypes.c_char.from_buffer(log)
        addr = ctypes.addressof(anchor)
        try:
            for prog in self.programs():
                _check(lib().lib.bpf_program__set_log_buf(prog.ptr, addr, VERIFIER_LOG_SIZE),
                       f"log buffer of {prog.name}")
            lib().take_log()
            rc = lib().lib.bpf_object__load(self.ptr)
            if rc < 0:
                full = log[:log.find(b"\0")].decode("utf-8", "replace") if log[0] else ""
                raise LibbpfCallError("loading object", -rc, _with_full_log(lib().take_log(), full))
        finally:
            for prog in self.programs():
                lib().lib.bpf_program__set_log_buf(prog.ptr, None, 0)
            del anchor
            log.close()

    def close(self) -> None:
        if self.ptr:
            lib().lib.bpf_object__close(self.ptr)
            self.ptr = None


_LOG_BLOCK = re.compile(
    r"-- BEGIN PROG LOAD LOG --\n.*?(?:-- END PROG LOAD LOG --\n|(?=libbpf: )|\Z)", re.S)


def _with_full_log(printed: str, full: str) -> str:
    """libbpf's messages with its (cut) copy of the verifier log replaced by the full one."""
    if not full:
        return printed
    block = f"-- BEGIN PROG LOAD LOG --\n{full.rstrip()}\n-- END PROG LOAD LOG --\n"
    if _LOG_BLOCK.search(printed):
        return _LOG_BLOCK.sub(lambda m: block, printed, count=1)
    return printed + block


class _UprobeOpts(ctypes.Structure):
    _fields_ = [("sz", _c_size_t), ("ref_ctr_offset", _c_size_t), ("bpf_cookie", ctypes.c_uint64),
                ("retprobe", ctypes.c_bool), ("func_name", _c_char_p)]


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
    _check(rc, f"creating a clsact qdisc on interface {ifindex}")
    return True


def tc_hook_destroy(ifindex: int) -> None:
    """Remove the clsact qdisc of `ifindex`, with every filter still on it."""
    hook = _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex,
                   attach_point=TC_INGRESS | TC_EGRESS)
    _check(lib().lib.bpf_tc_hook_destroy(ctypes.byref(hook)),
           f"removing the clsact qdisc of interface {ifindex}")


def tc_attach(ifindex: int, attach_point: int, prog_fd: int, handle: int,
              priority: int) -> int:
    """A direct-action bpf filter with this handle on the clsact qdisc; its priority (the
    one given, or the kernel's choice for 0)."""
    hook = _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex, attach_point=attach_point)
    opts = _TcOpts(sz=ctypes.sizeof(_TcOpts), prog_fd=prog_fd, handle=handle,
                   priority=priority)
    _check(lib().lib.bpf_tc_attach(ctypes.byref(hook), ctypes.byref(opts)),
           f"attaching a tc filter on interface {ifindex}")
    return int(opts.priority)


def tc_detach(ifindex: int, attach_point: int, handle: int, priority: int) -> None:
    hook = _TcHook(sz=ctypes.sizeof(_TcHook), ifindex=ifindex, attach_point=attach_point)
    opts = _TcOpts(sz=ctypes.sizeof(_TcOpts), handle=handle, priority=priority)
    _check(lib().lib.bpf_tc_detach(ctypes.byref(hook), ctypes.byref(opts)),
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
    return _check(lib().lib.bpf_link_create(prog_fd, ifindex, kind, ctypes.byref(opts)),
                  f"attaching a tcx link on interface {ifindex}")


# perf_buffer_sample_fn / perf_buffer_lost_fn
_SAMPLE_FN = ctypes.CFUNCTYPE(None, _c_void_p, _c_int, _c_void_p, _c_uint32)
_LOST_FN = ctypes.CFUNCTYPE(None, _c_void_p, _c_int, ctypes.c_uint64)


class PerfBuffer:
    """libbpf's perf buffer over a BPF_MAP_TYPE_PERF_EVENT_ARRAY (one ring per CPU).

    `consume` copies every waiting sample into `samples` and adds the kernel's lost-sample
    reports to `lost`; the caller takes both. One callback per sample: the price of kernels
    without ring buffers.
    """

    def __init__(self, map_fd: int, pages_per_cpu: int) -> None:
        self.samples: list[bytes] = []
        self.lost = 0
        self._on_sample = _SAMPLE_FN(self._sample)  # kept alive as long as libbpf holds them
        self._on_lost = _LOST_FN(self._lost)
        lib().take_log()
        self.ptr: int | None = _check_ptr(
            lib().lib.perf_buffer__new(map_fd, pages_per_cpu, self._on_sample, self._on_lost,
                                       None, None), "opening the perf buffers")

    def _sample(self, ctx: int | None, cpu: int, data: int | None, size: int) -> None:
        self.samples.append(ctypes.string_at(data, size) if data else b"")

    def _lost(self, ctx: int | None, cpu: int, count: int) -> None:
        self.lost += count

    def epoll_fd(self) -> int:
        return _check(lib().lib.perf_buffer__epoll_fd(self.ptr), "perf buffer epoll fd")

    def consume(self) -> None:
        _check(lib().lib.perf_buffer__consume(self.ptr), "reading the perf buffers")

    def close(self) -> None:
        if self.ptr:
            lib().lib.perf_buffer__free(self.ptr)
            self.ptr = None


def create_map(map_type: int, name: str, key_size: int, value_size: int, entries: int) -> int:
    """A new map's fd (the caller closes it)."""
    return _check(lib().lib.bpf_map_create(map_type, name.encode(), key_size, value_size,
                                           entries, None), f"creating map {name}")


def load_raw_program(prog_type: int, name: str, insns: bytes) -> int:
    """Load a program from raw instructions (8 bytes each); its fd (the caller closes it)."""
    lib().take_log()
    buf = ctypes.create_string_buffer(insns, len(insns))
    return _check(lib().lib.bpf_prog_load(prog_type, name.encode(), b"GPL", buf,
                                          len(insns) // 8, None), f"loading program {name}")


def setns(fd: int, nstype: int) -> None:
    """Move the calling thread into the namespace `fd` refers to (libc's setns)."""
    if lib().setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def map_update(fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> None:
    rc = lib().lib.bpf_map_update_elem(fd, key, value, flags)
    _check(rc, "updating map element")


def map_lookup(fd: int, key: bytes, value_size: int) -> bytes | None:
    buf = ctypes.create_string_buffer(value_size)
    rc = lib().lib.bpf_map_lookup_elem(fd, key, buf)
    if rc == -errno_mod.ENOENT:
        return None
    _check(rc, "looking up map element")
    return buf.raw


def map_delete(fd: int, key: bytes) -> bool:
    rc = lib().lib.bpf_map_delete_elem(fd, key)
    if rc == -errno_mod.ENOENT:
        return False
    _check(rc, "deleting map element")
    return True


def map_keys(fd: int, key_size: int) -> list[bytes]:
    keys: list[bytes] = []
    prev: bytes | None = None
    nxt = ctypes.create_string_buffer(key_size)
    while True:
        rc = lib().lib.bpf_map_get_next_key(fd, prev, nxt)
        if rc == -errno_mod.ENOENT:
            return keys
        _check(rc, "iterating map keys")
        prev = nxt.raw
        keys.append(prev)


# array datasources ------------------------------------------------------------------------------
BATCH_REFUSED = frozenset({errno_mod.EINVAL, errno_mod.ENOTSUP, errno_mod.EOPNOTSUPP, 524})


def map_read_batch(fd: int, key_size: int, value_size: int, max_entries: int,
                   delete: bool) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a map in batches, deleted as read when `delete`.

    `value_size` is the bytes of one element's value as the syscall returns it (all CPUs for
    per-CPU maps). Raises LibbpfCallError with an errno in BATCH_REFUSED when the map type
    has no batch operations.
    """
    n = max(1, max_entries)
    keys = ctypes.create_string_buffer(key_size * n)
    values = ctypes.create_string_buffer(value_size * n)
    token_in = ctypes.create_string_buffer(max(8, key_size))
    token_out = ctypes.create_string_buffer(max(8, key_size))
    call = (lib().lib.bpf_map_lookup_and_delete_batch if delete
            else lib().lib.bpf_map_lookup_batch)
    rows: list[tuple[bytes, bytes]] = []
    first = True
    while True:
        count = _c_uint32(n)
        rc = call(fd, None if first else token_in, token_out, keys, values,
                  ctypes.byref(count), None)
        if rc < 0 and rc != -errno_mod.ENOENT:
            raise LibbpfCallError("reading map in batches", -rc)
        kraw, vraw = keys.raw, values.raw
        rows += [(kraw[i * key_size:(i + 1) * key_size],
                  vraw[i * value_size:(i + 1) * value_size]) for i in range(count.value)]
        if rc == -errno_mod.ENOENT:
            return rows
        ctypes.memmove(token_in, token_out, len(token_out))
        first = False


def iter_read(link: BpfLink) -> bytes:
    """Run an attached iterator once: everything its program wrote, read to the end."""
    assert link.ptr
    link_fd = _check(lib().lib.bpf_link__fd(link.ptr), "fd of iterator link")
    fd = lib().lib.bpf_iter_create(link_fd)
    if fd < 0:
        raise LibbpfCallError("creating iterator", -fd)
    chunks: list[bytes] = []
    try:
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    except OSError as exc:
        raise LibbpfCallError("reading iterator", exc.errno or errno_mod.EIO) from None
    finally:
        os.close(fd)


_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}
PERF_TYPE_SOFTWARE = 1
PERF_COUNT_SW_CPU_CLOCK = 0
_PERF_ATTR_SIZE = 128
_PERF_FLAG_FREQ = 1 << 10
_PERF_FLAG_FD_CLOEXEC = 8


def perf_event_open_sampling(cpu: int, frequency: int) -> int:
    """A CPU-clock sampling event on `cpu` at `frequency` Hz (all processes); its fd."""
    attr = ctypes.create_string_buffer(_PERF_ATTR_SIZE)
    ctypes.memmove(attr, (ctypes.c_uint32 * 2)(PERF_TYPE_SOFTWARE, _PERF_ATTR_SIZE), 8)
    # config (u64 @8), sample_freq (u64 @16), flags bitfield (u64 @40): freq
    ctypes.memmove(ctypes.addressof(attr) + 8,
                   (ctypes.c_uint64 * 2)(PERF_COUNT_SW_CPU_CLOCK, frequency), 16)
    ctypes.memmove(ctypes.addressof(attr) + 40, (ctypes.c_uint64 * 1)(_PERF_FLAG_FREQ), 8)
    nr = _PERF_EVENT_OPEN.get(os.uname().machine)
    if nr is None:
        raise NotSupported(f"perf events: unknown syscall number on {os.uname().machine}")
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(ctypes.c_long(nr), attr, _c_int(-1), _c_int(cpu), _c_int(-1),
                      ctypes.c_ulong(_PERF_FLAG_FD_CLOEXEC))
    if fd < 0:
        raise LibbpfCallError(f"opening a sampling perf event on CPU {cpu}", ctypes.get_errno())
    return int(fd)


def online_cpus(path: str = "/sys/devices/system/cpu/online") -> list[int]:
    """CPU numbers from a list like `0-3,6`."""
    with open(path, encoding="ascii") as fh:
        text = fh.read().strip()
    cpus: list[int] = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        cpus += range(int(lo), int(hi or lo) + 1)
    return cpus
