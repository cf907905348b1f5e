"""The client's protocol boundary: runner output in, typed and checked records out.

Every line a runner writes is decoded here, once, against a typed shape per record type
(docs/protocol.md), so nothing downstream checks types again and nothing downstream can be
handed a string where a count belongs. A batch of lines is decoded in one msgspec call; only
when that fails is it decoded line by line, to keep the good lines and isolate the bad ones.
A bad line (not JSON, nested too deep, a wrong type in a known key, a missing required key)
becomes a `Bad` carrying the reason; records of types this client does not know are skipped,
as the protocol asks. Non-strict numbers (`NaN`, `Infinity`, `1e400`) are not JSON: a line
holding them is read leniently and each such number becomes null, or the line is bad when it
sits in a key that must be an integer. The trap avoided: one malformed line raising out of the
reader and ending the view of every node.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Annotated, Any, Union

import msgspec

Count = Annotated[int, msgspec.Meta(ge=0)]


class Field(msgspec.Struct, frozen=True):
    """One field of a `schema` record."""

    name: Annotated[str, msgspec.Meta(min_length=1)]
    type: str
    tags: list[str] = []
    annotations: dict[str, str] = {}


class GadgetInfo(msgspec.Struct, frozen=True):
    name: str = ""
    ref: str = ""
    digest: str = ""


class Hello(msgspec.Struct, tag="hello", tag_field="type", frozen=True):
    protocol: int
    runner: str = ""
    node: str = ""
    gadget: GadgetInfo = GadgetInfo()
    boot_to_wall_ns: int = 0
    data: str = ""  # "nested": event data nested by dotted names (runner --nested-data)


class Schema(msgspec.Struct, tag="schema", tag_field="type", frozen=True):
    ds: str
    fields: list[Field]
    kind: str = "stream"
    annotations: dict[str, str] = {}


class Event(msgspec.Struct, tag="event", tag_field="type", gc=False):
    ds: str
    data: dict[str, Any]


class RawEvent(msgspec.Struct, tag="event", tag_field="type", gc=False):
    """An event whose data is kept as the runner's JSON text (checked, not turned into
    objects): for output that forwards it as it is."""

    ds: str
    data: msgspec.Raw


class Array(msgspec.Struct, tag="array", tag_field="type"):
    ds: str
    data: list[dict[str, Any]]


class Lost(msgspec.Struct, tag="lost", tag_field="type", frozen=True):
    count: Count
    ds: str = ""


class Warn(msgspec.Struct, tag="warning", tag_field="type", frozen=True):
    message: str = ""
    code: str = ""


class Error(msgspec.Struct, tag="error", tag_field="type", frozen=True):
    code: str = ""
    message: str = ""
    detail: str = ""


class Phase(msgspec.Struct, tag="phase", tag_field="type", frozen=True):
    phase: str = ""


class End(msgspec.Struct, tag="end", tag_field="type", frozen=True):
    reason: str = ""
    events: Count = 0
    lost: Count = 0
    dropped: Count = 0
    exit_code: int = 0


Record = Union[Hello, Schema, Event, Array, Lost, Warn, Error, Phase, End]  # noqa: UP007
RawRecord = Union[Hello, Schema, RawEvent, Array, Lost, Warn, Error, Phase, End]  # noqa: UP007
KNOWN_TYPES = frozenset({"hello", "schema", "event", "array", "lost", "warning", "error", "phase",
                         "end"})


class Bad(msgspec.Struct, frozen=True):
    """A line that is not a valid protocol record, and why."""

    reason: str
    line: bytes


class _Head(msgspec.Struct):
    type: Any = None


_decoder = msgspec.json.Decoder(Record)
_raw_decoder = msgspec.json.Decoder(RawRecord)
_head = msgspec.json.Decoder(_Head)
_DecodeFailure = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)


def decode(blob: bytes, raw_events: bool = False) -> Sequence[Record | RawEvent | Bad]:
    """The records of `blob` (complete lines, `\\n`-separated), in order; never raises."""
    decoder = _raw_decoder if raw_events else _decoder
    try:
        return decoder.decode_lines(blob)
    except _DecodeFailure:
        pass
    out: list[Record | RawEvent | Bad] = []
    for line in blob.split(b"\n"):
        if line.strip():
            rec = decode_line(line, decoder)
            if rec is not None:
                out.append(rec)
    return out


def decode_line(line: bytes, decoder: msgspec.json.Decoder[Any] = _decoder
                ) -> Record | RawEvent | Bad | None:
    """One line: its record, a `Bad`, or None for a record type this client does not know.
    A line read leniently (non-finite numbers) always has its event data as objects."""
    try:
        return decoder.decode(line)
    except _DecodeFailure as exc:
        strict_error = exc
    try:
        kind = _head.decode(line).type
    except _DecodeFailure:
        kind = None
    if isinstance(kind, str) and kind not in KNOWN_TYPES:
        return None
    lenient = _lenient(line)
    if lenient is not None:
        try:
            return msgspec.convert(lenient, Record)
        except (msgspec.ValidationError, RecursionError) as exc:
            strict_error = exc
    return Bad(_reason(strict_error), line)


def _lenient(line: bytes) -> object | None:
    """The line read with NaN, Infinity and out-of-range floats as null; None if not JSON."""
    try:
        return json.loads(line, parse_constant=_null, parse_float=_finite_or_null)
    except (ValueError, RecursionError):
        return None


def _null(_token: str) -> None:
    return None


def _finite_or_null(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    return str(exc) or type(exc).__name__


def event_row(event: Event | RawEvent, nested: bool) -> dict[str, Any]:
    """An event's data as the flat row the operators read (dotted names)."""
    data = _object(event.data) if isinstance(event, RawEvent) else event.data
    return _flatten(data) if nested else data


def _object(raw: msgspec.Raw) -> dict[str, Any]:
    value = msgspec.json.decode(raw)
    return value if isinstance(value, dict) else {}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
