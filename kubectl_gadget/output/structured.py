"""``-o json|jsonpretty|yaml``: one nested object per event (one array per array batch).

``json`` is one compact JSON object per line; ``jsonpretty`` the same, indented; ``yaml`` one
YAML document per event, each starting with ``---``. Dotted field names are nested
(``k8s.node`` -> ``{"k8s": {"node": ...}}``); a name that is both a value and a parent is an
error found when the formatter is built. A key missing from an event is left out, not null.
JSON is strict: NaN and infinities are written as null. The nesting is generated once per
datasource as one expression, and ``json`` encodes a run of events in one call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TextIO

import msgspec
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


def compile_nest(names: Sequence[str]) -> Callable[[Row], dict[str, Any]]:
    """A function building the nested object of ``names`` from a flat row in one expression
    (generated once per datasource); it raises KeyError when the row lacks one of them."""
    tree: dict[str, Any] = {}
    for name in names:
        parts = name.split(".")
        node = tree
        for key in parts[:-1]:
            node = node.setdefault(key, {})
        node[parts[-1]] = name
    env: dict[str, Any] = {}
    try:
        src = f"def nest(d):\n    return {_display(tree)}\n"
        exec(compile(src, "<nest>", "exec"), env)  # noqa: S102 - keys are repr()-quoted literals
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return _missing  # too deep for one expression: the generic walk does it
    nest: Callable[[Row], dict[str, Any]] = env["nest"]
    return nest


def _display(node: dict[str, Any]) -> str:
    items = []
    for key, value in node.items():
        inner = _display(value) if isinstance(value, dict) else f"d[{value!r}]"
        items.append(f"{key!r}: {inner}")
    return "{" + ", ".join(items) + "}"


def _missing(data: Row) -> dict[str, Any]:
    raise KeyError("nest")


# msgspec writes strict JSON (NaN and infinities as null) and is several times faster than
# the standard library here; output bytes are UTF-8, as before.
_encoder = msgspec.json.Encoder(enc_hook=str)


def _dump_json(obj: Any) -> str:
    return _encoder.encode(obj).decode() + "\n"


def _dump_json_lines(objs: Sequence[Any]) -> str:
    return _encoder.encode_lines(objs).decode()


def _dump_json_pretty(obj: Any) -> str:
    return msgspec.json.format(_encoder.encode(obj), indent=2).decode() + "\n"


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
        self._nest_all = compile_nest(self.names)
        self._dump = dump

    def nest(self, data: Row) -> dict[str, Any]:
        """The selected fields of ``data``, nested by their dotted names (missing keys left out)."""
        try:
            return self._nest_all(data)
        except KeyError:
            return self._nest_some(data)

    def _nest_some(self, data: Row) -> dict[str, Any]:
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

    def events(self, rows: Sequence[Row]) -> None:
        nest = self.nest
        if self._dump is _dump_json:
            self._out.write(_dump_json_lines([nest(row) for row in rows]))
        else:
            self._out.write("".join([self._dump(nest(row)) for row in rows]))

    def array(self, rows: Sequence[Row]) -> None:
        self._out.write(self._dump([self.nest(row) for row in rows]))
