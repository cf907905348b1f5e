"""Golden files of the runner's stdout protocol, and the decoder on synthetic layouts.

The goldens (tests/unit/golden/protocol/*.jsonl) hold the exact bytes a runner writes for the
`schema` record and a few `event` records of the in-tree gadgets: records are packed with
struct.pack at the offsets the built object's BTF gives (load_spec, no root), then encoded by
`DatasourceEncoder` with a fixed boot-to-wall offset and a fixed container table. Regenerate
with ``UPDATE_GOLDEN=1 python -m pytest tests/unit/test_protocol_golden.py`` and review the
diff: a change there is a change of the protocol clients read. A missing golden fails.
"""

from __future__ import annotations

import io
import json
import os
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from node_runner.container_info import Container
from node_runner.decoder import DatasourceEncoder
from node_runner.enrich import Enricher
from node_runner.formatters import FormatContext
from node_runner.gadget.layout import FlatField
from node_runner.gadget.schema import ENRICHMENT_FIELDS, build_schema, enrichment_schema, wire_type
from node_runner.gadget.spec import DatasourceSpec, GadgetSpec, load_spec
from node_runner.protocol import LineWriter
from tests import golden

GOLDEN_DIR = Path(__file__).parent / "golden" / "protocol"
OFFSET_NS = 1_700_000_000_000_000_000  # 2023-11-14T22:13:20Z at boot
HOST_MNTNS = 4026531841
CONTAINER_MNTNS = 4026532999
CONTAINER = Container(
    container_id="c0ffee" + "0" * 58, runtime="containerd", mntns_id=CONTAINER_MNTNS, pid=777,
    pod_uid="3f1c0d2e-0000-4000-8000-000000000001", name="cart",
    image="ghcr.io/shop/cart:1.2", k8s_namespace="shop", k8s_pod_name="cart-0",
    k8s_container_name="cart", k8s_pod_labels=(("app", "cart"), ("tier", "web")),
    k8s_owner_kind="StatefulSet", k8s_owner_name="cart")
PROTOCOL_TYPES = {"bool", "u8", "u16", "u32", "u64", "u128", "s8", "s16", "s32", "s64", "s128",
                  "f32", "f64", "string", "enum", "array", "bytes"}


class FixedTable:
    """The container table the enricher asks: one container, one host namespace."""

    host_mntns = HOST_MNTNS

    def lookup_mntns(self, mntns_id: int) -> Container | None:
        return CONTAINER if mntns_id == CONTAINER_MNTNS else None


def check_golden(name: str, actual: str) -> None:
    golden.check_golden(GOLDEN_DIR / name, actual)


_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
          (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}


def pack_record(ds: DatasourceSpec, values: Mapping[str, Any]) -> bytes:
    """A record of `ds` with `values` at the offsets its BTF gives (other bytes zero)."""
    fields = {f.name: f for f in ds.fields}
    unknown = set(values) - set(fields)
    assert not unknown, f"{ds.name} has no fields {unknown}"
    buf = bytearray(ds.record_size)
    for name, value in values.items():
        f = fields[name]
        if f.kind == "string":
            raw = value if isinstance(value, bytes) else value.encode()
            assert len(raw) <= f.size
            buf[f.offset:f.offset + len(raw)] = raw
        elif f.kind in ("int", "enum") and not f.bit_size:
            struct.pack_into("<" + _CODES[(f.size, f.signed)], buf, f.offset, value)
        else:
            raise AssertionError(f"pack_record does not pack {f.kind} fields ({name})")
    return bytes(buf)


def encode(enc: DatasourceEncoder, records: Sequence[bytes],
           sizes: Sequence[int] | None = None) -> tuple[list[str], int]:
    """Run records through the generated batch encoder as the ring-buffer reader would."""
    buf = bytearray(8)  # records never start at offset 0 in the ring
    offsets = []
    for rec in records:
        offsets.append(len(buf))
        buf += rec + bytes(-len(rec) % 8)
    out: list[str] = []
    dropped = enc.encode_batch(memoryview(bytes(buf)), offsets,
                               list(sizes) if sizes else [len(r) for r in records], out)
    return out, dropped


