"""Turns raw ring-buffer records into protocol `event` lines, by a plan built once from BTF.

The plan is the flattened record layout (name, offset, size, kind, typedef tags) from the
gadget's BTF, so a member added to a gadget's C struct shows up with no Python change. From the
plan one `struct.Struct` reads every non-overlapping field of a record in a single call, and a
per-datasource batch function is generated as Python source, so the per-event work is one
unpack, one %-format of a prebuilt JSON template and a few cached lookups: no dicts, no
json.dumps, no per-field function dispatch. The trap this avoids is a "generic" decoder that
walks field descriptors per event, which costs several times more than the kernel side.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Mapping, Sequence

from node_runner import constants as C
from node_runner.formatters import formatter_for
from node_runner.gadget.layout import FlatField
from node_runner.gadget.schema import OutputField, companion, datasource_fields
from node_runner.gadget.schema import wire_type as wire_type  # re-exported

_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
              (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}
_FLOAT_CODES = {4: "f", 8: "d"}

BatchEncoder = Callable[[object, list[int], list[int], list[str]], int]
Enricher = Callable[[int], str]


class _Codegen:
    """Collects the template pieces, value expressions and the names they reference."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.exprs: list[str] = []
        self.env: dict[str, object] = {"_q": _quote}

    def bind(self, prefix: str, value: object) -> str:
        name = f"_{prefix}{len(self.env)}"
        self.env[name] = value
        return name

    def add(self, name: str, expr: str, numeric: bool = False) -> None:
        sep = "," if self.parts else ""
        key = _quote(name).replace("%", "%%")
        self.parts.append(f"{sep}{key}:{'%d' if numeric else '%s'}")
        self.exprs.append(expr)


def _value_expr(cg: _Codegen, f: FlatField, v: str) -> tuple[str, bool]:
    """Expression rendering field `f`, whose raw value is the Python expression `v`."""
    if f.kind == "int":
        return v, True
    if f.kind == "bool":
        return f"('true' if {v} else 'false')", False
    if f.kind == "string":
        return f"_q({v}.partition(b'\\0')[0].decode('utf-8', 'backslashreplace'))", False
    if f.kind == "enum":
        names = {val: _quote(name) for val, name in f.enum_values}
        table = cg.bind("enum", names)
        return f"({table}.get({v}) or '\"%d\"' % {v})", False
    if f.kind == "float":
        return f"{cg.bind('json', json.dumps)}({v})", False
    if f.kind == "array":
        fmt = struct.Struct(f"<{f.count}{_INT_CODES.get((f.elem_size, f.elem_signed), 'B')}")
        conv = cg.bind("arr", lambda b, s=fmt: json.dumps(list(s.unpack(b))))
        return f"{conv}({v})", False
    return f"_q({v}.hex())", False


def _read_plan(
    fields: Sequence[FlatField],
) -> tuple[struct.Struct, dict[str, int], list[FlatField]]:
    """One Struct over the non-overlapping byte-aligned fields; the rest are read one by one."""
    fmt = ["<"]
    index: dict[str, int] = {}
    extra: list[FlatField] = []
    pos = 0
    for f in sorted(fields, key=lambda f: (f.offset, -f.size)):
        if f.bit_size or f.offset < pos:
            extra.append(f)
            continue
        if f.offset > pos:
            fmt.append(f"{f.offset - pos}x")
        fmt.append(_struct_code(f))
        index[f.name] = len(index)
        pos = f.offset + f.size
    return struct.Struct("".join(fmt)), index, extra


def _struct_code(f: FlatField) -> str:
    if f.kind in ("int", "enum"):
        return _INT_CODES[(f.size, f.signed)]
    if f.kind == "bool" and f.size == 1:
        return "?"
    if f.kind == "float":
        return _FLOAT_CODES[f.size]
    if f.kind == "bool":
        return _INT_CODES[(f.size, False)]
    return f"{f.size}s"


