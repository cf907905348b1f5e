"""Output: turn filtered events into text on stdout, in one of ``-o columns|json|jsonpretty|yaml``.

A formatter is built once per datasource from its schema fields, the ``--fields`` selection,
the mode and the output stream, then called per event (``event``) or per array batch
(``array``). Everything that can be decided up front is: column widths, cell renderers, the
nesting plan for JSON keys. Non-event records (``lost``, ``warning``, ``error``) never reach
stdout in any mode: ``notice`` turns them into one human line for the ``diag`` callback the
caller gives (stderr, typically), so stdout stays parseable. The trap avoided: widths computed
from the values seen so far (columns drift while streaming), and diagnostics mixed into
machine-readable output.

Modes:

- ``columns``: a header line, then one line per event. Every column has the fixed width of its
  ``Column`` spec (see ``operators.fields``), columns are separated by two spaces, trailing
  spaces are dropped. Strings longer than the column are cut with ``…`` per the column's
  ellipsis rule; numbers are never cut (a cut number is a wrong number) and overflow instead.
  Control characters in strings are escaped (``\\n``, ``\\x1b``) so a file name cannot forge
  lines. A missing key prints empty. Array batches print a header and rows, a blank line
  between batches.
- ``json``: one compact JSON object per event per line; ``jsonpretty``: the same, indented;
  ``yaml``: one YAML document per event, each starting with ``---``. Dotted field names are
  nested (``k8s.node`` -> ``{"k8s": {"node": ...}}``). Without ``--fields`` all fields except
  ``json.skip: "true"`` ones are included (hidden columns too); with it, the selection applies
  as in columns mode. A key missing from an event is left out, not written as null. An array
  batch is one JSON array (one YAML document).

Writes are not flushed per event: call ``flush`` after each batch of merged records.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TextIO

import yaml

from kubectl_gadget.errors import GadgetError, UsageError
from kubectl_gadget.operators import INTEGER_TYPES, FieldSchema
from kubectl_gadget.operators.fields import (
    Column,
    FieldSelection,
    column_spec,
    select_fields,
)

OutputMode = Literal["columns", "json", "jsonpretty", "yaml"]
OUTPUT_MODES: tuple[OutputMode, ...] = ("columns", "json", "jsonpretty", "yaml")
Diag = Callable[[str], None]
Row = Mapping[str, Any]

SEPARATOR = "  "
ELLIPSIS = "…"
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}
_ESCAPES.update({ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})
_SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


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

    def notice(self, record: Mapping[str, Any], node: str | None = None) -> None:
        """Send a ``lost``/``warning``/``error`` record to ``diag``; ignore other types."""
        message = describe_record(record, node)
        if message is not None:
            self._diag(message)

    def flush(self) -> None:
        """Flush the output stream (call after each batch of records)."""
        self._out.flush()


# --- columns -----------------------------------------------------------------------------


def _text_function(column: Column) -> Callable[[Any], str]:
    """Value -> unpadded text for one column (None -> "", bools lower-case, hex if asked)."""
    hex_ints = column.hex and column.type in INTEGER_TYPES

    def text(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            return value.translate(_ESCAPES)
        if isinstance(value, bool):
            return "true" if value else "false"
        if hex_ints and isinstance(value, int):
            return f"-0x{-value:x}" if value < 0 else f"0x{value:x}"
        return str(value).translate(_ESCAPES)

    return text


def fit(text: str, width: int, ellipsis: str) -> str:
    """Cut ``text`` to ``width`` characters with the ellipsis rule (end|start|middle|none)."""
    if len(text) <= width:
        return text
    if ellipsis == "none":
        return text[:width]
    keep = width - 1
    if ellipsis == "start":
        return ELLIPSIS + text[len(text) - keep :] if keep else ELLIPSIS
    if ellipsis == "middle":
        head = (keep + 1) // 2
        tail = keep - head
        return text[:head] + ELLIPSIS + (text[len(text) - tail :] if tail else "")
    return text[:keep] + ELLIPSIS


def cell_renderer(column: Column) -> Callable[[Any], str]:
    """Value -> text of exactly the column's width (numbers may overflow, never cut)."""
    text = _text_function(column)
    width, ellipsis = column.width, column.ellipsis
    pad = str.rjust if column.alignment == "right" else str.ljust

    def render(value: Any) -> str:
        s = text(value)
        if len(s) > width and (isinstance(value, str) or value is None):
            s = fit(s, width, ellipsis)
        return pad(s, width)

    return render


