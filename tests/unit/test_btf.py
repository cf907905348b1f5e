"""BTF parser: cross-checked type by type against bpftool (test objects and the running
kernel's vmlinux), hand-built blobs for kinds clang 14 cannot emit, datasec fix-up checked
against llvm-objdump, markers, and malformed input.

Also home of ``BlobBuilder``, used by the layout tests for hand-built BTF.
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any, TypeVar

import pytest

from node_runner.gadget.btf import Btf, load_object_btf
from node_runner.gadget.btf_types import (
    Array,
    BtfType,
    Composite,
    Datasec,
    DeclTag,
    EnumType,
    Float,
    Func,
    FuncProto,
    Fwd,
    Int,
    Kind,
    Modifier,
    Ptr,
    Typedef,
    Var,
)
from node_runner.gadget.elf import ElfFile
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.markers import Iter, MapIter, Param, Tracer, find_markers
from tests.unit.test_elf import compile_bpf, objdump

VMLINUX = Path("/sys/kernel/btf/vmlinux")
T = TypeVar("T")


class BlobBuilder:
    """Builds a raw BTF blob type by type; ``add`` returns the new type id."""

    def __init__(self) -> None:
        self.strings = bytearray(b"\0")
        self.words: list[int] = []
        self.count = 0

    def s(self, name: str) -> int:
        if not name:
            return 0
        self.strings += name.encode() + b"\0"
        return len(self.strings) - len(name) - 1

    def add(self, kind: int, name: str = "", st: int = 0, vlen: int = 0, kflag: int = 0,
            extra: tuple[int, ...] = ()) -> int:
        info = (kflag << 31) | (kind << 24) | vlen
        self.words += [self.s(name), info, st, *(w & 0xFFFFFFFF for w in extra)]
        self.count += 1
        return self.count

    def build(self, endian: str = "<") -> bytes:
        types = struct.pack(f"{endian}{len(self.words)}I", *self.words)
        header = struct.pack(f"{endian}HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                             len(self.strings))
        return header + types + bytes(self.strings)


def _bpftool_json(path: Path) -> list[dict[str, Any]]:
    tool = shutil.which("bpftool")
    if tool is None:
        pytest.skip("bpftool is not installed: nothing independent to compare with")
    out = subprocess.run([tool, "-j", "btf", "dump", "file", str(path)], check=True,
                         capture_output=True, text=True).stdout
    types: list[dict[str, Any]] = json.loads(out)["types"]
    for t in types:  # bpftool's JSON sign-extends unsigned 32-bit enum values; its text doesn't
        if t["kind"] == "ENUM" and t["encoding"] == "UNSIGNED":
            for v in t["values"]:
                v["val"] &= 0xFFFFFFFF
    return types


_ENCODING = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def _as_bpftool(tid: int, t: BtfType) -> dict[str, Any]:
    """Our record in the shape of ``bpftool -j btf dump`` output."""
    d: dict[str, Any] = {"id": tid, "kind": t.kind.name, "name": t.name or "(anon)"}
    if isinstance(t, Int):
        d |= {"size": t.size, "bits_offset": t.bit_offset, "nr_bits": t.bits,
              "encoding": _ENCODING[t.encoding]}
    elif isinstance(t, Composite):
        members = []
        for m in t.members:
            md = {"name": m.name or "(anon)", "type_id": m.type, "bits_offset": m.bit_offset}
            members.append(md | ({"bitfield_size": m.bitfield_size} if m.bitfield_size else {}))
        d |= {"size": t.size, "vlen": len(t.members), "members": members}
    elif isinstance(t, EnumType):
        d |= {"encoding": "SIGNED" if t.signed else "UNSIGNED", "size": t.size,
              "vlen": len(t.values), "values": [{"name": v.name, "val": v.value}
                                                for v in t.values]}
    elif isinstance(t, Fwd):
        d["fwd_kind"] = "union" if t.is_union else "struct"
    elif isinstance(t, (Func, Var)):
        d |= {"type_id": t.type, "linkage": _LINKAGE[t.linkage]}
    elif isinstance(t, FuncProto):
        d |= {"ret_type_id": t.return_type, "vlen": len(t.params),
              "params": [{"name": p.name or "(anon)", "type_id": p.type} for p in t.params]}
    elif isinstance(t, Datasec):
        d |= {"size": t.size, "vlen": len(t.vars), "vars": [
            {"type_id": v.type, "offset": v.offset, "size": v.size} for v in t.vars]}
    elif isinstance(t, DeclTag):
        d |= {"type_id": t.type, "component_idx": t.component_idx}
    elif isinstance(t, Array):
        d |= {"type_id": t.type, "index_type_id": t.index_type, "nr_elems": t.nelems}
    elif isinstance(t, Float):
        d["size"] = t.size
    elif isinstance(t, (Ptr, Typedef, Modifier)):
        d["type_id"] = t.type
    return d


def _assert_same_as_bpftool(btf: Btf, path: Path) -> None:
    expected = _bpftool_json(path)
    ours = [_as_bpftool(tid, t) for tid, t in enumerate(btf.types) if tid]
    assert len(ours) == len(expected)
    mismatches = [(o, e) for o, e in zip(ours, expected, strict=True) if o != e]
    assert not mismatches, mismatches[:3]


@pytest.fixture(scope="session")
def objects(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("btf")
    return {name: compile_bpf(f"{name}.bpf.c", out) for name in ("globals", "record")}


def _raw_btf(obj: Path) -> bytes:
    return bytes(ElfFile.parse(obj.read_bytes()).section(".BTF").data)


@pytest.mark.parametrize("name", ["globals", "record"])
def test_object_btf_matches_bpftool(objects: dict[str, Path], name: str) -> None:
    _assert_same_as_bpftool(Btf.parse(_raw_btf(objects[name])), objects[name])


def _vmlinux() -> bytes:
    try:
        return VMLINUX.read_bytes()
    except OSError as exc:
        pytest.skip(f"kernel BTF not readable ({exc}); nothing to cross-check")


def test_vmlinux_matches_bpftool_type_by_type() -> None:
    raw = _vmlinux()
    btf = Btf.parse(raw)
    assert len(btf.types) > 50_000
    _assert_same_as_bpftool(btf, VMLINUX)


def _bpftool_raw_struct(name: str) -> tuple[int, dict[str, int]]:
    """(size, member -> bit offset) of ``struct name`` from bpftool's text dump of vmlinux."""
    tool = shutil.which("bpftool")
    if tool is None:
        pytest.skip("bpftool is not installed: nothing independent to compare with")
    text = subprocess.run([tool, "btf", "dump", "file", str(VMLINUX), "format", "raw"],
                          check=True, capture_output=True, text=True).stdout
    m = re.search(rf"^\[\d+\] STRUCT '{name}' size=(\d+) vlen=\d+\n((?:\t.*\n)*)", text, re.M)
    assert m, f"bpftool shows no struct {name}"
    members = dict(re.findall(r"\t'(\S+)' type_id=\d+ bits_offset=(\d+)", m.group(2)))
    return int(m.group(1)), {k: int(v) for k, v in members.items()}


