"""`-o json` without decoding: the runner nests event data (--nested-data), the client
forwards it; the result must be exactly what the decoding path prints.
"""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from kubectl_gadget.operators.fields import parse_fields
from kubectl_gadget.operators.filter import parse_filters
from kubectl_gadget.output import StructuredFormatter
from kubectl_gadget.pipeline import Operators, Pipeline
from kubectl_gadget.session import Session, expected_schema
from node_runner.decoder import DatasourceEncoder
from node_runner.enrich import Enricher
from node_runner.gadget.layout import FlatField
from node_runner.gadget.nesting import nesting_tree, nests_cleanly
from node_runner.gadget.schema import build_schema, enrichment_schema
from node_runner.gadget.spec import GadgetSpec, load_spec
from node_runner.run import nestable
from tests import stream_mutations as M
from tests.conftest import TEST_GADGETS_SRC
from tests.unit.test_protocol_golden import CONTAINER_MNTNS, FixedTable, _encoder, encode


def _events(nested: bool) -> list[str]:
    fields = [FlatField("mntns_id", 0, 8, "int", tags=("gadget_mntns_id", "__u64")),
              FlatField("pid", 8, 4, "int", tags=("gadget_pid", "__u32"))]
    enricher = Enricher(FixedTable(), "n1", nested=nested)  # type: ignore[arg-type]
    lines, _ = encode(_encoder(fields, 16, enricher), [struct.pack("<QI4x", CONTAINER_MNTNS, 7)])
    return lines


def test_the_runner_nests_enrichment_as_json_output_does() -> None:
    flat = json.loads(_events(False)[0])["data"]
    nested = json.loads(_events(True)[0])["data"]
    assert flat["k8s.node"] == "n1" and flat["runtime.containerName"] == "cart"
    assert nested["k8s"]["node"] == "n1" and nested["runtime"]["containerName"] == "cart"
    assert nested["k8s"]["owner"] == {"kind": flat["k8s.owner.kind"],
                                      "name": flat["k8s.owner.name"]}
    assert list(nested) == ["mntns_id", "pid", "k8s", "runtime"]


def _spec(built: dict[str, Path], name: str) -> GadgetSpec:
    return load_spec(str(built[name]), name)


def test_nested_data_is_offered_for_plain_stream_gadgets(
        built_gadgets: dict[str, Path], build_gadget: Callable[[Path], Path]) -> None:
    plain = build_gadget(TEST_GADGETS_SRC / "perf_array")
    assert nestable(load_spec(str(plain), "perf_array"))
    # Dotted fields of the gadget itself (proc.pid, ...) nest too.
    assert nestable(_spec(built_gadgets, "trace_open"))
    assert nestable(_spec(built_gadgets, "trace_exec"))
    # An endpoint `src` is a value and the parent of `src.addr`: the decoding path.
    assert not nestable(_spec(built_gadgets, "trace_tcp"))


def test_fields_group_by_prefix_in_first_appearance_order() -> None:
    names = ["a", "proc.comm", "b", "proc.pid", "proc.parent.pid", "c", "proc.parent.comm"]
    assert nesting_tree(names) == [
        ("a", 0),
        ("proc", [("comm", 1), ("pid", 3), ("parent", [("pid", 4), ("comm", 6)])]),
        ("b", 2), ("c", 5)]
    assert nesting_tree(["pid", "comm"]) == [("pid", 0), ("comm", 1)]


@pytest.mark.parametrize("names", [
    ["src", "src.addr"], ["src.addr", "src"], ["a.b", "a.b.c"], ["a.b.c", "a.b"],
    ["k8s"], ["k8s.extra"], ["runtime.containerName"], ["pid", "pid"], ["a..b"], ["a."],
    [".a"]])
def test_doubtful_names_are_not_nested(names: list[str]) -> None:
    assert nesting_tree(names) is None
    assert not nests_cleanly(names)


