"""``-o columns``: fixed-width text columns under a header, one line per event.

Every column has the fixed width of its ``Column`` spec (see ``operators.fields``), so columns
never drift while streaming; columns are separated by two spaces, trailing spaces are dropped.
Strings longer than the column are cut with ``…`` per the column's ellipsis rule; numbers are
never cut (a cut number is a wrong number) and overflow instead. Control characters in strings
are escaped (``\\n``, ``\\x1b``) so a file name cannot forge lines. A missing key prints empty.
Array batches print a header and rows, each table followed by a blank line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TextIO

from kubectl_gadget.operators import INTEGER_TYPES
from kubectl_gadget.operators.fields import Column
from kubectl_gadget.output.formatter import Diag, Formatter, Row

SEPARATOR = "  "
ELLIPSIS = "…"
_ESCAPES = {c: f"\\x{c:02x}" for c in [*range(0x20), 0x7F]}
_ESCAPES.update({ord("\n"): "\\n", ord("\t"): "\\t", ord("\r"): "\\r"})


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

    def __init__(self, columns: Sequence[Column], out: TextIO, diag: Diag) -> None:
        super().__init__(out, diag)
        self.columns = tuple(columns)
        self._cells = [(c.name, cell_renderer(c)) for c in self.columns]
        self._header = self._header_line()
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