def _member(btf: Btf, struct_name: str, member: str) -> tuple[int, int]:
    """(bit offset, resolved type id) of a member, looked up with our parser only."""
    comp = _typed(btf, btf.find(struct_name, Kind.STRUCT)[0], Composite)
    m = next(m for m in comp.members if m.name == member)
    return m.bit_offset, btf.resolve(m.type)[0]


def test_vmlinux_task_struct_and_mnt_namespace() -> None:
    btf = Btf.parse(_vmlinux())
    size, members = _bpftool_raw_struct("task_struct")
    assert btf.size_of(btf.find("task_struct", Kind.STRUCT)[0]) == size
    assert _member(btf, "task_struct", "nsproxy")[0] == members["nsproxy"]
    ns_bits, ns_type = _member(btf, "mnt_namespace", "ns")
    ns_common = _typed(btf, ns_type, Composite)
    inum_bits = next(m.bit_offset for m in ns_common.members if m.name == "inum")
    _, mnt_members = _bpftool_raw_struct("mnt_namespace")
    _, common_members = _bpftool_raw_struct("ns_common")
    assert ns_bits + inum_bits == mnt_members["ns"] + common_members["inum"]


def test_find_vars_and_resolve(objects: dict[str, Path]) -> None:
    btf = Btf.parse(_raw_btf(objects["record"]))
    (event_id,) = btf.find("test_event", Kind.STRUCT)
    assert btf.find("test_event") == [event_id]
    assert btf.find("test_event", Kind.UNION) == [] and btf.find("nope") == []
    assert btf.size_of(event_id) == 208  # sizeof(struct test_event), see layout_probe.c
    (pid_alias,) = btf.find("my_pid", Kind.TYPEDEF)
    final, chain = btf.resolve(pid_alias)
    assert chain == ("my_pid", "gadget_pid", "__u32")
    assert btf.types[final] == Int("unsigned int", 4, 32, 0, 0)
    assert dict(btf.vars()) == {
        "test_event_global": btf.find("test_event_global")[0],
        "_license": btf.find("_license")[0],
    }
    assert btf.resolve(event_id) == (event_id, ())


