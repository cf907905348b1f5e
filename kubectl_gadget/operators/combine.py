"""Combines the `array` records of every node into one table per datasource per interval.

Each runner fetches on its own clock, so the arrays of one interval arrive from the nodes at
slightly different times. A round of a datasource opens with the first array that arrives and
closes when every node still running has sent one, when a node sends its next array (it is
in the next interval already), when half an interval has passed since the round opened, or
when the nodes end. A closed round is one table: the rows of all its nodes, each row tagged
with its node (`k8s.node`) when the runner did not put it there. The trap avoided: waiting
for a node that died or ended (its round would never close), or printing one table per node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Row = Mapping[str, Any]
NODE_FIELD = "k8s.node"


@dataclass
class Table:
    """One combined interval of one datasource."""

    ds: str
    rows: list[Row]
    nodes: tuple[str, ...]


@dataclass
class _Round:
    opened: float
    rows: dict[str, list[Row]] = field(default_factory=dict)  # node -> rows


class Combiner:
    """Feed it `add`/`running`/`ended`; it returns the tables that are complete."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.patience = max(0.1, interval / 2)
        self.clock = clock
        self.running: set[str] = set()
        self._rounds: dict[str, _Round] = {}

    def node_started(self, node: str) -> None:
        self.running.add(node)

    def add(self, ds: str, node: str, rows: Sequence[Row]) -> list[Table]:
        """One node's array of `ds`; the tables this completes (none, one or two)."""
        self.running.add(node)
        out: list[Table] = []
        current = self._rounds.get(ds)
        if current is not None and node in current.rows:
            out.append(self._close(ds))
            current = None
        if current is None:
            current = self._rounds[ds] = _Round(self.clock())
        current.rows[node] = [r if NODE_FIELD in r else {**r, NODE_FIELD: node} for r in rows]
        if self.running <= set(current.rows):
            out.append(self._close(ds))
        return out

    def node_ended(self, node: str) -> list[Table]:
        """A node will send no more arrays: rounds that waited only for it are complete."""
        self.running.discard(node)
        return [self._close(ds) for ds, r in list(self._rounds.items())
                if self.running <= set(r.rows)]

    def due(self) -> list[Table]:
        """Rounds that waited long enough for late nodes."""
        now = self.clock()
        return [self._close(ds) for ds, r in list(self._rounds.items())
                if now - r.opened >= self.patience]

    def flush(self) -> list[Table]:
        return [self._close(ds) for ds in list(self._rounds)]

    def _close(self, ds: str) -> Table:
        r = self._rounds.pop(ds)
        nodes = tuple(sorted(r.rows))
        return Table(ds, [row for node in nodes for row in r.rows[node]], nodes)
