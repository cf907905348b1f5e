"""A gadget whose record has a member of every kind decodes right with no Python written for it.

tests/data/gadgets/variant fills each member of `struct variant_event` with a known constant
on getppid(2) of the process given with --pid (the well-known `targ_pid` param); this test
calls getppid() itself and checks every value of the event and every type of the schema. Nothing
in node_runner knows about this gadget: the plan comes from its BTF.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from node_runner.gadget.schema import ENRICHMENT_FIELDS
from node_runner.gadget.spec import load_spec
from tests.conftest import TEST_GADGETS_SRC, needs_root_btf
from tests.kernel.runner_proc import RunnerProcess

VARIANT = TEST_GADGETS_SRC / "variant"

# Keep in sync with tests/data/gadgets/variant/program.bpf.c.
EXPECTED = {
    "small": (200, "u8"),
    "tiny_neg": (-100, "s8"),
    "negative": (-12345, "s16"),
    "flag_on": (True, "bool"),
    "flag_off": (False, "bool"),
    "inner.port": (8080, "u16"),
    "inner.delta": (-42, "s64"),
    "inner.tag": ("tagged!", "string"),
    "inner.point.x": (-7, "s16"),
    "inner.point.y": (65535, "u16"),
    "color": ("VARIANT_BLUE", "enum"),
    "odd_color": ("42", "enum"),  # a value with no enumerator: its number, as text
    "label": ("abc", "string"),  # cut at the first NUL ("abc\0hidden")
    "bits_lo": (5, "u8"),  # bitfields: the smallest protocol integer type that holds them
    "bits_neg": (-9, "s8"),
    "bits_hi": (0xABCDEF, "u32"),  # 24 bits: u32 (the protocol has no u24)
    "bytes": ([1, 2, 254, 255], "array"),
    "neg32": (-2000000000, "s32"),
    "big": (0xFEDCBA9876543210, "u64"),
    "very_neg": (-1234567890123, "s64"),
    "both.as_u32": (0x00020001, "u32"),  # a union: both members read the same bytes
    "both.as_u16": ([1, 2], "array"),
    "error_raw": (1, "u32"),
    "error": ("EPERM", "string"),
}
FIELD_ORDER = ["mntns_id", "pid", "small", "tiny_neg", "negative", "flag_on", "flag_off",
               "inner.port", "inner.delta", "inner.tag", "inner.point.x", "inner.point.y",
               "color", "odd_color", "label", "bits_lo", "bits_neg", "bits_hi", "bytes", "neg32",
               "big", "very_neg", "both.as_u32", "both.as_u16", "error_raw", "error"]


@pytest.fixture
def variant(build_gadget) -> Path:  # type: ignore[no-untyped-def]
    return build_gadget(VARIANT)


def test_variant_spec_has_every_member(variant: Path) -> None:
    """No root needed: the plan from BTF lists the members, dotted, `__reserved` left out."""
    (ds,) = load_spec(str(variant)).datasources
    assert ds.name == "variant" and ds.struct_name == "variant_event"
    assert [f.name for f in ds.fields] == [n for n in FIELD_ORDER if n != "error"]
    assert ds.has_mntns


@pytest.mark.kernel
@needs_root_btf
def test_every_member_decodes_with_its_value(variant: Path) -> None:
    with RunnerProcess(variant, "--param", f"pid={os.getpid()}") as runner:
        schema = runner.wait_schema()
        os.getppid()
        data = runner.wait_event(lambda d: True, what="getppid event")
        assert runner.stop() == 0, runner.stderr()
        end = runner.end()

    assert (end["reason"], end["exit_code"], end["dropped"], end["lost"]) == ("signal", 0, 0, 0)
    types = {f["name"]: f["type"] for f in schema["fields"]}
    assert [f["name"] for f in schema["fields"]] == FIELD_ORDER + list(ENRICHMENT_FIELDS)
    assert list(data) == FIELD_ORDER + list(ENRICHMENT_FIELDS)
    assert {n: data[n] for n in EXPECTED} == {n: v for n, (v, _t) in EXPECTED.items()}
    assert {n: types[n] for n in EXPECTED} == {n: t for n, (_v, t) in EXPECTED.items()}
    assert type(data["flag_on"]) is bool and type(data["odd_color"]) is str
    assert data["pid"] == os.getpid()
    assert data["mntns_id"] == os.stat("/proc/self/ns/mnt").st_ino
    # A host process: enrichment is empty but for the node.
    assert data["runtime.containerId"] == "" and data["k8s.node"] == os.uname().nodename
    # Annotations from gadget.yaml reach nested members and `_raw` companions.
    notes = {f["name"]: f["annotations"] for f in schema["fields"]}
    assert notes["inner.port"] == {"description": "a nested member", "columns.width": "6"}
    assert notes["error"] == {"description": "errno name"}
    assert schema["annotations"] == {"cli.default-output-mode": "json"}
    protocol_types = {"bool", "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "f32",
                      "f64", "string", "enum", "array", "bytes"}
    assert set(types.values()) <= protocol_types
    tags = {f["name"]: f["tags"] for f in schema["fields"]}
    assert tags["error_raw"] == ["type:gadget_errno", "type:__u32"]
    assert tags["mntns_id"] == ["type:gadget_mntns_id", "type:__u64"]
