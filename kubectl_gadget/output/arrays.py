"""How a combined array table reaches the screen: top-like redraw, piped tables, JSON arrays.

- columns on a terminal: like `top`, each interval clears the screen and draws a title line
  (wall time, datasource, interval, nodes, rows) over the table; a gadget with several array
  datasources draws them one under the other and clears when the first comes round again.
- columns piped: each table, then a blank line (no escape sequences in files).
- json/jsonpretty/yaml: one JSON array (YAML document) per interval per datasource, rows
  nested as for events; histogram fields become buckets.
A datasource with histogram fields shows, in columns mode, each row's other fields as a
one-row table followed by one bar chart per histogram field (output.histogram).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TextIO

from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.output.columns import ColumnsFormatter
from kubectl_gadget.output.formatter import Formatter, Row
from kubectl_gadget.output.histogram import chart, chart_labels, histogram_fields, with_buckets

CLEAR = "\x1b[H\x1b[2J"


class ArrayView:
    """Shows the tables of one run (all array datasources)."""

    def __init__(self, out: TextIO, *, tty: bool, interval: float | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.out, self.tty, self.interval, self.clock = out, tty, interval, clock
        self._drawn: set[str] = set()

    def show(self, ds: str, formatter: Formatter, fields: Sequence[FieldSchema],
             rows: Sequence[Row], nodes: int) -> None:
        hists = histogram_fields(fields)
        if not isinstance(formatter, ColumnsFormatter):
            formatter.array([with_buckets(r, hists) for r in rows] if hists else rows)
            return
        text = (_with_charts(formatter, rows, hists, chart_labels(fields)) if hists
                else formatter.table(rows))
        if not self.tty:
            self.out.write(text + "\n")
            return
        if ds in self._drawn or not self._drawn:
            self._drawn.clear()
            self.out.write(CLEAR)
        self._drawn.add(ds)
        self.out.write(self._title(ds, nodes, len(rows)) + text + "\n")

    def _title(self, ds: str, nodes: int, rows: int) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(self.clock()))
        every = f"every {self.interval:g}s" if self.interval else "snapshot"
        return f"{stamp}  {ds}  {every}  {_count(nodes, 'node')}  {_count(rows, 'row')}\n"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _with_charts(formatter: ColumnsFormatter, rows: Sequence[Row], hists: list[str],
                 labels: dict[str, str]) -> str:
    if not rows:
        return formatter.table([])
    return "\n".join(formatter.table([row]) + "".join(
        "\n" + chart(labels.get(name, name), row.get(name) or []) for name in hists)
        for row in rows)