def _raw_expr(cg: _Codegen, f: FlatField, index: dict[str, int]) -> str:
    if f.name in index:
        return f"v[{index[f.name]}]"
    if f.bit_size:
        mask = (1 << f.bit_size) - 1
        value = (f"((int.from_bytes(buf[off + {f.offset}:off + {f.offset + f.size}], 'little')"
                 f" >> {f.bit_offset}) & {mask})")
        if f.signed:
            half = 1 << (f.bit_size - 1)
            value = f"(({value} ^ {half}) - {half})"
        return value
    one = cg.bind("s", struct.Struct("<" + _struct_code(f)))
    return f"{one}.unpack_from(buf, off + {f.offset})[0]"


class DatasourceEncoder:
    """Encodes the records of one stream datasource; build once, call `encode_batch` often."""

    def __init__(self, ds: str, record_size: int, fields: Sequence[FlatField],
                 annotations: Mapping[str, Mapping[str, str]], *, offset_ns: int,
                 enricher: Enricher | None = None,
                 enrichment: Sequence[OutputField] = (), skip_pid: int | None = None,
                 row_only: bool = False) -> None:
        self.ds = ds
        self.record_size = record_size
        self.fields: list[OutputField] = datasource_fields(fields, annotations)
        cg = _Codegen()
        layout, index, _extra = _read_plan(fields)
        if layout.size > record_size:
            raise ValueError(f"layout of {ds} ({layout.size} bytes) exceeds the record size")
        mntns_expr = None
        self._skip = ""
        pid = next((f for f in fields if C.TAG_PID in f.tags and f.name in index), None)
        if skip_pid is not None and pid is not None:
            # The runner's own work (reading tracefs while attaching, ...) is not news.
            self._skip = f"v[{index[pid.name]}] == {int(skip_pid)}"
        for f in fields:
            raw = _raw_expr(cg, f, index)
            expr, numeric = _value_expr(cg, f, raw)
            cg.add(f.name, expr, numeric)
            if C.TAG_MNTNS_ID in f.tags and mntns_expr is None:
                mntns_expr = raw
            self._add_companion(cg, f, raw, offset_ns)
        tail = ""
        if enricher is not None and mntns_expr is not None:
            tail = "%s"
            cg.exprs.append(f"{cg.bind('enrich', enricher)}({mntns_expr})")
            self.fields.extend(enrichment)
        # An array datasource's rows are bare objects: the `array` record wraps them (arrays.py).
        head = '{"type":"event","ds":' + _quote(ds).replace("%", "%%") + ',"data":{'
        head = "{" if row_only else head
        template = head + "".join(cg.parts) + tail + ("}" if row_only else "}}")
        self.encode_batch: BatchEncoder = self._compile(cg, layout, template)

    def _add_companion(self, cg: _Codegen, f: FlatField, raw: str, offset_ns: int) -> None:
        comp = companion(f)
        if comp is None:
            return
        name = comp[0]
        fmt = formatter_for(f.tags, offset_ns)
        if fmt is None:
            cg.add(name, raw, numeric=True)
        else:
            cg.add(name, f"{cg.bind('fmt', fmt)}({raw})")

    def _compile(self, cg: _Codegen, layout: struct.Struct, template: str) -> BatchEncoder:
        cg.env.update(_unpack=layout.unpack_from, _TPL=template, _SIZE=self.record_size)
        src = "\n".join([
            "def encode_batch(buf, offsets, sizes, out):",
            "    dropped = 0",
            "    append = out.append",
            "    for off, size in zip(offsets, sizes):",
            "        if size < _SIZE:",
            "            dropped += 1",
            "            continue",
            "        try:",
            "            v = _unpack(buf, off)",
            *([f"            if {self._skip}:", "                continue"] if self._skip else []),
            f"            append(_TPL % ({', '.join(cg.exprs)},))",
            "        except Exception:",
            "            dropped += 1",
            "    return dropped",
        ])
        code = compile(src, f"<encoder {self.ds}>", "exec")
        exec(code, cg.env)  # noqa: S102 - source built above from BTF names and constants only
        return cg.env["encode_batch"]  # type: ignore[return-value]
