"""Record layouts: struct test_event (tests/data/btf/record.h) flattened from BPF BTF and
checked against the host compiler's offsetof/sizeof and bitfield bytes; rodata variables
checked against llvm-objdump; hand-built BTF for legacy bitfields, ENUM64 and bad input.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from node_runner.gadget.btf import Btf, load_object_btf
from node_runner.gadget.btf_types import Kind
from node_runner.gadget.elf import ElfFile
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.layout import FlatField, flatten_struct, rodata_vars, struct_by_name
from tests.unit.test_btf import BlobBuilder
from tests.unit.test_elf import DATA_DIR, compile_bpf, objdump


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("layout")


@pytest.fixture(scope="session")
def record_btf(workdir: Path) -> Btf:
    obj = compile_bpf("record.bpf.c", workdir)
    return load_object_btf(ElfFile.parse(obj.read_bytes()))


@pytest.fixture(scope="session")
def fields(record_btf: Btf) -> dict[str, FlatField]:
    flat = flatten_struct(record_btf, struct_by_name(record_btf, "test_event"))
    by_name = {f.name: f for f in flat}
    assert len(by_name) == len(flat), "duplicate field names"
    return by_name


@pytest.fixture(scope="session")
def probe(workdir: Path) -> list[str]:
    """Output lines of layout_probe.c built and run on the host."""
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed: cannot build the host layout probe")
    exe = workdir / "layout_probe"
    build = subprocess.run(["clang", "-O0", "-o", str(exe), str(DATA_DIR / "layout_probe.c")],
                           capture_output=True, text=True)
    if build.returncode:
        pytest.skip(f"host C toolchain cannot build the layout probe: {build.stderr[:200]}")
    return subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split("\n")


EXPECTED_NAMES = [
    "u8v", "s16v", "u32v", "s64v", "flag", "name", "color", "mntns_id",
    "proc.comm", "proc.pid", "proc.creds.uid", "proc.creds.gid", "v4", "v6", "inner_a",
    "bf_a", "bf_b", "bf_c", "bf_d", "arr", "grid", "many", "f", "d", "ptr",
    "named_u.whole", "named_u.halves", "raw_text", "stext", "alias_name", "cv_u32", "wide",
]


def test_field_names_in_member_order(record_btf: Btf) -> None:
    flat = flatten_struct(record_btf, struct_by_name(record_btf, "test_event"))
    # __pad, __inner_hidden and the whole __hidden struct are skipped; the anonymous union
    # and struct flatten without a prefix
    assert [f.name for f in flat] == EXPECTED_NAMES


def test_offsets_and_sizes_match_the_host_compiler(fields: dict[str, FlatField],
                                                  probe: list[str], record_btf: Btf) -> None:
    checked = 0
    for line in probe:
        parts = line.split()
        if len(parts) == 3 and parts[0] != "sizeof":
            name, offset, size = parts[0], int(parts[1]), int(parts[2])
            assert (fields[name].offset, fields[name].size) == (offset, size), name
            checked += 1
        elif parts and parts[0] == "sizeof":
            assert record_btf.size_of(struct_by_name(record_btf, "test_event")) == int(parts[1])
    assert checked == len(EXPECTED_NAMES) - 4  # all but the four bitfields


def _decode_bits(f: FlatField, record: bytes) -> int:
    raw = int.from_bytes(record[f.offset : f.offset + f.size], "little")
    value = (raw >> f.bit_offset) & ((1 << f.bit_size) - 1)
    if f.signed and value >> (f.bit_size - 1):
        value -= 1 << f.bit_size
    return value


def test_bitfields_decode_host_bytes(fields: dict[str, FlatField], probe: list[str]) -> None:
    record = bytes.fromhex(next(line for line in probe if line.startswith("bytes "))[6:])
    values = {name: _decode_bits(fields[name], record) for name in ("bf_a", "bf_b", "bf_c",
                                                                     "bf_d")}
    assert values == {"bf_a": 5, "bf_b": 17, "bf_c": -42, "bf_d": 1}  # set in layout_probe.c
    assert fields["bf_c"].signed and not fields["bf_a"].signed
    assert fields["bf_d"].kind == "bool" and fields["bf_d"].bit_size == 1
    assert all(f.bit_size == 0 for n, f in fields.items() if not n.startswith("bf_"))


@pytest.mark.parametrize(
    ("name", "kind", "size", "signed"),
    [
        ("u8v", "int", 1, False), ("s16v", "int", 2, True), ("u32v", "int", 4, False),
        ("s64v", "int", 8, True), ("flag", "bool", 1, False), ("name", "string", 16, False),
        ("color", "enum", 4, False), ("proc.comm", "string", 16, False),
        ("f", "float", 4, True), ("d", "float", 8, True), ("ptr", "int", 8, False),
        ("raw_text", "string", 8, False), ("stext", "string", 4, False),
        ("alias_name", "string", 8, False), ("cv_u32", "int", 4, False),
        ("many", "bytes", 16, False),
    ],
)
def test_scalar_kinds(fields: dict[str, FlatField], name: str, kind: str, size: int,
                      signed: bool) -> None:
    assert (fields[name].kind, fields[name].size, fields[name].signed) == (kind, size, signed)


def test_arrays(fields: dict[str, FlatField]) -> None:
    arr, grid, v6 = fields["arr"], fields["grid"], fields["v6"]
    assert (arr.kind, arr.elem_kind, arr.elem_size, arr.count) == ("array", "int", 4, 4)
    assert (grid.kind, grid.elem_size, grid.count, grid.size) == ("array", 2, 6, 12)
    # __u8[16] holds an address, not text
    assert (v6.kind, v6.elem_size, v6.count, v6.elem_signed) == ("array", 1, 16, False)


def test_typedef_chains_are_tags(fields: dict[str, FlatField]) -> None:
    assert fields["mntns_id"].tags == ("gadget_mntns_id", "__u64")
    assert fields["proc.pid"].tags == ("my_pid", "gadget_pid", "__u32")
    assert fields["proc.comm"].tags == ("gadget_comm",)  # from the array's element
    assert fields["alias_name"].tags == ("name_t",)
    assert fields["cv_u32"].tags == ("__u32",)  # const volatile crossed, not kept
    assert fields["flag"].tags == ()


def test_enum_values_match_the_bytes_a_program_writes(fields: dict[str, FlatField]) -> None:
    color = fields["color"]
    names = dict(color.enum_values)
    raw = (-2).to_bytes(4, "little", signed=True)  # COLOR_NEG as stored in a record
    assert names[int.from_bytes(raw, "little", signed=color.signed)] == "COLOR_NEG"
    assert names[7] == "COLOR_SEVEN" and names[0] == "COLOR_ZERO"


def test_rodata_vars_match_objdump(workdir: Path) -> None:
    obj = compile_bpf("globals.bpf.c", workdir)
    btf = load_object_btf(ElfFile.parse(obj.read_bytes()))
    got = rodata_vars(btf)
    expected = {m.group(3): (int(m.group(1), 16), int(m.group(2), 16)) for m in re.finditer(
        r"^([0-9a-f]{16}) g\s+O\s+\.rodata\s+([0-9a-f]{16}) (\S+)$", objdump("-t", str(obj)),
        re.M)}
    assert {name: (v.offset, v.size) for name, v in got.items()} == expected
    assert len(expected) == 6
    final, chain = btf.resolve(got["targ_big"].type_id)
    assert chain == ("__u64",) and btf.size_of(final) == 8
    assert btf.types[btf.resolve(got["targ_comm"].type_id)[0]].kind == Kind.ARRAY
    assert set(rodata_vars(btf, ".data")) == {"data_var"}
    assert rodata_vars(btf, ".kconfig") == {}


def test_struct_by_name_missing(record_btf: Btf) -> None:
    with pytest.raises(GadgetFormatError, match="BTF has no struct 'nope'"):
        struct_by_name(record_btf, "nope")
    with pytest.raises(GadgetFormatError, match="not a struct or union"):
        flatten_struct(record_btf, record_btf.find("my_pid")[0])


def test_hand_built_legacy_bitfield_enum64_and_union() -> None:
    b = BlobBuilder()
    u32 = b.add(Kind.INT, "unsigned int", 4, extra=(32,))
    legacy = b.add(Kind.INT, "unsigned int", 4, extra=((2 << 16) | 4,))  # 4 bits at +2
    e64 = b.add(Kind.ENUM64, "e64", 8, vlen=2, kflag=1,
                extra=(b.s("MINUS"), 0xFFFFFFFF, 0xFFFFFFFF, b.s("HUGE"), 0, 0x40000000))
    union = b.add(Kind.UNION, "u", 8, vlen=2, extra=(b.s("lo"), u32, 0, b.s("e"), e64, 0))
    outer = b.add(Kind.STRUCT, "outer", 24, vlen=3,
                  extra=(b.s("legacy"), legacy, 8, b.s("e"), e64, 64, b.s("u"), union, 128))
    flat = {f.name: f for f in flatten_struct(Btf.parse(b.build()), outer)}
    assert list(flat) == ["legacy", "e", "u.lo", "u.e"]
    legacy_f = flat["legacy"]
    assert (legacy_f.offset, legacy_f.bit_offset, legacy_f.bit_size) == (1, 2, 4)
    assert _decode_bits(legacy_f, bytes([0, 0b0010_1100]) + bytes(22)) == 0b1011
    e = flat["e"]
    assert (e.kind, e.offset, e.size, e.signed) == ("enum", 8, 8, True)
    assert e.enum_values == ((-1, "MINUS"), (1 << 62, "HUGE"))
    assert (flat["u.lo"].offset, flat["u.e"].offset) == (16, 16)
    assert flatten_struct(Btf.parse(b.build()), union)[0].name == "lo"  # a union on its own


def test_malformed_structs() -> None:
    b = BlobBuilder()
    self_ref = b.add(Kind.STRUCT, "loop", 4, vlen=1, extra=(b.s("me"), 1, 0))
    proto = b.add(Kind.FUNC_PROTO, "", 0)
    odd = b.add(Kind.STRUCT, "odd", 4, vlen=1, extra=(b.s("fn"), proto, 0))
    u32 = b.add(Kind.INT, "unsigned int", 4, extra=(32,))
    unaligned = b.add(Kind.STRUCT, "unaligned", 8, vlen=1, extra=(b.s("x"), u32, 3))
    btf = Btf.parse(b.build())
    with pytest.raises(GadgetFormatError, match="nests deeper"):
        flatten_struct(btf, self_ref)
    with pytest.raises(GadgetFormatError, match="'fn' has unsupported type FUNC_PROTO"):
        flatten_struct(btf, odd)
    with pytest.raises(GadgetFormatError, match="not byte-aligned"):
        flatten_struct(btf, unaligned)


def test_every_vmlinux_struct_flattens() -> None:
    try:
        btf = Btf.parse(Path("/sys/kernel/btf/vmlinux").read_bytes())
    except OSError as exc:
        pytest.skip(f"kernel BTF not readable ({exc})")
    total = 0
    for tid, t in enumerate(btf.types):
        if t.kind == Kind.STRUCT:
            total += len(flatten_struct(btf, tid))
    assert total > 50_000
    inum = next(f for f in flatten_struct(btf, struct_by_name(btf, "mnt_namespace"))
                if f.name == "ns.inum")
    assert (inum.kind, inum.size, inum.signed) == ("int", 4, False)
