"""`-o json` of trace_exec and trace_open: real events, nested by the runner and forwarded by
the client, print exactly what the decoding path prints (values and key order).

The gadget is loaded in-process and every ring-buffer batch goes through both of the runner's
encoders (flat and --nested-data), so both paths see the very same kernel records; each stream
then goes through the client's pipeline, forwarding or decoding.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from kubectl_gadget.pipeline import Operators, Pipeline
from kubectl_gadget.session import Session
from node_runner.containers import ContainerTable
from node_runner.decoder import DatasourceEncoder
from node_runner.enrich import Enricher
from node_runner.formatters import FormatContext, boot_to_wall_ns
from node_runner.gadget.schema import enrichment_schema
from node_runner.gadget.spec import load_spec
from node_runner.loader import LoadedGadget
from node_runner.run import nestable
from tests import stream_mutations as M
from tests.conftest import needs_root_btf, needs_unshare
from tests.workloads import sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

CAT = shutil.which("cat") or "/bin/cat"
NODE = os.uname().nodename


Captured = tuple[dict[str, Any], dict[bool, list[str]]]


def _capture(gadget: Path, name: str, tmp_path: Path) -> Captured:
    """Run `cat` on a present and a missing file in a container; the schema record and the
    event lines of both encoders (key: nested) for the same records."""
    spec = load_spec(str(gadget), name)
    assert nestable(spec)
    (ds,) = spec.datasources
    assert ds.schema is not None
    token = secrets.token_hex(6)
    present = tmp_path / f"present-{token}"
    present.write_text("x\n")
    table = ContainerTable()
    ctx = FormatContext(offset_ns=boot_to_wall_ns())
    encoders = {nested: DatasourceEncoder(ds.schema, ds.record_size, context=ctx,
                                          enricher=Enricher(table, NODE, nested=nested),
                                          enrichment=enrichment_schema(cluster=False),
                                          nested=nested)
                for nested in (False, True)}
    lines: dict[bool, list[str]] = {False: [], True: []}

    def handle(buf: object, offsets: list[int], sizes: list[int]) -> None:
        for nested, enc in encoders.items():
            assert enc.encode_batch(buf, offsets, sizes, lines[nested]) == 0

    with sleeping_container() as w:
        table.refresh()
        with LoadedGadget(spec, {}, {w.mntns_id}) as loaded:
            proc = w.popen([CAT, str(present), str(tmp_path / f"missing-{token}")])
            proc.wait(timeout=10)
            reader = loaded.readers[ds.name]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not any(
                    f"missing-{token}" in line for line in lines[False]):
                reader.wait(0.2)
                reader.read(handle)
    assert any(f"missing-{token}" in line for line in lines[False]), "no event of the workload"
    return encoders[False].schema.to_wire(), lines


def _print(schema: dict[str, Any], events: list[str], nested: bool) -> list[str]:
    hello = json.loads(M.head(NODE)[0])
    if nested:
        hello["data"] = "nested"
    stream = [json.dumps(hello), json.dumps(schema), *events, M.end(len(events)).decode()]
    out = io.StringIO()
    diag: list[str] = []
    pipeline = Pipeline(Operators(mode="json"), out, diag.append)
    pipeline.forward = nested
    Session([M.MemoryNode(NODE, "\n".join(stream).encode() + b"\n")], pipeline, timeout=None,
            diag=diag.append).run()
    assert not diag, diag
    assert pipeline.can_forward()
    return out.getvalue().splitlines()


@pytest.mark.parametrize("name", ["trace_exec", "trace_open"])
def test_forwarded_nested_events_equal_decoded_ones(built_gadgets: dict[str, Path], name: str,
                                                    tmp_path: Path) -> None:
    schema, lines = _capture(built_gadgets[name], name, tmp_path)
    assert len(lines[True]) == len(lines[False]) > 0
    runner_nested = json.loads(lines[True][0])["data"]
    assert isinstance(runner_nested["proc"], dict) and "proc.comm" not in runner_nested
    decoded = _print(schema, lines[False], nested=False)
    forwarded = _print(schema, lines[True], nested=True)
    assert len(decoded) == len(lines[False])
    # Same objects, same key order (json.dumps of the parsed objects keeps the order).
    assert [json.dumps(json.loads(x)) for x in forwarded] == \
        [json.dumps(json.loads(x)) for x in decoded]
    first = json.loads(decoded[0])
    assert first["proc"]["comm"] and first["k8s"]["node"] == NODE
    assert first["runtime"]["runtimeName"] == "containerd"
