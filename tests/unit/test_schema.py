"""The shared schema: companions, endpoint fields, name clashes and odd layouts.

Synthetic layouts go through `build_schema` and the generated encoder; odd BTF (sizes the
decoder cannot read, a member outside its record) is made by patching a compiled object's BTF
and must be refused by `load_spec` with GadgetFormatError, never reach the decoder.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest

from node_runner.decoder import DatasourceEncoder
from node_runner.formatters import IdNames, syscall_namer
from node_runner.gadget.btf_reader import _HEADER, _LAYOUT
from node_runner.gadget.btf_types import Kind
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.layout import FlatField
from node_runner.gadget.schema import build_schema, enrichment_schema
from node_runner.gadget.spec import load_spec
from tests.conftest import TEST_GADGETS_SRC

ERRNO = ("gadget_errno", "__u32")


def _decode(fields: list[FlatField], record: bytes, notes: Any = None) -> dict[str, Any]:
    enc = DatasourceEncoder(build_schema("t", "stream", fields, (), {}, notes), len(record))
    out: list[str] = []
    assert enc.encode_batch(record, [0], [len(record)], out) == 0
    return json.loads(out[0])["data"]


def test_a_companion_never_overwrites_a_member() -> None:
    fields = [FlatField("fd_raw", 0, 4, "int", tags=ERRNO), FlatField("fd", 4, 4, "int")]
    with pytest.raises(GadgetFormatError, match=r"'fd_raw' would add a readable field 'fd'.*"
                                                r"already has a member 'fd'"):
        build_schema("open", "stream", fields, ())
    # the member first, then the typed _raw: same refusal
    with pytest.raises(GadgetFormatError, match="already has a member 'fd'"):
        build_schema("open", "stream", fields[::-1], ())


def test_a_target_annotation_resolves_the_clash() -> None:
    fields = [FlatField("fd_raw", 0, 4, "int", tags=ERRNO), FlatField("fd", 4, 4, "int")]
    notes = {"fd_raw": {"formatters.errno.target": "fd_error"}}
    data = _decode(fields, struct.pack("<Ii", 2, 3), notes)
    assert data == {"fd_raw": 2, "fd_error": "ENOENT", "fd": 3}


def test_plain_raw_integer_next_to_its_namesake_keeps_both() -> None:
    fields = [FlatField("fd", 0, 4, "int", signed=True), FlatField("fd_raw", 4, 4, "int")]
    assert _decode(fields, struct.pack("<iI", -1, 7)) == {"fd": -1, "fd_raw": 7}


def test_enrichment_names_clash_with_a_member_is_refused() -> None:
    fields = [FlatField("k8s.node", 0, 8, "string")]
    with pytest.raises(GadgetFormatError, match="two fields are named 'k8s.node'"):
        build_schema("t", "stream", fields, ()).with_fields(enrichment_schema(False))


def test_enum_raw_number_name_and_bit_sets() -> None:
    states = ((0, "IDLE"), (3, "OPEN"))
    perms = ((0, "NONE"), (1, "R"), (2, "W"), (4, "X"), (6, "WX"))
    fields = [FlatField("state_raw", 0, 4, "enum", enum_values=states, type_name="st"),
              FlatField("perm_raw", 4, 4, "enum", enum_values=perms, type_name="perm_set"),
              FlatField("p0_raw", 8, 4, "enum", enum_values=perms, type_name="perm_set"),
              FlatField("px_raw", 12, 4, "enum", enum_values=perms, type_name="perm_set"),
              FlatField("odd_raw", 16, 4, "enum", enum_values=states, type_name="st"),
              FlatField("bare", 20, 4, "enum", enum_values=perms, type_name="perm_set")]
    data = _decode(fields, struct.pack("<IIIIII", 3, 7, 0, 8, 5, 3),
                   {"px_raw": {"ebpf.formatter.bitfield.separator": ","}})
    assert (data["state_raw"], data["state"]) == (3, "OPEN")
    assert (data["perm_raw"], data["perm"]) == (7, "R|W|X|WX")  # every enumerator fully set
    assert data["p0"] == "NONE" and data["px"] == "" and data["odd"] == "5"
    assert data["bare"] == "R|W"  # a bit-set enum member without _raw prints its names
    types = {f.name: f.type for f in build_schema("t", "stream", fields, ()).fields}
    assert (types["state_raw"], types["state"]) == ("u32", "enum")


def test_128_bit_integers_and_float_arrays() -> None:
    fields = [FlatField("u", 0, 16, "int"), FlatField("s", 16, 16, "int", signed=True),
              FlatField("wide", 32, 32, "array", elem_kind="int", elem_size=16, count=2),
              FlatField("fl", 64, 8, "array", elem_kind="float", elem_size=4, count=2),
              FlatField("nan", 72, 8, "float")]
    raw = ((1 << 127) + 5).to_bytes(16, "little") + (-3).to_bytes(16, "little", signed=True)
    raw += (7).to_bytes(16, "little") + (1 << 100).to_bytes(16, "little")
    raw += struct.pack("<ffd", 0.5, -1.0, float("nan"))
    data = _decode(fields, raw)
    assert data == {"u": (1 << 127) + 5, "s": -3, "wide": [7, 1 << 100], "fl": [0.5, -1.0],
                    "nan": None}
    assert [f.type for f in build_schema("t", "stream", fields, ()).fields][:2] == ["u128",
                                                                                   "s128"]


def test_uid_names_follow_the_file(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/a:/bin/sh\n")
    now = [100.0]
    names = IdNames(str(passwd), clock=lambda: now[0])
    assert (names(0), names(1000), names(4242)) == ('"root"', '"alice"', '"4242"')
    fresh = tmp_path / "passwd.new"
    fresh.write_text("root:x:0:0::/root:/bin/sh\nbob:x:1000:1000::/home/b:/bin/sh\n")
    os.replace(fresh, passwd)  # how useradd writes it
    assert names(1000) == '"alice"'  # checked at most once a second
    now[0] += 1.5
    assert names(1000) == '"bob"'
    passwd.unlink()
    now[0] += 1.5
    assert names(1000) == '"1000"'


def test_syscall_names_per_architecture() -> None:
    x86, arm = syscall_namer("x86_64"), syscall_namer("aarch64")
    assert (x86(59), x86(257), x86(435)) == ("SYS_EXECVE", "SYS_OPENAT", "SYS_CLONE3")
    assert (arm(221), arm(56), arm(63)) == ("SYS_EXECVE", "SYS_OPENAT", "SYS_READ")
    assert x86(99999) == "SYS_UNKNOWN"


# odd layouts from patched BTF ------------------------------------------------------------------
def _type_records(btf: bytes) -> dict[str, tuple[int, int]]:
    """{type name: (kind, offset of its 3-word header in `btf`)} of a little-endian blob."""
    _m, _v, _f, hdr_len, type_off, type_len, str_off, _sl = _HEADER.unpack_from(btf)
    strings = btf[hdr_len + str_off:]
    out: dict[str, tuple[int, int]] = {}
    pos = hdr_len + type_off
    while pos < hdr_len + type_off + type_len:
        name_off, info = struct.unpack_from("<II", btf, pos)
        kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
        name = strings[name_off:strings.index(b"\0", name_off)].decode()
        out.setdefault(f"{Kind(kind).name}:{name}", (kind, pos))
        extra, per = _LAYOUT[kind][:2]
        pos += 12 + 4 * (extra + vlen * per)
    return out


@pytest.fixture(scope="module")
def netabi_obj(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("clang") is None:
        pytest.skip("clang is not installed: cannot build the test gadget")
    from tests.conftest import compile_gadget

    return compile_gadget(TEST_GADGETS_SRC / "netabi",
                          tmp_path_factory.mktemp("odd") / "netabi") / "program.bpf.o"


def _patched(obj: Path, tmp: Path, type_key: str, word: int, value: int) -> Path:
    from node_runner.gadget.elf import ElfFile

    data = bytearray(obj.read_bytes())
    sec = ElfFile.parse(bytes(data)).get_section(".BTF")
    assert sec is not None
    start = bytes(data).index(bytes(sec.data))
    _kind, pos = _type_records(bytes(sec.data))[type_key]
    struct.pack_into("<I", data, start + pos + 4 * word, value)
    out = tmp / "g" / "program.bpf.o"
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(bytes(data))
    return out


@pytest.mark.parametrize(("type_key", "word", "value", "message"), [
    ("INT:unsigned int", 2, 3, "integer of 3 bytes is not supported"),
    ("INT:unsigned int", 2, 32, "integer of 32 bytes is not supported"),
    ("INT:unsigned __int128", 3, 200, "declares 200 bits"),
    ("STRUCT:netabi_short", 2, 8, "outside the 8-byte record"),
    ("STRUCT:netabi_short", 2, 1 << 30, "record size"),
])
def test_odd_layouts_are_refused_by_the_spec(netabi_obj: Path, tmp_path: Path, type_key: str,
                                             word: int, value: int, message: str) -> None:
    bad = _patched(netabi_obj, tmp_path, type_key, word, value)
    with pytest.raises(GadgetFormatError, match=message):
        load_spec(str(bad.parent))


def test_a_two_byte_float_is_refused() -> None:
    from node_runner.gadget.btf import Btf
    from node_runner.gadget.layout import flatten_record
    from tests.unit.test_btf import BlobBuilder

    b = BlobBuilder()
    half = b.add(Kind.FLOAT, "_Float16", 2)
    rec = b.add(Kind.STRUCT, "rec", 4, vlen=1, extra=(b.s("h"), half, 0))
    with pytest.raises(GadgetFormatError, match="'h': float of 2 bytes is not supported"):
        flatten_record(Btf.parse(b.build()), rec)
