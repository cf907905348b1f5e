"""The runner drops events of its own process (skip_pid), and only those."""

from __future__ import annotations

import json
import struct

from node_runner.decoder import DatasourceEncoder
from node_runner.gadget.layout import FlatField
from node_runner.gadget.schema import build_schema

FIELDS = [FlatField("pid", 0, 4, "int", tags=("gadget_pid", "__u32")),
          FlatField("value", 4, 4, "int", tags=("__u32",))]


def encode(skip_pid: int | None, records: list[tuple[int, int]]) -> list[dict]:
    enc = DatasourceEncoder(build_schema("ds", "stream", FIELDS, ()), 8, skip_pid=skip_pid)
    buf = b"".join(struct.pack("<II", pid, value) for pid, value in records)
    out: list[str] = []
    dropped = enc.encode_batch(buf, [i * 8 for i in range(len(records))], [8] * len(records),
                               out)
    assert dropped == 0
    return [json.loads(line)["data"] for line in out]


def test_own_pid_is_skipped_and_others_kept() -> None:
    got = encode(42, [(1, 10), (42, 11), (7, 12), (42, 13)])
    assert got == [{"pid": 1, "value": 10}, {"pid": 7, "value": 12}]


def test_without_skip_pid_everything_is_kept() -> None:
    assert [d["pid"] for d in encode(None, [(42, 1), (43, 2)])] == [42, 43]


def test_a_field_without_the_pid_tag_is_not_used_for_skipping() -> None:
    fields = [FlatField("pid", 0, 4, "int", tags=("__u32",))]
    enc = DatasourceEncoder(build_schema("ds", "stream", fields, ()), 4, skip_pid=5)
    out: list[str] = []
    enc.encode_batch(struct.pack("<I", 5), [0], [4], out)
    assert len(out) == 1
