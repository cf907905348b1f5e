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
from collections.abc import Callable, Sequence

from node_runner import constants as C
from node_runner.formatters import FormatContext, formatter
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.layout import FlatField
from node_runner.gadget.nesting import Tree, nesting_tree
from node_runner.gadget.schema import DatasourceSchema, SchemaField

_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
              (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}
_FLOAT_CODES = {4: "f", 8: "d"}

BatchEncoder = Callable[[object, list[int], list[int], list[str]], int]
Enricher = Callable[[int], str]


class _Codegen:
    """Collects the template pieces, value expressions and the names they reference."""

    def __init__(self) -> None:
        self.entries: list[tuple[str, str, bool]] = []  # (field name, expression, numeric)
        self.exprs: list[str] = []
        self.env: dict[str, object] = {"_q": _quote}

    def bind(self, prefix: str, value: object) -> str:
        name = f"_{prefix}{len(self.env)}"
        self.env[name] = value
        return name

    def add(self, name: str, expr: str, numeric: bool = False) -> None:
        self.entries.append((name, expr, numeric))

    def body(self, nested: bool) -> str:
        """The object members' template (flat, or nested by dotted names); sets `exprs` to the
        value expressions in the template's order."""
        if not nested:
            self.exprs = [expr for _, expr, _ in self.entries]
            return ",".join(_member(name, numeric) for name, _, numeric in self.entries)
        tree = nesting_tree([name for name, _, _ in self.entries])
        if tree is None:
            raise GadgetFormatError("field names cannot be nested as -o json prints them")
        self.exprs = []
        return self._nested(tree)

    def _nested(self, tree: Tree) -> str:
        out = []
        for key, child in tree:
            if isinstance(child, int):
                _, expr, numeric = self.entries[child]
                self.exprs.append(expr)
                out.append(_member(key, numeric))
            else:
                out.append(_quote(key).replace("%", "%%") + ":{" + self._nested(child) + "}")
        return ",".join(out)


def _member(key: str, numeric: bool) -> str:
    return f"{_quote(key).replace('%', '%%')}:{'%d' if numeric else '%s'}"


def _array_converter(f: FlatField) -> Callable[[bytes], str]:
    """bytes of array field `f` -> its JSON list."""
    size, kind = f.elem_size, f.elem_kind
    if kind in ("int", "enum") and size == 16:
        def wide(b: bytes) -> str:
            return json.dumps([int.from_bytes(b[i:i + 16], "little", signed=f.elem_signed)
                               for i in range(0, len(b), 16)])
        return wide
    if kind == "float":
        code = _FLOAT_CODES[size]
    elif kind == "bool" and size == 1:
        code = "?"
    else:
        code = _INT_CODES[(size, f.elem_signed if kind != "bool" else False)]
    fmt = struct.Struct(f"<{f.count}{code}")
    return lambda b: json.dumps(list(fmt.unpack(b)))


def _value_expr(cg: _Codegen, f: FlatField, v: str, as_name: bool) -> tuple[str, bool]:
    """Expression rendering member `f`, whose raw value is the Python expression `v`."""
    if f.kind == "enum" and as_name:
        return _enum_expr(cg, f, v), False
    if f.kind in ("int", "enum"):
        return v, True
    if f.kind == "bool":
        return f"('true' if {v} else 'false')", False
    if f.kind == "string":
        return f"_q({v}.partition(b'\\0')[0].decode('utf-8', 'backslashreplace'))", False
    if f.kind == "float":
        return f"{cg.bind('json', _json_float)}({v})", False
    if f.kind == "array":
        return f"{cg.bind('arr', _array_converter(f))}({v})", False
    return f"_q({v}.hex())", False


def _json_float(x: float) -> str:
    return json.dumps(x) if x == x and x not in (float("inf"), float("-inf")) else "null"


def _enum_expr(cg: _Codegen, f: FlatField, v: str) -> str:
    names = {val: _quote(name) for val, name in f.enum_values}
    table = cg.bind("enum", names)
    return f"({table}.get({v}) or '\"%d\"' % {v})"


def _bit_set(f: FlatField, separator: str) -> Callable[[int], str]:
    values = [(val, name) for val, name in f.enum_values if val]
    zero = next((name for val, name in f.enum_values if val == 0), "")
    cache: dict[int, str] = {}
    mask = (1 << (f.size * 8)) - 1

    def fmt(value: int) -> str:
        text = cache.get(value)
        if text is None:
            bits = value & mask
            names = [name for val, name in values if bits & (val & mask) == (val & mask)]
            if not names and bits == 0:
                names = [zero] if zero else []
            if len(cache) > 4096:
                cache.clear()
            text = cache[value] = _quote(separator.join(names))
        return text

    return fmt


