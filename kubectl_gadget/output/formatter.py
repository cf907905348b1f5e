"""The formatter interface every output mode implements, and the diagnostics line rule.

A formatter is built once per datasource and called per event (``event``) or per array batch
(``array``). Non-event records (``lost``, ``warning``, ``error``) never reach stdout in any
mode: ``notice`` turns them into one human line for the ``diag`` callback (stderr, typically),
so stdout stays parseable. Writes are not flushed per event: call ``flush`` after each batch.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TextIO

from kubectl_gadget.errors import UsageError

OutputMode = Literal["columns", "json", "jsonpretty", "yaml", "pcap", "none"]
OUTPUT_MODES: tuple[OutputMode, ...] = ("columns", "json", "jsonpretty", "yaml", "pcap", "none")
Diag = Callable[[str], None]
Row = Mapping[str, Any]


def parse_output_mode(mode: str) -> OutputMode:
    """Validate ``-o``; UsageError naming the choices for anything else."""
    for known in OUTPUT_MODES:
        if mode == known:
            return known
    raise UsageError(f"invalid output mode {mode!r}: choose one of {', '.join(OUTPUT_MODES)}")


def describe_record(record: Mapping[str, Any], node: str | None = None) -> str | None:
    """One human line for a ``lost``, ``warning`` or ``error`` record; None for other types.

    ``node`` defaults to the record's own ``node`` key, if the merger put one there.
    """
    node = node or record.get("node")
    prefix = f"node {node}: " if node else ""
    kind = record.get("type")
    if kind == "lost":
        count = record.get("count", 0)
        noun = "event" if count == 1 else "events"
        where = f" (datasource {record['ds']})" if record.get("ds") else ""
        return f"{prefix}lost {count} {noun}{where}"
    if kind in ("warning", "error"):
        code = f" [{record['code']}]" if record.get("code") else ""
        return f"{prefix}{kind}{code}: {record.get('message', '')}"
    return None


class Formatter(abc.ABC):
    """Writes one datasource's events to ``out`` and its diagnostics to ``diag``."""

    def __init__(self, out: TextIO, diag: Diag) -> None:
        self._out = out
        self._diag = diag

    @abc.abstractmethod
    def event(self, data: Row) -> None:
        """Write one event (the flat ``data`` dict of an ``event`` record)."""

    @abc.abstractmethod
    def array(self, rows: Sequence[Row]) -> None:
        """Write one batch of rows (an ``array`` record, already sorted and limited)."""

    def events(self, rows: Sequence[Row]) -> None:
        """Write a run of events (one write for all of them where the mode allows)."""
        for row in rows:
            self.event(row)

    def texts(self, texts: Sequence[Any]) -> None:
        """Write events given as their final JSON text (bytes-like, one object each)."""
        self._out.write((b"\n".join(texts) + b"\n").decode("utf-8", "replace"))

    def notice(self, record: Mapping[str, Any], node: str | None = None) -> None:
        """Send a ``lost``/``warning``/``error`` record to ``diag``; ignore other types."""
        message = describe_record(record, node)
        if message is not None:
            self._diag(message)

    def flush(self) -> None:
        """Flush the output stream (call after each batch of records)."""
        self._out.flush()
