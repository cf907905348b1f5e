"""Merges the stdout of every node's runner into one stream of (node, lines) batches.

Each node is read by its own thread, which hands whole lines (never a partial one) to a single
queue in batches, so the consumer pays one queue operation per chunk rather than per record.
This is the client's only concurrency: operators and output run on the consumer's thread, in
arrival order. The trap avoided: a slow or dead node blocking the others; every node's reader
is independent, and its end (EOF, error) arrives on the queue as an item of its own.
"""

from __future__ import annotations

import queue
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
    """Start one reader thread per node; iterate to receive batches until all nodes end."""

    def __init__(self, max_batches: int = 1024) -> None:
        self._queue: queue.Queue[Batch] = queue.Queue(max_batches)
        self._threads: list[threading.Thread] = []
        self.open_nodes: set[str] = set()

    def add(self, node: str, source: ChunkSource) -> None:
        self.open_nodes.add(node)
        thread = threading.Thread(target=self._read, args=(node, source),
                                  name=f"stream-{node}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _read(self, node: str, source: ChunkSource) -> None:
        error = ""
        try:
            for lines in split_lines(source()):
                self._queue.put(Batch(node, lines))
        except Exception as exc:  # noqa: BLE001 - reported as this node's end, not raised
            error = f"{type(exc).__name__}: {exc}"
        self._queue.put(Batch(node, done=True, error=error))

    def get(self, timeout: float) -> Batch | None:
        """The next batch, or None when `timeout` passes with nothing new."""
        try:
            batch = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if batch.done:
            self.open_nodes.discard(batch.node)
        return batch

    def join(self, timeout: float = 5.0) -> None:
        for thread in self._threads:
            thread.join(timeout)
