"""Loading libbpf.so.1 with its function prototypes, and the checks every call goes through.

The traps this avoids: libbpf 1.x reports failure as NULL or a negative errno (never by
raising), and prints its diagnostics, including the verifier log, through a callback rather
than returning them. `check` and `check_ptr` turn both into `LibbpfCallError` carrying the
printed log of the failing call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno as errno_mod
import os
import threading

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


def check(rc: int, op: str) -> int:
    if rc < 0:
        raise LibbpfCallError(op, -rc, lib().take_log())
    return rc


def check_ptr(ptr: int | None, op: str) -> int:
    if not ptr:
        err = ctypes.get_errno() or errno_mod.EINVAL
        raise LibbpfCallError(op, err, lib().take_log())
    return ptr


def num_possible_cpus() -> int:
    return check(lib().lib.libbpf_num_possible_cpus(), "counting possible CPUs")


def setns(fd: int, nstype: int) -> None:
    """Move the calling thread into the namespace `fd` refers to (libc's setns)."""
    if lib().setns(fd, nstype) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))

