"""A gadget with a WASM module: extracted beside the object, and one line says what is missing."""

from __future__ import annotations

from pathlib import Path

from node_runner import wasm
from node_runner.gadget.metadata import parse_metadata
from node_runner.oci.media import CONFIG_YAML, EBPF_LAYER, WASM_LAYER, descriptor
from node_runner.oci.reference import parse_reference
from node_runner.oci.resolve import extract
from node_runner.oci.store import Store

META = """
name: dns
datasources:
  dns:
    fields:
      pid: {}
      qr: {}
      name: {}
  dns_stats:
    fields:
      count: {}
"""


def test_notice_names_what_only_the_module_would_produce() -> None:
    meta = parse_metadata(META)
    line = wasm.notice("dns", meta, {"dns": {"pid", "qr", "comm"}})
    assert "\n" not in line
    assert line.startswith("gadget dns carries a WASM module, which this runner does not run")
    assert "fields name of datasource dns" in line
    assert "datasource dns_stats (fields count)" in line
    assert "pid" not in line.split("missing:")[1]


def test_notice_when_the_module_adds_nothing_declared() -> None:
    line = wasm.notice("dns", parse_metadata(META), {"dns": {"pid", "qr", "name"},
                                                     "dns_stats": {"count"}})
    assert line.endswith("(gadget.yaml declares nothing only the module would produce)")


def test_extract_keeps_the_wasm_layer_beside_the_object(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")
    obj, module, config = b"\x7fELF object", b"\0asm module", b"name: dns\n"
    for blob in (obj, module, config):
        store.write_blob(blob)
    manifest = {"config": descriptor(CONFIG_YAML, config),
                "layers": [descriptor(EBPF_LAYER, obj), descriptor(WASM_LAYER, module)]}
    out = extract(store, parse_reference("example.com/gadgets/dns:v1"), "sha256:" + "a" * 64,
                  manifest)
    assert (out / "program.bpf.o").read_bytes() == obj
    assert (out / wasm.WASM_FILE).read_bytes() == module
    assert wasm.has_module(str(out / "program.bpf.o"))
    # The same manifest without the module: a stale copy does not survive.
    manifest["layers"] = manifest["layers"][:1]
    out = extract(store, parse_reference("example.com/gadgets/dns:v1"), "sha256:" + "a" * 64,
                  manifest)
    assert not wasm.has_module(str(out / "program.bpf.o"))
