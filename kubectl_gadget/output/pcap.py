"""``-o pcap``: the packets of a packet-capturing gadget as a pcap file on stdout.

The file (libpcap format, nanosecond timestamps, link type Ethernet) opens with its global
header as soon as the formatter is built, so a capture with no packets is still a valid file,
then one record per event: the event's ``timestamp`` (RFC 3339, ns), ``caplen`` bytes of
``packet`` (a hex string, or a list of byte values) and the original ``len``. Only datasources
with these four fields qualify (the ``tcpdump`` gadget's); any other is a usage error before
anything starts. The trap avoided: writing binary data through the text layer of stdout
(newline translation, encoding); records go to its binary buffer, and nothing else in this mode
writes to stdout.
"""

from __future__ import annotations

import calendar
import struct
import time
from collections.abc import Sequence
from typing import BinaryIO, TextIO

from kubectl_gadget.errors import UsageError
from kubectl_gadget.operators import FieldSchema
from kubectl_gadget.output.formatter import Diag, Formatter, Row

PCAP_MAGIC_NS = 0xA1B23C4D  # libpcap magic for nanosecond timestamps
LINKTYPE_ETHERNET = 1
SNAPLEN = 65535
REQUIRED_FIELDS = ("packet", "caplen", "len", "timestamp")
_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")


def _wall_time(stamp: str) -> tuple[int, int]:
    """(seconds, nanoseconds) since the epoch of ``2026-11-29T15:18:21.114366241Z``."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S"))
    return seconds, int((frac + "000000000")[:9]) if frac else 0


class PcapFormatter(Formatter):
    """``-o pcap``: one pcap record per event, on the binary buffer of ``out``."""

    def __init__(self, fields: Sequence[FieldSchema], out: TextIO, diag: Diag) -> None:
        super().__init__(out, diag)
        names = {f["name"] for f in fields}
        missing = [name for name in REQUIRED_FIELDS if name not in names]
        if missing:
            raise UsageError("-o pcap needs a gadget that captures packets (such as tcpdump): "
                             f"its records have no {', '.join(missing)} field")
        binary: BinaryIO | None = getattr(out, "buffer", None)
        if binary is None:
            raise UsageError("-o pcap writes binary data, and this output has no binary stream")
        self._bin = binary
        self._last_stamp = ""
        self._last_wall = (0, 0)
        self._warned = False
        self._bin.write(_GLOBAL_HEADER.pack(PCAP_MAGIC_NS, 2, 4, 0, 0, SNAPLEN,
                                            LINKTYPE_ETHERNET))

    def event(self, data: Row) -> None:
        raw, caplen = data["packet"], data["caplen"]
        # an opaque byte range arrives as hex; a byte array as a list of numbers
        packet = bytes.fromhex(raw[: 2 * caplen]) if isinstance(raw, str) else bytes(raw[:caplen])
        stamp = data["timestamp"]
        if stamp != self._last_stamp:
            self._last_stamp, self._last_wall = stamp, _wall_time(stamp)
        sec, nsec = self._last_wall
        self._bin.write(_RECORD_HEADER.pack(sec, nsec, len(packet), data["len"]) + packet)

    def array(self, rows: Sequence[Row]) -> None:
        if not self._warned:
            self._warned = True
            self._diag("-o pcap: array outputs carry no packets; they are not written")

    def flush(self) -> None:
        self._out.flush()
        self._bin.flush()