def test_resolve_skips_const_volatile(objects: dict[str, Path]) -> None:
    btf = Btf.parse(_raw_btf(objects["globals"]))
    var = btf.types[btf.find("targ_pid", Kind.VAR)[0]]
    assert isinstance(var, Var)
    assert btf.types[var.type].kind == Kind.CONST
    final, chain = btf.resolve(var.type)
    assert chain == ("__u32",) and btf.types[final].name == "unsigned int"
    assert btf.size_of(var.type) == 4
    comm = _typed(btf, btf.find("targ_comm", Kind.VAR)[0], Var)
    assert btf.size_of(comm.type) == 16


def test_datasec_fixup_matches_objdump(objects: dict[str, Path]) -> None:
    obj = objects["globals"]
    raw_btf = Btf.parse(_raw_btf(obj))
    fixed = load_object_btf(ElfFile.parse(obj.read_bytes()))
    sizes = {m.group(1): int(m.group(2), 16) for m in
             re.finditer(r"^\s*\d+\s+(\S+)\s+([0-9a-f]{8})\s", objdump("-h", str(obj)), re.M)}
    values = {m.group(2): (m.group(1), int(m.group(0)[:16], 16)) for m in
              re.finditer(r"^[0-9a-f]{16} g\s+O\s+(\S+)\s+[0-9a-f]{16} (\S+)$",
                          objdump("-t", str(obj)), re.M)}
    checked = 0
    for sec_name in (".rodata", ".data", ".bss", ".maps", "license"):
        (sec_id,) = fixed.find(sec_name, Kind.DATASEC)
        raw_sec, sec = raw_btf.types[sec_id], fixed.types[sec_id]
        assert isinstance(raw_sec, Datasec) and isinstance(sec, Datasec)
        assert raw_sec.size == 0 and sec.size == sizes[sec_name]  # clang leaves 0
        for info in sec.vars:
            name = fixed.types[info.type].name
            assert values[name] == (sec_name, info.offset)
            checked += 1
    assert checked == 6 + 1 + 8 + 1 + 1
    rodata = _typed(fixed, fixed.find(".rodata")[0], Datasec)
    offsets = {fixed.types[v.type].name: v.offset for v in rodata.vars}
    assert len(set(offsets.values())) == 6  # several params, all at distinct offsets


def test_object_without_btf(tmp_path: Path) -> None:
    obj = compile_bpf("globals.bpf.c", tmp_path, "-g0")
    with pytest.raises(GadgetFormatError, match="object has no BTF; compile with -g"):
        load_object_btf(ElfFile.parse(obj.read_bytes()))


def test_markers_found(objects: dict[str, Path]) -> None:
    markers = find_markers(load_object_btf(ElfFile.parse(objects["globals"].read_bytes())))
    assert markers.tracers == (Tracer("open", "events", "event"),)
    assert markers.params == (Param("targ_pid"), Param("targ_failed"))
    assert markers.mapiters == (MapIter("top", "stats"),)
    assert markers.iters == (Iter("snap", "task_info", ("iter_prog",)),)


@pytest.mark.parametrize("bad", ["gadget_tracer_open___events", "gadget_param_",
                                 "gadget_mapiter_top", "gadget_iter_a___b",
                                 "gadget_tracer_a___b___c___d", "gadget_mapiter_a______b"])
def test_bad_marker_names(bad: str) -> None:
    b = BlobBuilder()
    ptr = b.add(Kind.PTR)
    b.add(Kind.VAR, bad, ptr, extra=(1,))
    with pytest.raises(GadgetFormatError, match=re.escape(repr(bad))):
        find_markers(Btf.parse(b.build()))


def _every_kind() -> BlobBuilder:
    b = BlobBuilder()
    u32 = b.add(Kind.INT, "unsigned int", 4, extra=(32,))
    b.add(Kind.INT, "int", 4, extra=((1 << 24) | 32,))
    b.add(Kind.ENUM, "sgn", 4, vlen=2, kflag=1, extra=(b.s("NEG"), -2, b.s("POS"), 3))
    b.add(Kind.ENUM, "uns", 4, vlen=1, extra=(b.s("BIG"), 0xFFFFFFFE))
    b.add(Kind.ENUM64, "e64s", 8, vlen=1, kflag=1, extra=(b.s("M"), 0xFFFFFFFF, 0xFFFFFFFF))
    b.add(Kind.ENUM64, "e64u", 8, vlen=1, extra=(b.s("H"), 1, 0x80000000))
    b.add(Kind.FWD, "u", kflag=1)
    proto = b.add(Kind.FUNC_PROTO, "", u32, vlen=1, extra=(b.s("arg"), u32))
    b.add(Kind.FUNC, "f", proto, vlen=1)
    b.add(Kind.DECL_TAG, "tag", proto + 1, extra=(-1,))
    b.add(Kind.TYPE_TAG, "user", u32)
    b.add(Kind.RESTRICT, "", u32)
    b.add(Kind.FLOAT, "double", 8)
    b.add(Kind.STRUCT, "bits", 4, vlen=1, kflag=1, extra=(b.s("b"), u32, (5 << 24) | 3))
    return b


