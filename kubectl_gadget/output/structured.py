"""``-o json|jsonpretty|yaml``: one nested object per event (one array per array batch).

``json`` is one compact JSON object per line; ``jsonpretty`` the same, indented; ``yaml`` one
YAML document per event, each starting with ``---``. Dotted field names are nested
(``k8s.node`` -> ``{"k8s": {"node": ...}}``); a name that is both a value and a parent is an
error found when the formatter is built. A key missing from an event is left out, not null.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TextIO

import yaml

from kubectl_gadget.errors import GadgetError
from kubectl_gadget.output.formatter import Diag, Formatter, Row

_SafeDumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


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


DUMPERS: dict[str, Callable[[Any], str]] = {
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
