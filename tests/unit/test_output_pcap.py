"""``-o pcap``: the file layout (libpcap, ns timestamps, Ethernet) and the usage errors.

The bytes are read back with the documented libpcap layout, independently of the writer: a
global header of 24 bytes (magic a1b23c4d, version 2.4, snaplen, link type 1), then per packet
ts_sec, ts_nsec, incl_len, orig_len and the captured bytes.
"""

from __future__ import annotations

import calendar
import io
import struct

import pytest

from kubectl_gadget.errors import UsageError
from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.output import make_formatter

FIELDS: list[FieldSchema] = [
    {"name": "timestamp", "type": "string"}, {"name": "len", "type": "u32"},
    {"name": "caplen", "type": "u32"}, {"name": "packet", "type": "array"},
]


def _read_pcap(raw: bytes) -> tuple[tuple[int, ...], list[tuple[int, int, int, bytes]]]:
    header = struct.unpack_from("<IHHiIII", raw)
    packets, pos = [], 24
    while pos < len(raw):
        sec, nsec, incl, orig = struct.unpack_from("<IIII", raw, pos)
        packets.append((sec, nsec, orig, raw[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    assert pos == len(raw)
    return header, packets


def test_header_then_one_record_per_event_cut_at_caplen() -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    fmt = make_formatter("pcap", FIELDS, out=out, diag=lambda line: None)
    frame = list(range(60))
    fmt.event({"timestamp": "2026-11-29T15:18:21.000000042Z", "len": 1500, "caplen": 60,
               "packet": frame + [0] * 68})
    fmt.event({"timestamp": "2026-11-29T15:18:22.5Z", "len": 3, "caplen": 3,
               "packet": "ff000a" + "00" * 125})  # the decoder's hex form of a byte range
    fmt.flush()
    header, packets = _read_pcap(out.buffer.getvalue())  # type: ignore[attr-defined]
    assert header == (0xA1B23C4D, 2, 4, 0, 0, 65535, 1)
    base = calendar.timegm((2026, 11, 29, 15, 18, 21, 0, 0, 0))
    assert packets == [(base, 42, 1500, bytes(frame)), (base + 1, 500_000_000, 3, b"\xff\x00\x0a")]


def test_an_empty_capture_is_a_valid_file() -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    make_formatter("pcap", FIELDS, out=out, diag=lambda line: None).flush()
    assert _read_pcap(out.buffer.getvalue()) == ((0xA1B23C4D, 2, 4, 0, 0, 65535, 1), [])  # type: ignore[attr-defined]


def test_gadgets_without_packets_and_text_only_outputs_are_usage_errors() -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    with pytest.raises(UsageError, match="no packet, caplen field"):
        make_formatter("pcap", [FIELDS[0], FIELDS[1]], out=out, diag=print)
    with pytest.raises(UsageError, match="binary"):
        make_formatter("pcap", FIELDS, out=io.StringIO(), diag=print)


def test_array_outputs_are_reported_once_not_written() -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    said: list[str] = []
    fmt = make_formatter("pcap", FIELDS, out=out, diag=said.append)
    fmt.array([{"a": 1}])
    fmt.array([{"a": 2}])
    fmt.flush()
    assert len(said) == 1 and "array" in said[0]
    assert len(out.buffer.getvalue()) == 24  # type: ignore[attr-defined]
