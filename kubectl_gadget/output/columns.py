"""``-o columns``: fixed-width text columns under a header, one line per event.

Every column has the fixed width of its ``Column`` spec (see ``operators.fields``), so columns
never drift while streaming; columns are separated by two spaces, trailing spaces are dropped.
Strings longer than the column are cut with ``…`` per the column's ellipsis rule; numbers are
never cut (a cut number is a wrong number) and overflow instead. Control characters in strings
are escaped (``\\n``, ``\\x1b``) so a file name cannot forge lines. A missing key prints empty.
Array batches print a header and rows, each table followed by a blank line.
By default (no explicit ``--fields``) the Kubernetes columns come first, as IG prints them; with
a width (the terminal's, or ``COLUMNS``) the widest text columns shrink until a line fits;
``--no-headers`` drops the header line; an RFC 3339 timestamp shows as the local time of day
(``15:04:05.000``) when it falls on the day the run started, else with its date too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, TextIO

from kubectl_gadget.operators import INTEGER_TYPES
from kubectl_gadget.operators.fields import Column
from kubectl_gadget.output.formatter import Diag, Formatter, Row

SEPARATOR = "  "
ELLIPSIS = "…"
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}
_ESCAPES.update({ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})
K8S_COLUMNS = ("k8s.node", "k8s.namespace", "k8s.podName", "k8s.containerName")
MIN_FIT_WIDTH = 8  # a text column is not shrunk below this width (its header is cut)
TIME_OF_DAY_WIDTH = 12  # 15:04:05.000


def k8s_first(fields: Sequence[Any]) -> list[Any]:
    """Fields (schema dicts) with the Kubernetes ones first, in IG's order."""
    rank = {name: i for i, name in enumerate(K8S_COLUMNS)}
    k8s = sorted((f for f in fields if f["name"] in rank), key=lambda f: rank[f["name"]])
    return k8s + [f for f in fields if f["name"] not in rank]


def fit_widths(columns: Sequence[Column], width: int | None) -> list[Column]:
    """Shrink the widest text columns, one character at a time, until a line fits `width`
    (numbers are never cut; a line that cannot fit stays as wide as it must)."""
    cols = [replace(c, width=TIME_OF_DAY_WIDTH) if _is_timestamp(c) else c for c in columns]
    if width is None:
        return cols
    over = sum(c.width for c in cols) + len(SEPARATOR) * (len(cols) - 1) - width
    while over > 0:
        text = [i for i, c in enumerate(cols) if c.type not in INTEGER_TYPES and
                c.ellipsis != "none" and c.width > MIN_FIT_WIDTH]
        if not text:
            break
        widest = max(text, key=lambda i: cols[i].width)
        cols[widest] = replace(cols[widest], width=cols[widest].width - 1)
        over -= 1
    return cols


def _is_timestamp(column: Column) -> bool:
    return column.type == "string" and column.name.rsplit(".", 1)[-1] == "timestamp"


def _time_of_day(today: str) -> Callable[[Any], Any]:
    """RFC 3339 text (as the runner writes it) -> local time of day, date too when not today."""
    def text(value: Any) -> Any:
        if not isinstance(value, str) or len(value) < 20:
            return value
        try:
            stamp = datetime.fromisoformat(value[:26].rstrip("Z") + "+00:00").astimezone()
        except ValueError:
            return value
        day = stamp.strftime("%Y-%m-%d")
        shown = stamp.strftime("%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}"
        return shown if day == today else f"{day} {shown}"
    return text


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
    hex_ints = column.hex and column.type in INTEGER_TYPES

    def render(value: Any) -> str:
        if type(value) is str and value.isprintable():  # the common case: nothing to escape
            s = value
        elif type(value) is int and not hex_ints:
            return pad(str(value), width)  # numbers are never cut
        else:
            s = text(value)
            if not (isinstance(value, str) or value is None):
                return pad(s, width)
        if len(s) > width:
            s = fit(s, width, ellipsis)
        return pad(s, width)

    return render


class ColumnsFormatter(Formatter):
    """``-o columns``: fixed-width text columns under a header."""

    def __init__(self, columns: Sequence[Column], out: TextIO, diag: Diag,
                 headers: bool = True) -> None:
        super().__init__(out, diag)
        self.columns = tuple(columns)
        today = time.strftime("%Y-%m-%d")
        self._cells = [(c.name, _timestamped(c, today) if _is_timestamp(c) else cell_renderer(c))
                       for c in self.columns]
        self._header = self._header_line() if headers else ""
        self._header_written = False

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
        self.events([data])

    def events(self, rows: Sequence[Row]) -> None:
        if not self._header_written:
            self.header()
        cells, line = self._cells, self._line
        self._out.write("".join([line([render(row.get(name)) for name, render in cells])
                                 for row in rows]))

    def table(self, rows: Sequence[Row]) -> str:
        """The header and one line per row, as text."""
        lines = [self._header]
        for row in rows:
            get = row.get
            lines.append(self._line([render(get(name)) for name, render in self._cells]))
        return "".join(lines)

    def array(self, rows: Sequence[Row]) -> None:
        self._out.write(self.table(rows) + "\n")
        self._header_written = True


def _timestamped(column: Column, today: str) -> Callable[[Any], str]:
    render, text = cell_renderer(column), _time_of_day(today)

    def cell(value: Any) -> str:
        shown = text(value)
        return shown if isinstance(shown, str) and len(shown) > column.width else render(shown)
    return cell


class NoneFormatter(Formatter):
    """``-o none``: nothing on stdout (events are still counted; diagnostics still shown)."""

    def event(self, data: Row) -> None:
        pass

    def array(self, rows: Sequence[Row]) -> None:
        pass

    def texts(self, texts: Sequence[Any]) -> None:
        pass
