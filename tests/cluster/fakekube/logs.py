"""Container logs as the kubelet keeps them, and the streaming of ``pods/{name}/log``.

Each container has a :class:`ContainerLog` of timestamped lines (stdout and stderr interleaved
in arrival order, like a CRI log file). A follow stream sends what exists, then waits for
more, and ends only when the container has terminated *and* every line was sent — ending on
process exit alone would lose the last lines, the bug the product must not have either.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .timeutil import log_timestamp


@dataclass(frozen=True)
class LogLine:
    ts_ns: int
    stream: str
    data: bytes


@dataclass(frozen=True)
class Abort:
    """Sentinel yielded by a stream that must be cut: ``mode`` is "abort" or "eof"."""

    mode: str


class ContainerLog:
    """Append-only log of one container run."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.lines: list[LogLine] = []
        self.closed = False
        self._last_ns = 0

    def append(self, stream: str, data: bytes) -> None:
        with self.cond:
            now = max(time.time_ns(), self._last_ns + 1)
            self._last_ns = now
            self.lines.append(LogLine(now, stream, data))
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def text(self) -> str:
        with self.cond:
            return b"".join(line.data for line in self.lines).decode("utf-8", "replace")

    def tail(self, max_lines: int = 80, max_bytes: int = 2048) -> str:
        """What the kubelet puts in ``terminated.message`` for FallbackToLogsOnError."""
        with self.cond:
            data = b"".join(line.data for line in self.lines[-max_lines:])
        return data[-max_bytes:].decode("utf-8", "replace")


class LogStore:
    """Current and previous container logs per pod uid."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[tuple[str, str], ContainerLog] = {}
        self._previous: dict[tuple[str, str], ContainerLog] = {}

    def open(self, uid: str, container: str) -> ContainerLog:
        with self._lock:
            key = (uid, container)
            if key in self._current:
                self._previous[key] = self._current[key]
            log = self._current[key] = ContainerLog()
            return log

    def get(self, uid: str, container: str, previous: bool = False) -> ContainerLog | None:
        with self._lock:
            return (self._previous if previous else self._current).get((uid, container))

    def forget(self, uid: str) -> None:
        with self._lock:
            doomed = [k for k in self._current if k[0] == uid]
            logs = [self._current.pop(k) for k in doomed]
            for key in [k for k in self._previous if k[0] == uid]:
                logs.append(self._previous.pop(key))
        for log in logs:
            log.close()

    def close_all(self) -> None:
        with self._lock:
            logs = list(self._current.values()) + list(self._previous.values())
        for log in logs:
            log.close()


@dataclass(frozen=True)
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since_ns: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    stream: str = "All"


def _wanted(line: LogLine, opts: LogOptions) -> bool:
    if opts.since_ns is not None and line.ts_ns < opts.since_ns:
        return False
    return opts.stream == "All" or line.stream == opts.stream.lower()


def stream_log(
    log: ContainerLog,
    opts: LogOptions,
    cut: Callable[[int], str | None],
    stopping: Callable[[], bool],
) -> Iterator[bytes | Abort]:
    """Yield log bytes; ``cut(sent_lines)`` may return a drop mode to end the stream early."""
    with log.cond:
        existing = [line for line in log.lines if _wanted(line, opts)]
        cursor = len(log.lines)
    if opts.tail_lines is not None:
        existing = existing[-opts.tail_lines :] if opts.tail_lines > 0 else []
    budget = opts.limit_bytes
    sent = 0
    pending = existing
    while True:
        for line in pending:
            if opts.follow and (mode := cut(sent)) is not None:
                yield Abort(mode)
                return
            data = line.data
            if opts.timestamps:
                data = log_timestamp(line.ts_ns).encode() + b" " + data
            if budget is not None:
                data = data[:budget]
                budget -= len(data)
            yield data
            sent += 1
            if budget is not None and budget <= 0:
                return
        if not opts.follow:
            return
        if (mode := cut(sent)) is not None:
            yield Abort(mode)
            return
        with log.cond:
            if cursor >= len(log.lines) and not log.closed:
                log.cond.wait(0.2)
            fresh = log.lines[cursor:]
            cursor = len(log.lines)
            done = log.closed and not fresh
        if done or stopping():
            return
        pending = [line for line in fresh if _wanted(line, opts)]
