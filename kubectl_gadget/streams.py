"""Merges the stdout of every node's runner into one stream of (node, lines) batches.

Each node is read by its own thread, which hands whole lines (never a partial one) to a single
queue in batches, so the consumer pays one queue operation per chunk rather than per record.
This is the client's only concurrency: operators and output run on the consumer's thread, in
arrival order. The trap avoided: a slow or dead node blocking the others; every node's reader
is independent, and its end (EOF, error) arrives on the queue as an item of its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Batch:
    node: str
    lines: list[bytes] = field(default_factory=list)
    done: bool = False  # this node's stream has ended
    error: str = ""  # why it ended, when it was not a clean EOF


ChunkSource = Callable[[], Iterable[bytes]]  # yields raw chunks of a node's stdout


def split_lines(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """Re-cut arbitrary chunks into lists of complete lines (a trailing partial line is kept
    until its newline arrives, or emitted at the end)."""
    rest = b""
    for chunk in chunks:
        if not chunk:
            continue
        data = rest + chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            rest = data
            continue
        rest = data[cut + 1:]
        yield data[:cut].split(b"\n")
    if rest:
        yield [rest]


class Merger:
    """One reader thread per node; `get` hands over everything that arrived since last time.

    Readers append to one shared list under a lock and wake the consumer only when that list
    was empty, so a burst costs one wake-up per consumer cycle, not one queue operation per
    chunk (HTTP log streams often deliver one line per chunk). Readers block once
    `max_pending` lines wait, so a slow consumer slows the streams instead of growing memory.
    """

    def __init__(self, max_pending: int = 4096) -> None:
        self._cond = threading.Condition()
        self._pending: list[Batch] = []
        self._pending_lines = 0
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

    def _put(self, batch: Batch) -> None:
        with self._cond:
            while self._pending_lines >= self._max_pending and not batch.done:
                self._cond.wait(1.0)
            last = self._pending[-1] if self._pending else None
            if last is not None and last.node == batch.node and not last.done and batch.lines:
                last.lines.extend(batch.lines)
            else:
                self._pending.append(batch)
            self._pending_lines += len(batch.lines)
            self._cond.notify_all()

    def _read(self, node: str, source: ChunkSource) -> None:
        error = ""
        try:
            for lines in split_lines(source()):
                self._put(Batch(node, lines))
        except Exception as exc:  # noqa: BLE001 - reported as this node's end, not raised
            error = f"{type(exc).__name__}: {exc}"
        self._put(Batch(node, done=True, error=error))

    def get(self, timeout: float) -> list[Batch]:
        """Every batch that arrived (in arrival order per node); empty after `timeout`."""
        with self._cond:
            if not self._pending:
                self._cond.wait(timeout)
            batches, self._pending = self._pending, []
            self._pending_lines = 0
            for batch in batches:
                if batch.done:
                    self.open_nodes.discard(batch.node)
            self._cond.notify_all()
        return batches

    def join(self, timeout: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
