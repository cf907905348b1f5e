"""Merges the stdout of every node's runner into one stream of (node, blob of lines) batches.

Each node is read by its own thread, in large chunks, and hands blobs of complete lines
(never a partial one; one bytes object per chunk, not one object per line) to the consumer.
This is the client's only concurrency: operators and output run on the consumer's thread, in
arrival order. The trap avoided: a slow or dead node blocking the others; every node's reader
is independent, and its end (EOF, error) arrives as an item of its own. A runner that writes
a huge line without a newline cannot grow memory without bound: past `MAX_LINE` bytes the
partial line is handed over as it is (and will be reported as a malformed record).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

MAX_LINE = 16 << 20


@dataclass(frozen=True)
class Batch:
    node: str
    data: bytes = b""  # complete lines, `\n`-separated (no trailing newline needed)
    done: bool = False  # this node's stream has ended
    error: str = ""  # why it ended, when it was not a clean EOF


ChunkSource = Callable[[], Iterable[bytes]]  # yields raw chunks of a node's stdout


def complete_lines(chunks: Iterable[bytes], max_line: int = MAX_LINE) -> Iterator[bytes]:
    """Re-cut arbitrary chunks into blobs of complete lines (a trailing partial line is kept
    until its newline arrives, or emitted at the end, or when it exceeds `max_line`)."""
    held: list[bytes] = []
    held_size = 0
    for chunk in chunks:
        if not chunk:
            continue
        cut = chunk.rfind(b"\n")
        if cut < 0:
            held.append(chunk)
            held_size += len(chunk)
            if held_size > max_line:
                yield b"".join(held)
                held, held_size = [], 0
            continue
        if held:
            held.append(chunk[:cut])
            yield b"".join(held)
        else:
            yield chunk[:cut]
        rest = chunk[cut + 1:]
        held, held_size = ([rest], len(rest)) if rest else ([], 0)
    if held:
        yield b"".join(held)


@dataclass
class _Pending:
    node: str
    parts: list[bytes] = field(default_factory=list)
    done: bool = False
    error: str = ""


class Merger:
    """One reader thread per node; `get` hands over everything that arrived since last time.

    Readers append to one shared list under a lock and wake the consumer only when that list
    was empty, so a burst costs one wake-up per consumer cycle, not one per chunk (HTTP log
    streams often deliver one line per chunk); consecutive blobs of one node are joined into
    one. Readers block once `max_pending` bytes wait, so a slow consumer slows the streams
    instead of growing memory.
    """

    def __init__(self, max_pending: int = 2 << 20) -> None:
        self._cond = threading.Condition()
        self._pending: list[_Pending] = []
        self._pending_bytes = 0
        self._max_pending = max_pending
        self._threads: list[threading.Thread] = []
        self.open_nodes: set[str] = set()

    def add(self, node: str, source: ChunkSource) -> None:
        with self._cond:
            self.open_nodes.add(node)
        thread = threading.Thread(target=self._read, args=(node, source),
                                  name=f"stream-{node}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _put(self, node: str, blob: bytes = b"", done: bool = False, error: str = "") -> None:
        with self._cond:
            while self._pending_bytes >= self._max_pending and not done:
                self._cond.wait(1.0)
            last = self._pending[-1] if self._pending else None
            if blob and last is not None and last.node == node and not last.done:
                last.parts.append(blob)
            else:
                self._pending.append(_Pending(node, [blob] if blob else [], done, error))
            self._pending_bytes += len(blob)
            if len(self._pending) == 1 or done:
                self._cond.notify_all()

    def _read(self, node: str, source: ChunkSource) -> None:
        error = ""
        try:
            for blob in complete_lines(source()):
                if blob:
                    self._put(node, blob)
        except Exception as exc:  # noqa: BLE001 - reported as this node's end, not raised
            error = f"{type(exc).__name__}: {exc}"
        self._put(node, done=True, error=error)

    def get(self, timeout: float) -> list[Batch]:
        """Every batch that arrived (in arrival order per node); empty after `timeout`."""
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout)
            pending, self._pending = self._pending, []
            self._pending_bytes = 0
            for p in pending:
                if p.done:
                    self.open_nodes.discard(p.node)
            self._cond.notify_all()
        return [Batch(p.node, b"\n".join(p.parts), p.done, p.error) for p in pending]

    def join(self, timeout: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