def test_the_runner_nests_dotted_fields_as_json_output_does() -> None:
    fields = [FlatField("mntns_id", 0, 8, "int", tags=("gadget_mntns_id", "__u64")),
              FlatField("proc.pid", 8, 4, "int", tags=("gadget_pid", "__u32")),
              FlatField("size", 12, 4, "int", tags=("__u32",)),
              FlatField("proc.comm", 16, 8, "string", tags=("char",)),
              FlatField("proc.parent.pid", 24, 4, "int", tags=("__u32",))]
    record = struct.pack("<QII8sI4x", CONTAINER_MNTNS, 7, 9, b"cat", 1)
    flat = _encoder(fields, 32, Enricher(FixedTable(), "n1"))  # type: ignore[arg-type]
    table: Any = FixedTable()
    nested = DatasourceEncoder(build_schema("t", "stream", fields, ()), 32, nested=True,
                               enricher=Enricher(table, "n1", nested=True),
                               enrichment=enrichment_schema(cluster=False))
    (flat_line,), _ = encode(flat, [record])
    (nested_line,), _ = encode(nested, [record])
    names = [f.name for f in flat.fields]
    printed = StructuredFormatter(names, print, io.StringIO(), print).nest(
        json.loads(flat_line)["data"])
    got = json.loads(nested_line)["data"]
    assert json.dumps(got) == json.dumps(printed)
    assert list(got) == ["mntns_id", "proc", "size", "k8s", "runtime"]
    assert got["proc"] == {"pid": 7, "comm": "cat", "parent": {"pid": 1}}


def _run(lines: list[bytes], forward: bool) -> tuple[list[str], list[str]]:
    out = io.StringIO()
    diag: list[str] = []
    pipeline = Pipeline(Operators(mode="json"), out, diag.append)
    pipeline.forward = forward
    Session([M.MemoryNode("n1", b"\n".join(lines) + b"\n")], pipeline, timeout=None,
            diag=diag.append).run()
    return out.getvalue().splitlines(), diag


def _nested_stream(flat: list[bytes]) -> list[bytes]:
    hello = json.loads(flat[0])
    hello["data"] = "nested"
    out = [json.dumps(hello).encode(), flat[1]]
    for line in flat[2:]:
        rec = json.loads(line)
        if rec["type"] == "event":
            data = dict(rec["data"])
            data["k8s"] = {"node": data.pop("k8s.node")}
            rec["data"] = data
        out.append(json.dumps(rec).encode())
    return out


def test_forwarded_events_are_what_the_decoding_path_prints() -> None:
    flat = M.good_stream("n1", ["a", "b", "c"])
    decoded, _ = _run(flat, forward=False)
    forwarded, diag = _run(_nested_stream(flat), forward=True)
    assert [json.loads(x) for x in forwarded] == [json.loads(x) for x in decoded]
    assert json.loads(forwarded[0])["k8s"] == {"node": "n1"}
    assert not diag


def test_a_forwarding_client_still_checks_and_cleans_what_it_forwards() -> None:
    lines = _nested_stream(M.good_stream("n1", ["a", "b", "c"]))
    lines[2] = lines[2].replace(b'"ratio": 0.5', b'"ratio": NaN')
    lines[3] = b'{"type": "event", "ds": "exec", "data": [1, 2]}'
    lines.insert(4, b'{"type": "event", "ds": "exec", "data": {"x": ' + b"[" * 2000
                 + b"]" * 2000 + b"}}")
    out, diag = _run(lines, forward=True)
    rows = [json.loads(x) for x in out]
    assert [(r["comm"], r["ratio"]) for r in rows] == [("a", None), ("c", 0.5)]
    assert sum("skipping a malformed record" in d for d in diag) == 2, diag


def test_old_runners_that_do_not_nest_go_through_the_decoding_path() -> None:
    flat = M.good_stream("n1", ["a", "b"])
    forwarded, _ = _run(flat, forward=True)  # asked, but the hello does not confirm
    decoded, _ = _run(flat, forward=False)
    assert forwarded == decoded


def test_only_json_of_every_field_is_forwarded(built_gadgets: dict[str, Path]) -> None:
    schema = expected_schema(_spec(built_gadgets, "trace_open"), cluster=False)
    for ops, forward in [(Operators(mode="json"), True), (Operators(mode="columns"), False),
                         (Operators(mode="json", selection=parse_fields("pid")), False),
                         (Operators(mode="json", filters=parse_filters("pid==1")), False)]:
        pipeline = Pipeline(ops, io.StringIO(), print)
        for ds, fields in schema.items():
            pipeline.prepare(ds, fields)
        assert pipeline.can_forward() is forward, ops
    # `src` and `src.addr`: the runner would refuse to nest, so the client does not ask.
    pipeline = Pipeline(Operators(mode="json"), io.StringIO(), print)
    for ds, fields in expected_schema(_spec(built_gadgets, "trace_tcp"), cluster=False).items():
        pipeline.prepare(ds, fields)
    assert not pipeline.can_forward()
