"""Output for the Python API: events and array batches handed to a callback as objects.

One job: the formatter of a datasource when no text is wanted. An event becomes an `Event`
(the datasource's name and the event's fields, dotted names as the gadget declares them, values
as decoded: int, float, str, bool, list); an array batch (a top's interval, a snapshot, a
histogram) becomes one `Rows`. `--fields` applies as in `-o json` (every field by default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from io import StringIO
from typing import Any

from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.operators.fields import FieldSelection, select_fields
from kubectl_gadget.output.formatter import Diag, Formatter, Row


@dataclass(frozen=True)
class Event:
    """One event of a stream datasource."""

    ds: str
    data: Mapping[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    def get(self, name: str, default: Any = None) -> Any:
        return self.data.get(name, default)

    @property
    def node(self) -> str | None:
        """The node it happened on (cluster runs; None on a host)."""
        node = self.data.get("k8s.node")
        return str(node) if node else None


@dataclass(frozen=True)
class Rows:
    """One batch of an array datasource: every node's rows of one interval, sorted/limited."""

    ds: str
    rows: Sequence[Mapping[str, Any]]


Item = Event | Rows


class ObjectFormatter(Formatter):
    def __init__(self, ds: str, fields: Sequence[FieldSchema], selection: FieldSelection,
                 sink: Callable[[Item], None], diag: Diag) -> None:
        super().__init__(StringIO(), diag)
        self.ds = ds
        self._sink = sink
        names = [f["name"] for f in select_fields(selection, fields, "json")]
        every = len(names) == len(fields)
        self._keep: frozenset[str] | None = None if every else frozenset(names)

    def _row(self, data: Row) -> dict[str, Any]:
        keep = self._keep
        return dict(data) if keep is None else {k: v for k, v in data.items() if k in keep}

    def event(self, data: Row) -> None:
        self._sink(Event(self.ds, self._row(data)))

    def array(self, rows: Sequence[Row]) -> None:
        self._sink(Rows(self.ds, [self._row(r) for r in rows]))

    def flush(self) -> None:
        pass