def _computed_expr(cg: _Codegen, f: SchemaField, raws: dict[str, str],
                   members: dict[str, FlatField], ctx: FormatContext) -> str:
    args = ", ".join(raws[s] for s in f.sources)
    if f.formatter == "enum":
        return _enum_expr(cg, members[f.sources[0]], raws[f.sources[0]])
    if f.formatter == "enum_set":
        fmt = _bit_set(members[f.sources[0]], f.options.get("separator", "|"))
        return f"{cg.bind('set', fmt)}({args})"
    return f"{cg.bind('fmt', formatter(f.formatter, ctx))}({args})"


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
    if f.kind in ("int", "enum", "bool") and (f.size, False) in _INT_CODES:
        if f.kind == "bool":
            return "?" if f.size == 1 else _INT_CODES[(f.size, False)]
        return _INT_CODES[(f.size, f.signed)]
    if f.kind == "float" and f.size in _FLOAT_CODES:
        return _FLOAT_CODES[f.size]
    return f"{f.size}s"  # strings, arrays, bytes and 128-bit integers


def _raw_expr(cg: _Codegen, f: FlatField, index: dict[str, int]) -> str:
    if f.bit_size:
        mask = (1 << f.bit_size) - 1
        value = (f"((int.from_bytes(b[o + {f.offset}:o + {f.offset + f.size}], 'little')"
                 f" >> {f.bit_offset}) & {mask})")
        if f.signed:
            half = 1 << (f.bit_size - 1)
            value = f"(({value} ^ {half}) - {half})"
        return value
    if f.name in index:
        value = f"v[{index[f.name]}]"
    else:
        one = cg.bind("s", struct.Struct("<" + _struct_code(f)))
        value = f"{one}.unpack_from(b, o + {f.offset})[0]"
    if f.kind in ("int", "enum") and _struct_code(f).endswith("s"):
        return f"int.from_bytes({value}, 'little', signed={f.signed})"
    return value


class DatasourceEncoder:
    """Encodes the records of one stream datasource; build once, call `encode_batch` often.

    A record shorter than `record_size` is zero-padded (IG's rule: gadgets may submit only
    the used part of their struct); `encode_batch` returns how many records it dropped
    because rendering them failed.
    """

    def __init__(self, schema: DatasourceSchema, record_size: int, *,
                 context: FormatContext | None = None, enricher: Enricher | None = None,
                 enrichment: Sequence[SchemaField] = (), skip_pid: int | None = None,
                 row_only: bool = False, nested: bool = False) -> None:
        self.ds = schema.name
        self.record_size = record_size
        ctx = context or FormatContext()
        members = schema.members
        cg = _Codegen()
        layout, index, _extra = _read_plan(list(members.values()))
        if layout.size > record_size:
            raise GadgetFormatError(f"datasource {self.ds}: layout ({layout.size} bytes) "
                                    f"exceeds the record size ({record_size} bytes)")
        raws = {name: _raw_expr(cg, m, index) for name, m in members.items()}
        for f in schema.fields:
            if f.member is not None and f.type == "enum" and "separator" in f.options:
                fmt = _bit_set(f.member, f.options["separator"])
                expr, numeric = f"{cg.bind('set', fmt)}({raws[f.name]})", False
            elif f.member is not None:
                expr, numeric = _value_expr(cg, f.member, raws[f.name], as_name=f.type == "enum")
            else:
                expr, numeric = _computed_expr(cg, f, raws, members, ctx), False
            cg.add(f.name, expr, numeric)
        body = cg.body(nested)
        mntns = next((m for m in members.values() if C.TAG_MNTNS_ID in m.tags
                      and m.kind == "int"), None)
        tail = ""
        if enricher is not None and mntns is not None:
            tail = "%s"
            cg.exprs.append(f"{cg.bind('enrich', enricher)}({raws[mntns.name]})")
            schema = schema.with_fields(enrichment)
        self.schema = schema
        self.fields: tuple[SchemaField, ...] = schema.fields
        pid = next((m for m in members.values() if C.TAG_PID in m.tags and m.name in index
                    and m.kind == "int"), None)
        # The runner's own work (reading tracefs while attaching, ...) is not news.
        self._skip = (f"v[{index[pid.name]}] == {int(skip_pid)}"
                      if skip_pid is not None and pid is not None else "")
        # An array datasource's rows are bare objects: the `array` record wraps them (arrays.py).
        head = '{"type":"event","ds":' + _quote(self.ds).replace("%", "%%") + ',"data":{'
        head = "{" if row_only else head
        template = head + body + tail + ("}" if row_only else "}}")
        self.encode_batch: BatchEncoder = self._compile(cg, layout, template)

    def _compile(self, cg: _Codegen, layout: struct.Struct, template: str) -> BatchEncoder:
        cg.env.update(_unpack=layout.unpack_from, _TPL=template, _SIZE=self.record_size,
                      _PAD=bytes(self.record_size))
        src = "\n".join([
            "def encode_batch(buf, offsets, sizes, out):",
            "    dropped = 0",
            "    append = out.append",
            "    for o, size in zip(offsets, sizes):",
            "        b = buf",
            "        if size < _SIZE:",
            "            b = bytes(buf[o:o + size]) + _PAD[size:]",
            "            o = 0",
            "        try:",
            "            v = _unpack(b, o)",
            *([f"            if {self._skip}:", "                continue"] if self._skip else []),
            f"            append(_TPL % ({', '.join(cg.exprs)},))",
            "        except Exception:",
            "            dropped += 1",
            "    return dropped",
        ])
        code = compile(src, f"<encoder {self.ds}>", "exec")
        exec(code, cg.env)  # noqa: S102 - source built above from BTF names and constants only
        return cg.env["encode_batch"]  # type: ignore[return-value]
