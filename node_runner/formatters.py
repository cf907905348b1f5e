"""Readable companions of `_raw` fields, chosen by the formatter id the schema gives them.

`error_raw` (a `gadget_errno`) gets `error` = "ENOENT", `timestamp_raw` (a `gadget_timestamp`,
boot-time ns) gets `timestamp` = RFC 3339 wall-clock time, flags and modes get their symbolic
forms, syscalls `SYS_OPENAT` (this machine's architecture: x86_64 or arm64 tables, generated
into node_runner/syscall_table.py), uids/gids the user/group name from the node's own
/etc/passwd and /etc/group (re-read when the file changes), endpoints `addr` / `addr:port`.
Every formatter returns the value already encoded as JSON text, because it runs once per
event inside the generated encoder; results are cached where values repeat (errnos, flags), and
the timestamp formatter only calls strftime when the second changes. The trap avoided: per-event
datetime objects and json.dumps calls, which cost more than the rest of the decode.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from node_runner import syscall_table

JsonFormatter = Callable[[int], str]
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii

# The kernel's O_LARGEFILE (set on every file of a 64-bit process, seen in f_flags), which 64-bit
# libcs define as 0; per architecture, as the kernel's uapi headers do.
_KERNEL_O_LARGEFILE = {"aarch64": 0o400000, "arm64": 0o400000}.get(os.uname().machine, 0o100000)

_OPEN_FLAGS = [
    (os.O_WRONLY, "O_WRONLY"), (os.O_RDWR, "O_RDWR"), (os.O_CREAT, "O_CREAT"),
    (os.O_EXCL, "O_EXCL"), (os.O_NOCTTY, "O_NOCTTY"), (os.O_TRUNC, "O_TRUNC"),
    (os.O_APPEND, "O_APPEND"), (os.O_NONBLOCK, "O_NONBLOCK"), (os.O_DSYNC, "O_DSYNC"),
    (getattr(os, "O_ASYNC", 0o20000), "O_ASYNC"), (getattr(os, "O_DIRECT", 0o40000), "O_DIRECT"),
    (getattr(os, "O_LARGEFILE", 0) or _KERNEL_O_LARGEFILE, "O_LARGEFILE"),
    (os.O_DIRECTORY, "O_DIRECTORY"),
    (os.O_NOFOLLOW, "O_NOFOLLOW"), (getattr(os, "O_NOATIME", 0o1000000), "O_NOATIME"),
    (os.O_CLOEXEC, "O_CLOEXEC"), (getattr(os, "O_PATH", 0o10000000), "O_PATH"),
    (getattr(os, "O_TMPFILE", 0o20200000) & ~os.O_DIRECTORY, "O_TMPFILE"),
]


def errno_name(value: int) -> str:
    if value == 0:
        return ""
    return errno.errorcode.get(value, f"E{value}")


def open_flags(value: int) -> str:
    names = [] if value & (os.O_WRONLY | os.O_RDWR) else ["O_RDONLY"]
    rest = value
    for bit, name in _OPEN_FLAGS:
        if bit and value & bit == bit:
            names.append(name)
            rest &= ~bit
    if rest:
        names.append(hex(rest))
    return "|".join(names)


def file_mode(value: int) -> str:
    return f"0{value & 0o7777:o}" if value else ""


def signal_name(value: int) -> str:
    try:
        return signal.Signals(value).name
    except ValueError:
        return str(value) if value else ""


def _cached(fn: Callable[[int], str]) -> JsonFormatter:
    cache: dict[int, str] = {}

    def fmt(value: int) -> str:
        text = cache.get(value)
        if text is None:
            text = cache[value] = _quote(fn(value))
            if len(cache) > 4096:
                cache.clear()
        return text

    return fmt


def boot_to_wall_ns() -> int:
    """Offset that turns CLOCK_BOOTTIME nanoseconds (bpf_ktime_get_boot_ns) into Unix time."""
    return time.time_ns() - time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def timestamp_formatter(offset_ns: int) -> JsonFormatter:
    state = {"sec": -1, "prefix": ""}

    def fmt(raw: int) -> str:
        sec, nsec = divmod(raw + offset_ns, 1_000_000_000)
        if sec != state["sec"]:
            state["sec"] = sec
            state["prefix"] = time.strftime('"%Y-%m-%dT%H:%M:%S', time.gmtime(sec))
        return f'{state["prefix"]}.{nsec:09d}Z"'

    return fmt


_IP_PROTOCOLS = {0: "IP", 1: "ICMP", 2: "IGMP", 4: "IPIP", 6: "TCP", 17: "UDP", 41: "IPV6",
                 47: "GRE", 50: "ESP", 51: "AH", 58: "ICMPV6", 132: "SCTP", 136: "UDPLITE",
                 255: "RAW", 262: "MPTCP"}


def ip_proto_name(value: int) -> str:
    return _IP_PROTOCOLS.get(value, f"proto#{value}")


def _syscall_table(machine: str) -> dict[int, str]:
    text = syscall_table.ARM64 if machine in ("aarch64", "arm64") else syscall_table.X86_64
    return {int(nr): name for nr, _sep, name in (p.partition(":") for p in text.split())}


def syscall_namer(machine: str | None = None) -> Callable[[int], str]:
    """Syscall number -> `SYS_<NAME>` (IG's spelling; `SYS_UNKNOWN` for a number not known)."""
    names = _syscall_table(machine or os.uname().machine)
    return lambda nr: "SYS_" + names.get(nr, "unknown").upper()


def ip_text(addr: bytes, version: int) -> str:
    """The text form of an address union (16 bytes) for IP version 4 or 6; "" otherwise."""
    if version == 4:
        return socket.inet_ntop(socket.AF_INET, bytes(addr[:4]))
    if version == 6:
        return socket.inet_ntop(socket.AF_INET6, bytes(addr[:16]))
    return ""


def _ip_formatter() -> Callable[[bytes, int], str]:
    cache: dict[tuple[bytes, int], str] = {}

    def fmt(addr: bytes, version: int) -> str:
        key = (bytes(addr), version)
        text = cache.get(key)
        if text is None:
            if len(cache) > 4096:
                cache.clear()
            text = cache[key] = _quote(ip_text(*key))
        return text

    return fmt


def _endpoint_formatter() -> Callable[[bytes, int, int], str]:
    ip = _ip_formatter()

    def fmt(addr: bytes, version: int, port: int) -> str:
        text = ip(addr, version)[1:-1]
        if not text:
            return '""'
        return f'"[{text}]:{port}"' if version == 6 else f'"{text}:{port}"'

    return fmt


class IdNames:
    """uid or gid -> name from a passwd/group file, re-read when the file changes.

    The file is checked (one stat) at most once a second; an id the file does not name prints
    as its number. Names are JSON-quoted once.
    """

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self._clock = clock
        self._stamp: tuple[int, int, int] | None = None
        self._checked = -1.0
        self._names: dict[int, str] = {}
        self._quoted: dict[int, str] = {}

    def _refresh(self) -> None:
        now = self._clock()
        if 0 <= now - self._checked < 1.0:
            return
        self._checked = now
        try:
            st = os.stat(self.path)
            stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            if stamp == self._stamp:
                return
            with open(self.path, encoding="utf-8", errors="replace") as fh:
                text = fh.read(1 << 24)
        except OSError:
            stamp, text = (0, 0, 0), ""
        self._stamp = stamp
        self._names = {}
        for line in text.splitlines():
            parts = line.split(":")
            if len(parts) >= 3 and parts[2].isdigit():
                self._names.setdefault(int(parts[2]), parts[0])
        self._quoted = {}

    def name(self, value: int) -> str:
        self._refresh()
        return self._names.get(value, str(value))

    def __call__(self, value: int) -> str:
        self._refresh()
        text = self._quoted.get(value)
        if text is None:
            text = self._quoted[value] = _quote(self._names.get(value, str(value)))
        return text


@dataclass(frozen=True)
class FormatContext:
    """What formatters need from the node: boot-time offset, where /etc is, the machine."""

    offset_ns: int = 0
    etc_dir: str = "/etc"
    machine: str = ""


_SIMPLE: dict[str, Callable[[int], str]] = {
    "errno": errno_name, "file_flags": open_flags, "file_mode": file_mode,
    "signal": signal_name, "ip_proto": ip_proto_name,
}


def formatter(kind: str, ctx: FormatContext) -> Callable[..., str]:
    """The JSON formatter for a schema formatter id (node_runner.gadget.schema.FORMATTERS)."""
    if kind in _SIMPLE:
        return _cached(_SIMPLE[kind])
    if kind == "timestamp":
        return timestamp_formatter(ctx.offset_ns)
    if kind == "syscall":
        return _cached(syscall_namer(ctx.machine or None))
    if kind == "uid":
        return IdNames(os.path.join(ctx.etc_dir, "passwd"))
    if kind == "gid":
        return IdNames(os.path.join(ctx.etc_dir, "group"))
    if kind == "ip_addr":
        return _ip_formatter()
    if kind == "l4_endpoint":
        return _endpoint_formatter()
    raise ValueError(f"no formatter {kind!r}")
