"""gadget.yaml keys as Inspektor Gadget reads them: regardless of case, and the older
top-level `ebpfParams` next to `params.ebpf`."""

from __future__ import annotations

import pytest

from node_runner.gadget.errors import GadgetFormatError
from node_runner.gadget.metadata import parse_metadata


def test_camel_case_datasources_and_field_keys() -> None:
    meta = parse_metadata("""
name: x
dataSources:
  open:
    Annotations: {cli.default-output-mode: columns}
    Fields:
      fname:
        Annotations: {columns.width: 32}
""")
    ds = meta.datasources["open"]
    assert ds.annotations == {"cli.default-output-mode": "columns"}
    assert ds.fields == {"fname": {"columns.width": "32"}}


def test_exact_key_wins_over_other_case() -> None:
    meta = parse_metadata("datasources: {a: {}}\ndataSources: {b: {}}\n")
    assert list(meta.datasources) == ["a"]


def test_top_level_ebpf_params() -> None:
    meta = parse_metadata("""
ebpfParams:
  failed_only: {key: failed, defaultValue: "false", description: only failures}
  filtered_pid: {key: pid, defaultValue: ""}
  kill_only: {key: kill-only, alias: k, defaultValue: false}
""")
    p = meta.params
    assert (p["failed_only"].key, p["failed_only"].default) == ("failed", "false")
    assert p["failed_only"].description == "only failures"
    assert p["filtered_pid"].default == ""
    assert (p["kill_only"].key, p["kill_only"].default) == ("kill-only", "false")


def test_params_ebpf_wins_a_clash_with_ebpf_params() -> None:
    meta = parse_metadata("""
ebpfParams: {a: {key: old}, b: {key: bee}}
params: {ebpf: {a: {key: new}}}
""")
    assert {v: p.key for v, p in meta.params.items()} == {"a": "new", "b": "bee"}


def test_ebpf_params_must_be_a_mapping() -> None:
    with pytest.raises(GadgetFormatError, match="ebpfParams"):
        parse_metadata("ebpfParams: [a, b]\n")
