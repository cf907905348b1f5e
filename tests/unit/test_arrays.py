"""Array datasources without a kernel: row layouts from BTF, per-CPU sums, the `array` record.

The golden (tests/unit/golden/protocol/top_opens_array.jsonl) holds the exact `schema` and
`array` lines a runner writes for tests/data/gadgets/top_opens, from rows packed at the
offsets its BTF gives; regenerate with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import io
import json
import struct

import pytest

from node_runner.arrays import ArrayEncoder, PerCpuSum
from node_runner.decoder import DatasourceEncoder
from node_runner.enrich import Enricher
from node_runner.formatters import FormatContext
from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.layout import FlatField
from node_runner.gadget.markers import Iter, IterTargetMap, parse_marker
from node_runner.gadget.schema import enrichment_schema
from node_runner.gadget.spec import GadgetSpec, load_spec
from node_runner.protocol import LineWriter
from tests.conftest import GADGETS_SRC, TEST_GADGETS_SRC, compile_gadget
from tests.unit.test_protocol_golden import (
    CONTAINER_MNTNS,
    HOST_MNTNS,
    OFFSET_NS,
    FixedTable,
    check_golden,
    pack_record,
)


@pytest.fixture(scope="module")
def top_opens(tmp_path_factory: pytest.TempPathFactory) -> GadgetSpec:
    out = compile_gadget(TEST_GADGETS_SRC / "top_opens",
                         tmp_path_factory.mktemp("g") / "top_opens")
    return load_spec(str(out))


def test_iter_markers_take_one_to_three_programs() -> None:
    assert parse_marker("gadget_iter_socks___sock_t___tcp___udp") == \
        Iter("socks", "sock_t", ("tcp", "udp"))
    assert parse_marker("gadget_iter_p___t___a___b___c") == Iter("p", "t", ("a", "b", "c"))
    assert parse_marker("gadget_snapshotter_p___t___a___b") == Iter("p", "t", ("a", "b"))
    assert parse_marker("gadget_mapelem_iter_target_walk___counts") == \
        IterTargetMap("walk", "counts")
    with pytest.raises(GadgetFormatError, match="1 to 3 programs"):
        parse_marker("gadget_iter_p___t___a___b___c___d")
    with pytest.raises(GadgetFormatError):
        parse_marker("gadget_iter_p___t")


def test_mapiter_row_is_key_then_value(top_opens: GadgetSpec) -> None:
    ds = {d.name: d for d in top_opens.datasources}
    opens = ds["opens"]
    assert opens.kind == "array" and opens.source is not None
    assert (opens.source.kind, opens.source.map_name) == ("mapiter", "counts")
    assert [(f.name, f.offset) for f in opens.fields] == [
        ("mntns_id", 0), ("comm", 8), ("opens", 24), ("last_pid", 32)]
    assert opens.record_size == opens.source.key_size + opens.source.value_size == 40
    total = ds["opens_total"]
    assert [f.name for f in total.fields] == ["key", "opens"]
    assert total.field_annotations["key"] == {"columns.hidden": "true"}
    assert opens.annotations == {"cli.default-sort": "-opens,comm"}


def _field(name: str, offset: int, size: int, tags: tuple[str, ...], kind: str = "int",
           count: int = 0) -> FlatField:
    if kind == "array":
        return FlatField(name, offset, size * count, "array", tags=tags, elem_kind="int",
                         elem_size=size, count=count)
    return FlatField(name, offset, size, "int", tags=tags)  # type: ignore[arg-type]


def test_per_cpu_values_are_summed_but_identities_are_not() -> None:
    fields = [_field("calls", 8, 8, ("gadget_counter__u64", "__u64")),
              _field("pid", 16, 4, ("gadget_pid", "__u32")),
              _field("plain", 20, 4, ("__u32",)),
              _field("slots", 24, 4, ("gadget_histogram_slot__u32",), "array", 3)]
    combine = PerCpuSum(fields, key_size=8, value_size=28, ncpus=3)
    assert combine.stride == 32

    def cpu(calls: int, pid: int, plain: int, slots: tuple[int, int, int]) -> bytes:
        return struct.pack("<QII3I", calls, pid, plain, *slots).ljust(32, b"\0")

    raw = cpu(0, 0, 0, (0, 0, 0)) + cpu(5, 42, 1, (1, 2, 3)) + cpu(7, 43, 2, (10, 0, 0xFFFFFFFF))
    calls, pid, plain, *slots = struct.unpack("<QII3I", combine(raw))
    assert (calls, pid, plain) == (12, 42, 3)  # pid from the first CPU holding the entry
    assert slots == [11, 2, 2]  # wraps like the kernel's u32 would


def test_array_record_golden(top_opens: GadgetSpec) -> None:
    ds = next(d for d in top_opens.datasources if d.name == "opens")
    assert ds.schema is not None
    enc = DatasourceEncoder(ds.schema, ds.record_size, context=FormatContext(OFFSET_NS),
                            enricher=Enricher(FixedTable(), "node-1"),  # type: ignore[arg-type]
                            enrichment=enrichment_schema(cluster=False), row_only=True)
    rows = [pack_record(ds, {"mntns_id": CONTAINER_MNTNS, "comm": "cat", "opens": 12,
                             "last_pid": 77}),
            pack_record(ds, {"mntns_id": HOST_MNTNS, "comm": "sshd", "opens": 3,
                             "last_pid": 1}),
            pack_record(ds, {"mntns_id": 4026530000, "comm": "other", "opens": 1})]
    arrays = ArrayEncoder(ds, enc, "node-1")
    line, dropped = arrays.encode(rows, 3, {CONTAINER_MNTNS, HOST_MNTNS})
    empty, _ = arrays.encode([], 4, None)
    assert dropped == 0
    out = io.BytesIO()
    writer = LineWriter(out)
    writer.record(enc.schema.to_wire())
    writer.lines([line, empty])
    text = out.getvalue().decode()
    record = json.loads(text.splitlines()[1])
    assert (record["type"], record["ds"], record["node"], record["fetch"]) == \
        ("array", "opens", "node-1", 3)
    assert [(r["comm"], r["opens"]) for r in record["data"]] == [("cat", 12), ("sshd", 3)]
    assert record["data"][0]["k8s.podName"] == "cart-0"
    assert json.loads(text.splitlines()[2])["data"] == []
    check_golden("top_opens_array.jsonl", text)



def test_endpoints_of_array_rows_get_readable_fields(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A struct gadget_l4endpoint_t in an iterator row is formatted as in a tracer record."""
    spec = load_spec(str(compile_gadget(GADGETS_SRC / "snapshot_socket",
                                        tmp_path / "snapshot_socket")))
    (ds,) = spec.datasources
    assert ds.schema is not None
    names = [f.name for f in ds.schema.fields]
    at = names.index("src.version")
    assert names[at + 1:at + 4] == ["src", "src.addr", "src.proto"]
    assert {"dst", "dst.addr", "dst.proto"} <= set(names)