def encoder_for(spec: GadgetSpec, ds_name: str) -> DatasourceEncoder:
    ds = next(d for d in spec.datasources if d.name == ds_name)
    assert ds.schema is not None
    return DatasourceEncoder(ds.schema, ds.record_size, context=FormatContext(OFFSET_NS),
                             enricher=Enricher(FixedTable(), "node-1"),  # type: ignore[arg-type]
                             enrichment=enrichment_schema(cluster=False))


def protocol_text(spec: GadgetSpec, enc: DatasourceEncoder, lines: list[str]) -> str:
    out = io.BytesIO()
    writer = LineWriter(out)
    writer.record(enc.schema.to_wire())
    writer.lines(lines)
    return out.getvalue().decode("utf-8")


def check_shape(text: str) -> None:
    """Protocol invariants: one JSON object a line, event keys exactly the schema's fields."""
    schema, *events = [json.loads(line) for line in text.splitlines()]
    names = [f["name"] for f in schema["fields"]]
    assert len(names) == len(set(names))
    assert {f["type"] for f in schema["fields"]} <= PROTOCOL_TYPES
    assert all(t.startswith("type:") for f in schema["fields"] for t in f["tags"])
    for ev in events:
        assert (ev["type"], ev["ds"]) == ("event", schema["ds"])
        assert list(ev["data"]) == names


# goldens ------------------------------------------------------------------------------------
def test_trace_open_protocol_golden(built_gadgets: dict[str, Path]) -> None:
    spec = load_spec(str(built_gadgets["trace_open"]))
    (ds,) = spec.datasources
    enc = encoder_for(spec, "open")
    records = [
        pack_record(ds, {"timestamp_raw": 1_000_000_123, "proc.mntns_id": HOST_MNTNS,
                         "proc.pid": 4242, "proc.tid": 4243, "proc.creds.uid": 1000,
                         "proc.creds.gid": 1000, "proc.comm": "cat", "proc.parent.pid": 4000,
                         "proc.parent.comm": "bash", "fd": 3,
                         "error_raw": 0, "flags_raw": os.O_RDONLY | os.O_CLOEXEC, "mode_raw": 0,
                         "fname": "/etc/hosts"}),
        pack_record(ds, {"timestamp_raw": 2_500_000_000, "proc.mntns_id": CONTAINER_MNTNS,
                         "proc.pid": 77, "proc.tid": 77, "proc.creds.uid": 0,
                         "proc.creds.gid": 0, "proc.comm": "python3",
                         "fd": -1, "error_raw": 2,
                         "flags_raw": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "mode_raw": 0o644,
                         "fname": "/tmp/missing/f\u00efchier \"quoted\"\\"}),
        pack_record(ds, {"timestamp_raw": 2_500_000_001, "proc.mntns_id": CONTAINER_MNTNS,
                         "proc.pid": 78, "proc.tid": 79, "proc.comm": "a" * 15,
                         "fd": 2**31 - 1,
                         "error_raw": 13, "flags_raw": 0x80000000 | os.O_RDWR,
                         "fname": b"/tmp/\xff\xfebad\0after-nul"}),
    ]
    lines, dropped = encode(enc, records)
    assert dropped == 0 and len(lines) == 3
    text = protocol_text(spec, enc, lines)
    check_shape(text)
    check_golden("trace_open.jsonl", text)


def test_trace_exec_protocol_golden(built_gadgets: dict[str, Path]) -> None:
    spec = load_spec(str(built_gadgets["trace_exec"]))
    (ds,) = spec.datasources
    enc = encoder_for(spec, "exec")
    records = [
        pack_record(ds, {"timestamp_raw": 3_000_000_000, "proc.mntns_id": CONTAINER_MNTNS,
                         "proc.pid": 500, "proc.tid": 500, "proc.parent.pid": 1,
                         "proc.creds.uid": 0, "proc.creds.gid": 0, "retval": 0, "error_raw": 0,
                         "args_count": 3, "args_truncated": 0, "proc.comm": "sh",
                         "proc.parent.comm": "containerd-shim", "file": "/bin/sh",
                         "cwd": "/srv", "exepath": "/usr/bin/dash", "args": "/bin/sh -c true"}),
        pack_record(ds, {"timestamp_raw": 3_000_000_500, "proc.mntns_id": HOST_MNTNS,
                         "proc.pid": 501, "proc.tid": 501, "proc.parent.pid": 500,
                         "proc.creds.uid": 1000, "proc.creds.gid": 100, "retval": -2,
                         "error_raw": 2, "args_count": 20, "args_truncated": 1,
                         "proc.comm": "bash", "proc.parent.comm": "sshd", "file": "/nonexistent",
                         "args": "/nonexistent " + "x " * 19}),
    ]
    lines, dropped = encode(enc, records)
    assert dropped == 0
    text = protocol_text(spec, enc, lines)
    check_shape(text)
    check_golden("trace_exec.jsonl", text)