def _typed(btf: Btf, tid: int, cls: type[T]) -> T:
    t = btf.types[tid]
    assert isinstance(t, cls), t
    return t


def test_hand_built_kinds_clang14_cannot_emit() -> None:
    btf = Btf.parse(_every_kind().build())
    signed = _typed(btf, 3, EnumType)
    assert (signed.kind, signed.signed) == (Kind.ENUM, True)
    assert [(v.name, v.value) for v in signed.values] == [("NEG", -2), ("POS", 3)]
    assert _typed(btf, 4, EnumType).values[0].value == 0xFFFFFFFE  # unsigned: no sign
    e64s, e64u = _typed(btf, 5, EnumType), _typed(btf, 6, EnumType)
    assert (e64s.kind, e64s.signed, e64s.values[0].value) == (Kind.ENUM64, True, -1)
    assert (e64u.kind, e64u.signed, e64u.values[0].value) == (Kind.ENUM64, False, (1 << 63) | 1)
    assert btf.types[7] == Fwd("u", True)
    assert _typed(btf, 8, FuncProto).params[0].name == "arg"
    assert btf.types[9] == Func("f", 8, 1)
    assert btf.types[10] == DeclTag("tag", 9, -1)
    assert btf.resolve(11) == (1, ())  # TYPE_TAG is skipped like a modifier
    assert btf.resolve(12) == (1, ())
    assert btf.size_of(13) == 8
    member = _typed(btf, 14, Composite).members[0]
    assert (member.bit_offset, member.bitfield_size) == (3, 5)
    with pytest.raises(GadgetFormatError, match="has no size"):
        btf.size_of(8)  # a FUNC_PROTO


def test_big_endian_blob_parses_the_same() -> None:
    b = _every_kind()
    assert Btf.parse(b.build(">")).types == Btf.parse(b.build("<")).types


def _header(**fields: int) -> bytes:
    values = {"magic": 0xEB9F, "version": 1, "hdr_len": 24, "type_off": 0, "type_len": 0,
              "str_off": 0, "str_len": 1} | fields
    return struct.pack("<HBBIIIII", values["magic"], values["version"], 0, values["hdr_len"],
                       values["type_off"], values["type_len"], values["str_off"],
                       values["str_len"])


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"\x9f\xeb\x01\x00", "BTF header: 4 bytes"),
        (_header(magic=0x1234) + b"\0", "bad magic"),
        (_header(version=2) + b"\0", "unsupported version"),
        (_header(hdr_len=4000) + b"\0", "bad header length"),
        (_header(type_len=12, str_off=12) + b"\0", "type section"),
        (_header(str_len=50) + b"\0", "string section"),
        (_header(type_len=6, str_off=8) + bytes(8) + b"\0", "not 4-aligned"),
        (_header(str_len=2) + b"\0a", "start and end with NUL"),
    ],
)
def test_malformed_headers(blob: bytes, message: str) -> None:
    with pytest.raises(GadgetFormatError, match=message):
        Btf.parse(blob)


def test_malformed_types() -> None:
    b = BlobBuilder()
    b.add(Kind.INT, "int", 4, extra=(32,))
    good = b.build()
    b.words[0] = 999  # name offset outside the string section
    with pytest.raises(GadgetFormatError, match="string offset 999"):
        Btf.parse(b.build())
    b.words[0], b.words[1] = 0, 25 << 24
    with pytest.raises(GadgetFormatError, match="unknown kind 25"):
        Btf.parse(b.build())
    b.words[1] = (Kind.STRUCT << 24) | 3  # three members announced, none present
    with pytest.raises(GadgetFormatError, match="past the end of the type section"):
        Btf.parse(b.build())
    for cut in range(len(good)):  # every truncation of a valid blob
        with pytest.raises(GadgetFormatError):
            Btf.parse(good[:cut])


def test_cycles_and_bad_ids_are_format_errors() -> None:
    b = BlobBuilder()
    b.add(Kind.TYPEDEF, "loop", 1)
    b.add(Kind.ARRAY, "", 0, extra=(2, 0, 4))  # an array of itself
    b.add(Kind.PTR, "", 77)
    btf = Btf.parse(b.build())
    with pytest.raises(GadgetFormatError, match="too long"):
        btf.resolve(1)
    with pytest.raises(GadgetFormatError, match="too long"):
        btf.size_of(2)
    assert btf.size_of(3) == 8  # a pointer has a size even when its target is missing
    with pytest.raises(GadgetFormatError, match="type id 77 is out of range"):
        btf.resolve(_typed(btf, 3, Ptr).type)