class ColumnsFormatter(Formatter):
    """``-o columns``: fixed-width text columns under a header."""

    def __init__(self, columns: Sequence[Column], out: TextIO, diag: Diag) -> None:
        super().__init__(out, diag)
        self.columns = tuple(columns)
        self._cells = [(c.name, cell_renderer(c)) for c in self.columns]
        self._header = self._header_line()
        self._header_written = False
        self._batches = 0

    @staticmethod
    def _line(cells: list[str]) -> str:
        return SEPARATOR.join(cells).rstrip(" ") + "\n"

    @property
    def header_written(self) -> bool:
        return self._header_written

    def header(self) -> None:
        """Write the header line now (otherwise it comes before the first event)."""
        self._out.write(self._header)
        self._header_written = True

    def _header_line(self) -> str:
        cells = []
        for column in self.columns:
            pad = str.rjust if column.alignment == "right" else str.ljust
            cells.append(pad(fit(column.header, column.width, column.ellipsis), column.width))
        return self._line(cells)

    def event(self, data: Row) -> None:
        if not self._header_written:
            self.header()
        get = data.get
        self._out.write(self._line([render(get(name)) for name, render in self._cells]))

    def array(self, rows: Sequence[Row]) -> None:
        lines = ["\n"] if self._batches else []
        self._batches += 1
        lines.append(self._header)
        for row in rows:
            get = row.get
            lines.append(self._line([render(get(name)) for name, render in self._cells]))
        self._out.write("".join(lines))
        self._header_written = True


# --- json / jsonpretty / yaml ------------------------------------------------------------


def nesting_plan(names: Sequence[str]) -> list[tuple[str, tuple[str, ...], str]]:
    """``(field name, parent keys, leaf key)`` per field: ``k8s.node`` -> ``("k8s",), "node"``.

    GadgetError when a name is both a value and a parent (``proc`` and ``proc.comm``).
    """
    plan = []
    leaves: set[tuple[str, ...]] = set()
    parents: set[tuple[str, ...]] = set()
    for name in names:
        parts = tuple(name.split("."))
        leaves.add(parts)
        parents.update(parts[:i] for i in range(1, len(parts)))
        plan.append((name, parts[:-1], parts[-1]))
    clash = leaves & parents
    if clash:
        key = ".".join(sorted(clash)[0])
        raise GadgetError(f"nesting JSON keys: field {key!r} is also the parent of other fields")
    return plan


def _dump_json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str) + "\n"


def _dump_json_pretty(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n"


def _dump_yaml(obj: Any) -> str:
    return yaml.dump(
        obj, Dumper=_SafeDumper, sort_keys=False, explicit_start=True, allow_unicode=True
    )


_DUMPERS: dict[str, Callable[[Any], str]] = {
    "json": _dump_json,
    "jsonpretty": _dump_json_pretty,
    "yaml": _dump_yaml,
}


class StructuredFormatter(Formatter):
    """``-o json|jsonpretty|yaml``: one nested object per event, serialized by ``dump``."""

    def __init__(
        self, names: Sequence[str], dump: Callable[[Any], str], out: TextIO, diag: Diag
    ) -> None:
        super().__init__(out, diag)
        self.names = tuple(names)
        self._plan = nesting_plan(self.names)
        self._dump = dump

    def nest(self, data: Row) -> dict[str, Any]:
        """The selected fields of ``data``, nested by their dotted names (missing keys left out)."""
        result: dict[str, Any] = {}
        for name, parents, leaf in self._plan:
            if name not in data:
                continue
            node = result
            for key in parents:
                node = node.setdefault(key, {})
            node[leaf] = data[name]
        return result

    def event(self, data: Row) -> None:
        self._out.write(self._dump(self.nest(data)))

    def array(self, rows: Sequence[Row]) -> None:
        self._out.write(self._dump([self.nest(row) for row in rows]))


def make_formatter(
    mode: str,
    fields: Sequence[FieldSchema],
    selection: FieldSelection | None = None,
    *,
    out: TextIO,
    diag: Diag,
) -> Formatter:
    """Build the formatter for one datasource (see the module docstring for each mode).

    UsageError for an unknown mode or a selection naming unknown fields; GadgetError for a
    malformed column annotation or field names that cannot be nested.
    """
    checked = parse_output_mode(mode)
    selection = selection or FieldSelection()
    if checked == "columns":
        selected = select_fields(selection, fields, "columns")
        return ColumnsFormatter([column_spec(f) for f in selected], out, diag)
    names = [f["name"] for f in select_fields(selection, fields, "json")]
    return StructuredFormatter(names, _DUMPERS[checked], out, diag)
