"""tcpdump on this kernel: a container's packets, through the client, as a pcap file.

A container with its own mount and network namespace sends numbered UDP datagrams to itself
over 127.0.0.1 while `kubectl gadget run tcpdump --local -o pcap` captures it; a neighbour
container in another namespace does the same with another token. The pcap bytes on stdout are
read back with the documented libpcap layout and the frames are parsed here: every captured
datagram of the target is there once, byte for byte, and none of the neighbour's.
"""

from __future__ import annotations

import secrets
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, needs_root_btf, needs_unshare
from tests.kernel.netns import in_netns_of, netns_container, socket_enricher
from tests.kernel.runner_proc import python_argv, wait_exit

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]
__all__ = ["socket_enricher"]  # a fixture used by the test below

# Sends "<token>-<n>" over UDP to its own socket on 127.0.0.1 every 50 ms until killed.
SENDER = """
import itertools, socket, sys, time
token = sys.argv[1]
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.bind(("127.0.0.1", 0))
tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for n in itertools.count():
    tx.sendto(f"{token}-{n}".encode(), rx.getsockname())
    rx.recv(100)
    time.sleep(0.05)
"""


def _frames(pcap: bytes) -> list[tuple[float, int, bytes]]:
    magic, major, minor, _zone, _sigfigs, _snaplen, linktype = struct.unpack_from("<IHHiIII",
                                                                                  pcap)
    assert (magic, major, minor, linktype) == (0xA1B23C4D, 2, 4, 1)
    frames, pos = [], 24
    while pos < len(pcap):
        sec, nsec, incl, orig = struct.unpack_from("<IIII", pcap, pos)
        frames.append((sec + nsec / 1e9, orig, pcap[pos + 16:pos + 16 + incl]))
        pos += 16 + incl
    assert pos == len(pcap)
    return frames


def _udp_payload(frame: bytes) -> tuple[str, str, int, bytes] | None:
    """(source, destination, destination port, payload) of an Ethernet/IPv4/UDP frame."""
    if frame[12:14] != b"\x08\x00" or frame[14 + 9] != 17:
        return None
    ihl = (frame[14] & 0x0F) * 4
    src, dst = (".".join(map(str, frame[14 + o:18 + o])) for o in (12, 16))
    udp = 14 + ihl
    dport, length = struct.unpack_from("!HH", frame, udp + 2)
    return src, dst, dport, frame[udp + 8:udp + length]


def test_pcap_holds_the_targets_datagrams_only(built_gadgets: dict[str, Path],
                                               socket_enricher: Path) -> None:
    token, other = secrets.token_hex(6), secrets.token_hex(6)
    with netns_container() as w, netns_container() as neighbour:
        senders = [box.popen(in_netns_of(box, [*python_argv(SENDER), tok]))
                   for box, tok in ((w, token), (neighbour, other))]
        start = time.time()
        run = subprocess.run(
            [sys.executable, "-m", "kubectl_gadget", "run", str(built_gadgets["tcpdump"]),
             "--local", "-o", "pcap", "--snaplen", "512", "--timeout", "4",
             "--container-id", w.container_id],
            cwd=REPO, capture_output=True, timeout=90, stdin=subprocess.DEVNULL)
        end = time.time()
        for sender in senders:
            assert sender.poll() is None, "a sender stopped before the capture ended"
            sender.kill()
            wait_exit(sender)
    assert run.returncode == 0, run.stderr.decode()
    frames = _frames(run.stdout)
    mine = {}
    for stamp, orig, frame in frames:
        parsed = _udp_payload(frame)
        assert parsed is None or not parsed[3].startswith(other.encode()), "neighbour captured"
        if parsed and parsed[3].startswith(token.encode()):
            src, dst, _dport, payload = parsed
            assert (src, dst) == ("127.0.0.1", "127.0.0.1")
            assert orig == len(frame) == 14 + 20 + 8 + len(payload)
            assert start <= stamp <= end
            assert payload not in mine, "a datagram was captured twice"
            mine[payload] = stamp
    assert len(mine) >= 10, f"{len(mine)} datagrams in a 4 s capture at 20/s"
    numbers = sorted(int(p.decode().rsplit("-", 1)[1]) for p in mine)
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), "datagrams missing in between"
