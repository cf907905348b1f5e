"""The runner's stdout protocol (docs/protocol.md): record shapes and a line writer.

Events are encoded by the generated per-datasource encoders (decoder.py) for speed; every other
record goes through here. The writer owns stdout: it writes whole lines in batches, flushes
after each batch, and turns a closed stdout (the client went away) into `StdoutClosed`, so the
run loop stops cleanly instead of dying on EPIPE. Nothing else writes to stdout.
"""

from __future__ import annotations

import json
from typing import BinaryIO, TypedDict

PROTOCOL_VERSION = 1  # major: a client refuses a major it does not know
PROTOCOL_MINOR = 1  # minor: additions old clients may ignore (1: the `array` record)


class GadgetInfo(TypedDict):
    name: str
    ref: str
    digest: str


class HelloRecord(TypedDict):
    type: str
    protocol: int
    protocol_minor: int
    runner: str
    node: str
    gadget: GadgetInfo
    boot_to_wall_ns: int


class EndRecord(TypedDict):
    type: str
    reason: str
    events: int
    lost: int
    dropped: int
    exit_code: int


class StdoutClosed(Exception):
    """The reader of our stdout is gone."""


class LineWriter:
    def __init__(self, out: BinaryIO) -> None:
        self._out = out

    def lines(self, lines: list[str]) -> None:
        if not lines:
            return
        try:
            self._out.write(("\n".join(lines) + "\n").encode("utf-8"))
            self._out.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError) as exc:
            raise StdoutClosed() from exc

    def record(self, record: object) -> None:
        self.lines([json.dumps(record, separators=(",", ":"))])


def error_record(code: str, message: str, detail: str = "") -> dict[str, str]:
    rec = {"type": "error", "code": code, "message": message}
    if detail:
        rec["detail"] = detail
    return rec


def warning_record(message: str) -> dict[str, str]:
    return {"type": "warning", "message": message}


def phase_record(phase: str) -> dict[str, str]:
    """What the runner starts doing next (a crash during it can then be named)."""
    return {"type": "phase", "phase": phase}


def lost_record(ds: str, count: int) -> dict[str, object]:
    return {"type": "lost", "ds": ds, "count": count}
