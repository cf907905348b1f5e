"""Readable companions of `_raw` fields, chosen by the field's semantic typedef.

`error_raw` (a `gadget_errno`) gets `error` = "ENOENT", `timestamp_raw` (a `gadget_timestamp`,
boot-time ns) gets `timestamp` = RFC 3339 wall-clock time, flags and modes get their symbolic
forms. Every formatter returns the value already encoded as JSON text, because it runs once per
event inside the generated encoder; results are cached where values repeat (errnos, flags), and
the timestamp formatter only calls strftime when the second changes. The trap avoided: per-event
datetime objects and json.dumps calls, which cost more than the rest of the decode.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import time
from collections.abc import Callable

from node_runner import constants as C

JsonFormatter = Callable[[int], str]
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii

_OPEN_FLAGS = [
    (os.O_WRONLY, "O_WRONLY"), (os.O_RDWR, "O_RDWR"), (os.O_CREAT, "O_CREAT"),
    (os.O_EXCL, "O_EXCL"), (os.O_NOCTTY, "O_NOCTTY"), (os.O_TRUNC, "O_TRUNC"),
    (os.O_APPEND, "O_APPEND"), (os.O_NONBLOCK, "O_NONBLOCK"), (os.O_DSYNC, "O_DSYNC"),
    (getattr(os, "O_ASYNC", 0o20000), "O_ASYNC"), (getattr(os, "O_DIRECT", 0o40000), "O_DIRECT"),
    (getattr(os, "O_LARGEFILE", 0o100000), "O_LARGEFILE"), (os.O_DIRECTORY, "O_DIRECTORY"),
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


def formatter_for(tags: tuple[str, ...], offset_ns: int) -> JsonFormatter | None:
    """The JSON formatter for a `_raw` field with these typedef tags, or None."""
    for tag in tags:
        if tag == C.TAG_ERRNO:
            return _cached(errno_name)
        if tag == C.TAG_TIMESTAMP:
            return timestamp_formatter(offset_ns)
        if tag == C.TAG_FILE_FLAGS:
            return _cached(open_flags)
        if tag == C.TAG_FILE_MODE:
            return _cached(file_mode)
        if tag == C.TAG_SIGNAL:
            return _cached(signal_name)
    return None