def test_golden_values_are_what_the_record_says(built_gadgets: dict[str, Path]) -> None:
    """The goldens are not just "whatever came out": spot-check the decoded values."""
    spec = load_spec(str(built_gadgets["trace_open"]))
    (ds,) = spec.datasources
    rec = pack_record(ds, {"timestamp_raw": 1_000_000_123, "proc.mntns_id": CONTAINER_MNTNS,
                           "fd": -1, "error_raw": 2, "flags_raw": os.O_RDONLY | os.O_CLOEXEC,
                           "mode_raw": 0o640, "proc.comm": "cat", "proc.parent.pid": 9,
                           "fname": "/x"})
    (line,), _ = encode(encoder_for(spec, "open"), [rec])
    data = json.loads(line)["data"]
    assert data["timestamp"] == "2023-11-14T22:13:21.000000123Z"
    assert (data["fd"], data["error"], data["error_raw"]) == (-1, "ENOENT", 2)
    assert data["flags"] == "O_RDONLY|O_CLOEXEC"
    assert data["mode"] == "0640"
    assert (data["proc.comm"], data["proc.parent.pid"], data["proc.pid"]) == ("cat", 9, 0)
    assert data["runtime.containerId"] == CONTAINER.container_id
    assert data["k8s.podLabels"] == "app=cart,tier=web"
    assert data["k8s.node"] == "node-1"
    assert data["runtime.containerPid"] == "777"


def test_check_golden_fails_when_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("UPDATE_GOLDEN", raising=False)
    with pytest.raises(pytest.fail.Exception, match="missing"):
        check_golden("no-such-golden.jsonl", "{}\n")


# the decoder on synthetic layouts -------------------------------------------------------------
def _encoder(fields: list[FlatField], size: int, enricher: Any = None) -> DatasourceEncoder:
    return DatasourceEncoder(build_schema("t", "stream", fields, ()), size, enricher=enricher,
                             enrichment=enrichment_schema(cluster=False))


def _decode(fields: list[FlatField], record: bytes) -> dict[str, Any]:
    (line,), dropped = encode(_encoder(fields, len(record)), [record])
    assert dropped == 0
    return json.loads(line)["data"]


def test_union_members_overlap() -> None:
    fields = [
        FlatField("addr.v4", 0, 4, "int"),
        FlatField("addr.v6", 0, 16, "array", elem_kind="int", elem_size=1, count=16),
        FlatField("addr.half", 0, 2, "int", signed=True),
        FlatField("port", 16, 2, "int"),
    ]
    raw = bytes(range(0xF0, 0x100)) + struct.pack("<H", 8080) + b"\0\0"
    data = _decode(fields, raw)
    assert data["addr.v6"] == list(range(0xF0, 0x100))
    assert data["addr.v4"] == int.from_bytes(raw[:4], "little")
    assert data["addr.half"] == int.from_bytes(raw[:2], "little", signed=True)
    assert data["port"] == 8080


def test_bitfields_signed_and_unsigned() -> None:
    fields = [
        FlatField("a", 0, 1, "int", bit_offset=0, bit_size=3),
        FlatField("b", 0, 1, "int", signed=True, bit_offset=3, bit_size=5),
        FlatField("c", 1, 3, "int", signed=True, bit_offset=0, bit_size=20),
        FlatField("d", 3, 2, "int", bit_offset=4, bit_size=9),  # spans two bytes
        FlatField("e", 5, 1, "int", signed=True, bit_offset=7, bit_size=1),
    ]
    word = (5 | ((-9 & 0x1F) << 3) | ((-300000 & 0xFFFFF) << 8) | (0x1A5 << 28) | (1 << 47))
    data = _decode(fields, word.to_bytes(8, "little"))
    assert data == {"a": 5, "b": -9, "c": -300000, "d": 0x1A5, "e": -1}
    types = {f.name: wire_type(f) for f in fields}
    assert types == {"a": "u8", "b": "s8", "c": "s32", "d": "u16", "e": "s8"}
    assert set(types.values()) <= PROTOCOL_TYPES


