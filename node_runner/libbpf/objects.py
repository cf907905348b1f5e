"""Wrappers over an opened bpf_object: its programs, maps and links.

Spec apart from loaded state: a `BpfObject` is opened, configured (autoload, map sizes,
rodata, shared maps), loaded, attached and closed, in that order. The trap this avoids: a
verifier refusal printed through libbpf's callback is cut short, so `load` hands each program
a large log buffer and puts the whole log into the error.
"""

from __future__ import annotations

import ctypes
import errno as errno_mod
import mmap
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass

from node_runner.libbpf.library import LibbpfCallError, check, check_ptr, lib

_c_void_p = ctypes.c_void_p
_c_char_p = ctypes.c_char_p
_c_size_t = ctypes.c_size_t

BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_PROG_TYPE_SCHED_CLS = 3
VERIFIER_LOG_SIZE = 64 << 20  # the verifier log of a failed load, in full (pages are lazy)


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
        check(lib().lib.bpf_program__set_autoload(self.ptr, autoload), f"autoload of {self.name}")

    def attach_iter(self, map_fd: int | None = None) -> BpfLink:
        """Attach an iter/* program; an iter/bpf_map_elem one walks the map `map_fd`."""
        lib().take_log()
        opts = None
        if map_fd is not None:
            info = (ctypes.c_uint32 * 4)(map_fd, 0, 0, 0)  # union bpf_iter_link_info
            raw = (ctypes.c_uint64 * 3)(24, ctypes.addressof(info), ctypes.sizeof(info))
            opts = ctypes.cast(raw, _c_void_p)
        ptr = lib().lib.bpf_program__attach_iter(self.ptr, opts)
        return BpfLink(check_ptr(ptr, f"attaching iterator '{self.name}' ({self.section})"))

    def attach_perf_event(self, perf_fd: int) -> BpfLink:
        lib().take_log()
        ptr = lib().lib.bpf_program__attach_perf_event(self.ptr, perf_fd)
        if not ptr:
            os.close(perf_fd)
        return BpfLink(check_ptr(ptr, f"attaching program '{self.name}' to a perf event"))

    def set_type(self, prog_type: int) -> None:
        check(lib().lib.bpf_program__set_type(self.ptr, prog_type), f"type of {self.name}")

    @property
    def type(self) -> int:
        return int(lib().lib.bpf_program__type(self.ptr))

    @property
    def fd(self) -> int:
        return check(lib().lib.bpf_program__fd(self.ptr), f"fd of program {self.name}")

    def attach_cgroup(self, cgroup_fd: int) -> BpfLink:
        lib().take_log()
        ptr = lib().lib.bpf_program__attach_cgroup(self.ptr, cgroup_fd)
        return BpfLink(check_ptr(ptr, f"attaching program '{self.name}' ({self.section}) "
                                       "to a cgroup"))

    def attach_uprobe(self, binary: str, func: str, retprobe: bool, pid: int = -1) -> BpfLink:
        """A uprobe (or uretprobe) on `func` of the ELF file `binary`, for `pid` (-1: all)."""
        lib().take_log()
        name = func.encode()
        opts = _UprobeOpts(sz=ctypes.sizeof(_UprobeOpts), retprobe=retprobe, func_name=name)
        ptr = lib().lib.bpf_program__attach_uprobe_opts(self.ptr, pid, os.fsencode(binary), 0,
                                                        ctypes.byref(opts))
        return BpfLink(check_ptr(ptr, f"attaching program '{self.name}' to {func} in {binary}"))

    def run_iter(self) -> bytes:
        """Attach an iterator program, run it once to the end, return what it printed."""
        lib().take_log()
        link = self.attach_iter()
        try:
            fd = check(lib().lib.bpf_iter_create(lib().lib.bpf_link__fd(link.ptr)),
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
        return BpfLink(check_ptr(ptr, f"attaching program '{self.name}' ({self.section})"))


@dataclass(frozen=True)
class BpfMap:
    ptr: int
    name: str

    @property
    def type(self) -> int:
        return int(lib().lib.bpf_map__type(self.ptr))

    @property
    def fd(self) -> int:
        return check(lib().lib.bpf_map__fd(self.ptr), f"fd of map {self.name}")

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
        check(lib().lib.bpf_map__reuse_fd(self.ptr, fd), f"sharing map {self.name}")

    def inner_map(self) -> BpfMap | None:
        ptr = lib().lib.bpf_map__inner_map(self.ptr)
        return BpfMap(ptr, self.name + ".inner") if ptr else None

    def set_inner_map_fd(self, fd: int) -> None:
        """Use the map `fd` as this map-in-map's inner template (instead of the declared one)."""
        check(lib().lib.bpf_map__set_inner_map_fd(self.ptr, fd), f"inner map of {self.name}")

    def set_max_entries(self, n: int) -> None:
        check(lib().lib.bpf_map__set_max_entries(self.ptr, n), f"resizing map {self.name}")

    def initial_value(self) -> memoryview:
        """The writable initial contents of an internal map (.rodata), before load."""
        size = _c_size_t(0)
        ptr = check_ptr(lib().lib.bpf_map__initial_value(self.ptr, ctypes.byref(size)),
                         f"initial value of map {self.name}")
        array = (ctypes.c_char * size.value).from_address(ptr)
        return memoryview(array).cast("B")


class BpfObject:
    """An opened (and later loaded) bpf_object. Close it exactly once."""

    def __init__(self, path: str) -> None:
        lib().take_log()
        self.ptr: int | None = check_ptr(
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
                check(lib().lib.bpf_program__set_log_buf(prog.ptr, addr, VERIFIER_LOG_SIZE),
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



def load_raw_program(prog_type: int, name: str, insns: bytes) -> int:
    """Load a program from raw instructions (8 bytes each); its fd (the caller closes it)."""
    lib().take_log()
    buf = ctypes.create_string_buffer(insns, len(insns))
    return check(lib().lib.bpf_prog_load(prog_type, name.encode(), b"GPL", buf,
                                          len(insns) // 8, None), f"loading program {name}")



def iter_read(link: BpfLink) -> bytes:
    """Run an attached iterator once: everything its program wrote, read to the end."""
    assert link.ptr
    link_fd = check(lib().lib.bpf_link__fd(link.ptr), "fd of iterator link")
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

