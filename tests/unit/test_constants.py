"""node_runner/constants.py agrees with gadgets/include/gadget/*.h.

Two independent checks: the header text (macros, #defines, declarations) and the BTF of an
object compiled from those headers (tests/data/gadgets/abi_probe), read with our own BTF
reader. A rename on either side fails here instead of silently disabling filtering, lost-sample
reporting or enrichment.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from node_runner import constants as C
from node_runner.gadget import markers
from node_runner.gadget.btf import Btf, load_object_btf
from node_runner.gadget.btf_types import Array, Composite, Int, Kind, Ptr, Var
from node_runner.gadget.elf import ElfFile
from node_runner.gadget.layout import flatten_struct, rodata_vars
from node_runner.gadget.markers import Iter, MapIter, Tracer, find_markers
from node_runner.gadget.spec import load_spec
from tests.conftest import GADGETS_SRC, TEST_GADGETS_SRC, compile_gadget

HEADERS = GADGETS_SRC / "include" / "gadget"


def _header(name: str) -> str:
    text = (HEADERS / name).read_text()
    # Comments may mention names that the code no longer uses: strip them.
    return re.sub(r"/\*.*?\*/|//[^\n]*", "", text, flags=re.S)


def _define(header: str, name: str) -> str:
    match = re.search(rf"^#define\s+{name}\s+(.+?)\s*$", _header(header), re.M)
    assert match, f"{header} has no #define {name}"
    return match.group(1)


# header text -----------------------------------------------------------------------------------
def test_marker_prefixes_and_separator_match_macros_h() -> None:
    text = _header("macros.h")
    sep = re.escape(C.MARKER_SEPARATOR)
    assert re.search(rf"\b{C.TRACER_PREFIX}##name##{sep}##map##{sep}##struct_name\b", text)
    assert re.search(rf"\b{C.PARAM_PREFIX}##var\b", text)
    assert re.search(rf"\b{C.MAPITER_PREFIX}##name##{sep}##map\b", text)
    assert re.search(rf"\b{C.ITER_PREFIX}##name##{sep}##struct_name##{sep}##p1\b", text)
    assert re.search(rf"\b{C.ITER_PREFIX}##name##{sep}##struct_name##{sep}##p1##{sep}##p2"
                     rf"##{sep}##p3\b", text)
    assert re.search(rf"\b{C.ITER_TARGET_PREFIX}##prog##{sep}##map\b", text)
    # Every marker prefix the header builds is known on the Python side.
    built = set(re.findall(r"\b(gadget_[a-z_]+?_)##", text))
    assert built == {C.TRACER_PREFIX, C.PARAM_PREFIX, C.MAPITER_PREFIX, C.ITER_PREFIX,
                     C.ITER_TARGET_PREFIX, C.SNAPSHOTTER_PREFIX}


def test_marker_parser_uses_the_constants() -> None:
    assert markers.SEPARATOR == C.MARKER_SEPARATOR
    assert markers.TRACER_PREFIX == C.TRACER_PREFIX
    assert markers.PARAM_PREFIX == C.PARAM_PREFIX
    assert markers.MAPITER_PREFIX == C.MAPITER_PREFIX
    assert markers.ITER_PREFIX == C.ITER_PREFIX
    assert markers.ITER_TARGET_PREFIX == C.ITER_TARGET_PREFIX
    assert markers.SNAPSHOTTER_PREFIX == C.SNAPSHOTTER_PREFIX


def test_lost_samples_suffix_matches_buffer_h() -> None:
    text = _header("buffer.h")
    assert re.search(rf"\bname##{C.LOST_SAMPLES_SUFFIX}\s+SEC\(\"\.maps\"\)", text)
    # gadget_reserve_buf() and gadget_output_buf() bump that map, reached through the accessor
    # GADGET_TRACER_MAP defines next to it.
    assert re.search(rf"return &name##{C.LOST_SAMPLES_SUFFIX};", text)
    assert text.count("(map##__gadget_lost)()") == 2


def test_mntns_filter_names_match_mntns_filter_h() -> None:
    text = _header("mntns_filter.h")
    assert re.search(rf"const volatile bool {C.FILTER_BY_MNTNS}\s*=", text)
    assert re.search(rf"}}\s*{C.MNTNS_FILTER_MAP}\s+SEC\(\"\.maps\"\)", text)
    assert int(_define("mntns_filter.h", "GADGET_MNTNS_FILTER_MAP_ENTRIES")) == \
        C.MNTNS_FILTER_MAP_ENTRIES
    assert "__uint(max_entries, GADGET_MNTNS_FILTER_MAP_ENTRIES)" in text


def test_well_known_params_match_filter_h() -> None:
    text = _header("filter.h")
    declared = re.findall(r"^const volatile \w+ (targ_\w+)", text, re.M)
    params = re.findall(r"^GADGET_PARAM\((targ_\w+)\);", text, re.M)
    assert sorted(declared) == sorted(params) == sorted(C.WELL_KNOWN_PARAMS)
    for var, flag in C.WELL_KNOWN_PARAMS.items():
        assert var == f"targ_{flag}"


def test_invalid_id_and_comm_len_match_headers() -> None:
    assert _define("filter.h", "GADGET_INVALID_ID") == "((__u32)-1)"
    assert C.INVALID_ID == (1 << 32) - 1
    assert int(_define("types.h", "GADGET_TASK_COMM_LEN")) == C.TASK_COMM_LEN
    text = _header("filter.h")
    assert re.search(r"targ_uid = GADGET_INVALID_ID;", text)
    assert re.search(r"targ_gid = GADGET_INVALID_ID;", text)
    assert re.search(r"targ_comm\[GADGET_TASK_COMM_LEN\]", text)


def test_semantic_typedefs_match_types_h() -> None:
    declared = set(re.findall(r"^typedef\s+[\w ]+?\s+(gadget_\w+);", _header("types.h"), re.M))
    assert declared == set(C.SEMANTIC_TYPEDEFS) | set(C.TYPED_NUMBERS)
    assert all(t.startswith((C.COUNTER_PREFIX, C.GAUGE_PREFIX, C.HISTOGRAM_SLOT_PREFIX))
               for t in C.TYPED_NUMBERS)
    assert len(C.SEMANTIC_TYPEDEFS) == len(set(C.SEMANTIC_TYPEDEFS))
    tags = {v for k, v in vars(C).items() if k.startswith("TAG_")}
    assert tags == set(C.SEMANTIC_TYPEDEFS)


# the compiled object --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Btf]:
    out = compile_gadget(TEST_GADGETS_SRC / "abi_probe",
                         tmp_path_factory.mktemp("abi") / "abi_probe")
    elf = ElfFile.parse((out / "program.bpf.o").read_bytes())
    return out, load_object_btf(elf)


def _map_attr(btf: Btf, map_var: str, attr: str) -> int:
    """The value of `__uint(attr, N)` in a BTF-defined map (a pointer to an array of N)."""
    (tid,) = [t for name, t in btf.vars() if name == map_var]
    var = btf.get(tid)
    assert isinstance(var, Var)
    struct = btf.get(btf.resolve(var.type)[0])
    assert isinstance(struct, Composite)
    member = next(m for m in struct.members if m.name == attr)
    ptr = btf.get(member.type)
    assert isinstance(ptr, Ptr)
    arr = btf.get(ptr.type)
    assert isinstance(arr, Array)
    return arr.nelems


def test_object_markers_parse_with_the_constants(probe: tuple[Path, Btf]) -> None:
    _out, btf = probe
    found = find_markers(btf)
    assert found.tracers == (Tracer("probe", "events", "probe_event"),)
    assert found.mapiters == (MapIter("counters", "counts"),)
    assert found.iters == (Iter("snapshot", "probe_event", ("snap_prog",)),)
    assert {p.var for p in found.params} == set(C.WELL_KNOWN_PARAMS)


def test_object_maps_and_filter_switch(probe: tuple[Path, Btf]) -> None:
    out, btf = probe
    names = {name for name, _tid in btf.vars()}
    assert "events" + C.LOST_SAMPLES_SUFFIX in names
    assert C.MNTNS_FILTER_MAP in names
    assert _map_attr(btf, C.MNTNS_FILTER_MAP, "max_entries") == C.MNTNS_FILTER_MAP_ENTRIES
    assert _map_attr(btf, "events" + C.LOST_SAMPLES_SUFFIX, "max_entries") == 1
    rodata = rodata_vars(btf)
    assert C.FILTER_BY_MNTNS in rodata
    assert rodata[C.FILTER_BY_MNTNS].size == 1
    # The defaults in .rodata: "no filter" is an all-ones uid/gid, an empty comm.
    data = ElfFile.parse((out / "program.bpf.o").read_bytes()).section(".rodata").data
    for var in ("targ_uid", "targ_gid"):
        offset, size, _ = rodata[var]
        assert int.from_bytes(data[offset:offset + size], "little") == C.INVALID_ID
    assert rodata["targ_comm"].size == C.TASK_COMM_LEN
    assert bytes(data[rodata["targ_comm"].offset:][:C.TASK_COMM_LEN]) == bytes(C.TASK_COMM_LEN)


def test_object_typedef_tags(probe: tuple[Path, Btf]) -> None:
    _out, btf = probe
    (tid,) = btf.find("probe_event", Kind.STRUCT)
    fields = {f.name: f for f in flatten_struct(btf, tid)}
    seen = {f.tags[0] for f in fields.values() if f.tags}
    assert set(C.SEMANTIC_TYPEDEFS) <= seen
    assert fields["comm"].size == C.TASK_COMM_LEN and fields["comm"].kind == "string"
    assert fields["proc.mntns_id"].tags[0] == C.TAG_MNTNS_ID
    for name in C.SEMANTIC_TYPEDEFS:
        (typedef,) = btf.find(name, Kind.TYPEDEF)
        assert typedef


def test_spec_finds_params_and_max_entries_by_the_constants(probe: tuple[Path, Btf]) -> None:
    out, btf = probe
    spec = load_spec(str(out))
    assert set(spec.params) == set(C.WELL_KNOWN_PARAMS.values())
    assert {p.var for p in spec.params.values()} == set(C.WELL_KNOWN_PARAMS)
    # `const volatile __u32 counts_max_entries` sizes map `counts`.
    assert set(spec.max_entries) == {"counts"}
    assert "counts" + C.MAX_ENTRIES_SUFFIX in rodata_vars(btf)
    ds, counters, snapshot = spec.datasources
    assert (ds.kind, counters.kind, snapshot.kind) == ("stream", "array", "array")
    assert snapshot.source is not None and snapshot.source.progs == ("snap_prog",)
    assert ds.has_mntns
    comm = next(f for f in ds.fields if f.name == "comm")
    assert C.TAG_COMM in comm.tags
    assert isinstance(btf.get(btf.resolve(btf.find(C.TAG_PID, Kind.TYPEDEF)[0])[0]), Int)