def test_short_record_is_zero_padded() -> None:
    fields = [FlatField("x", 0, 4, "int"), FlatField("y", 4, 4, "int", signed=True),
              FlatField("z", 8, 4, "int", bit_offset=0, bit_size=12)]
    enc = _encoder(fields, 12)
    good = struct.pack("<IiI", 7, -7, 0xABC)
    lines, dropped = encode(enc, [good, good, good, good], sizes=[12, 7, 3, 0])
    assert dropped == 0
    assert [json.loads(line)["data"] for line in lines] == [
        {"x": 7, "y": -7, "z": 0xABC},
        {"x": 7, "y": 0x00FFFFF9, "z": 0},  # the missing byte and the rest read as zero
        {"x": 7, "y": 0, "z": 0}, {"x": 0, "y": 0, "z": 0}]


def test_non_utf8_string_bytes_are_backslash_escaped() -> None:
    fields = [FlatField("name", 0, 16, "string"), FlatField("n", 16, 4, "int")]
    raw = b"ab\xffc\xc3\xa9\0zzzzzzzzz" + struct.pack("<I", 1)
    (line,), _ = encode(_encoder(fields, 20), [raw])
    assert '"name":"ab\\\\xffc\\u00e9"' in line  # JSON text: ASCII only, backslash kept
    assert json.loads(line)["data"]["name"] == "ab\\xffc\u00e9"


def test_full_string_without_nul_is_kept_whole() -> None:
    data = _decode([FlatField("s", 0, 4, "string")], b"abcd")
    assert data == {"s": "abcd"}


def test_enum_names_and_unknown_values() -> None:
    values = ((0, "IDLE"), (1, "RUNNING"), (7, "DONE"))
    fields = [FlatField("state", 0, 4, "enum", enum_values=values),
              FlatField("other", 4, 4, "enum", enum_values=values),
              FlatField("neg", 8, 4, "enum", signed=True, enum_values=((-1, "MINUS_ONE"),))]
    data = _decode(fields, struct.pack("<IIi", 7, 42, -1))
    assert data == {"state": "DONE", "other": "42", "neg": "MINUS_ONE"}
    assert {f.name: wire_type(f) for f in fields} == dict.fromkeys(("state", "other", "neg"),
                                                                     "enum")


def test_bool_float_array_and_bytes_kinds() -> None:
    fields = [FlatField("on", 0, 1, "bool"), FlatField("ratio", 4, 4, "float", signed=True),
              FlatField("avg", 8, 8, "float", signed=True),
              FlatField("ports", 16, 4, "array", elem_kind="int", elem_size=2,
                        elem_signed=True, count=2),
              FlatField("blob", 20, 4, "bytes")]
    raw = (b"\x01\0\0\0" + struct.pack("<f", 0.5) + struct.pack("<d", -2.25)
           + struct.pack("<hh", -1, 443) + b"\xde\xad\xbe\xef")
    data = _decode(fields, raw)
    assert data == {"on": True, "ratio": 0.5, "avg": -2.25, "ports": [-1, 443],
                    "blob": "deadbeef"}


def test_raw_companions_and_enrichment_only_with_a_mntns_tag() -> None:
    fields = [FlatField("mntns_id", 0, 8, "int", tags=("gadget_mntns_id", "__u64")),
              FlatField("error_raw", 8, 4, "int", tags=("gadget_errno", "__u32")),
              FlatField("count_raw", 12, 4, "int")]
    enc = _encoder(fields, 16, Enricher(FixedTable(), "n1"))  # type: ignore[arg-type]
    names = [f.name for f in enc.fields]
    # A plain `_raw` integer has no formatter, so no companion (as in IG).
    assert names == ["mntns_id", "error_raw", "error", "count_raw", *ENRICHMENT_FIELDS]
    (line,), _ = encode(enc, [struct.pack("<QII", CONTAINER_MNTNS, 9999, 5)])
    data = json.loads(line)["data"]
    assert (data["error"], data["count_raw"]) == ("E9999", 5)
    assert data["runtime.containerName"] == "cart"
    no_tag = _encoder(fields[1:], 16, Enricher(FixedTable(), "n1"))  # type: ignore[arg-type]
    assert "k8s.node" not in [f.name for f in no_tag.fields]
