"""Section names -> how a program is attached; the dispatcher's instructions; library names."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import pytest

from node_runner.attach import kinds
from node_runner.attach.dispatch import dispatcher_code
from node_runner.attach.uprobes import resolve_library


@pytest.mark.parametrize("section,expected", [
    ("socket1", kinds.Kind(kinds.SOCKET_FILTER)),
    ("socket", kinds.Kind(kinds.SOCKET_FILTER)),
    ("socket2/dns", kinds.Kind(kinds.SOCKET_FILTER)),
    ("classifier/ingress/drop", kinds.Kind(kinds.TC, ingress=True)),
    ("classifier/egress/count", kinds.Kind(kinds.TC, ingress=False)),
    ("tc/ingress", kinds.Kind(kinds.TC, ingress=True)),
    ("uprobe/libc:malloc", kinds.Kind(kinds.UPROBE, library="libc", symbol="malloc")),
    ("uretprobe/libssl:SSL_read",
     kinds.Kind(kinds.UPROBE, library="libssl", symbol="SSL_read", retprobe=True)),
    ("uprobe//usr/lib/libc.so.6:malloc", kinds.Kind(kinds.DEFAULT)),  # a path: libbpf's
    ("tracepoint/syscalls/sys_enter_openat", kinds.Kind(kinds.DEFAULT)),
    ("socketcall", kinds.Kind(kinds.DEFAULT)),
])
def test_classify(section: str, expected: kinds.Kind) -> None:
    assert kinds.classify(section) == expected


def test_dispatcher_stores_the_namespace_through_a_register_then_tail_calls() -> None:
    code = dispatcher_code(4026531840, 7, -1)
    insns = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    assert insns[0] == (0xb4, 2, 0, 4026531840 - (1 << 32))   # w2 = netns (as s32)
    assert insns[1] == (0x63, 1 | 2 << 4, 48, 0)             # *(u32 *)(r1 + 48) = w2
    assert insns[2] == (0x18, 2 | 1 << 4, 0, 7)               # r2 = map fd 7
    assert insns[5] == (0x85, 0, 0, 12)                       # bpf_tail_call
    assert insns[6] == (0xb7, 0, 0, -1) and insns[7][0] == 0x95


def test_library_short_name_is_found_in_a_root(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "42").mkdir(parents=True)
    (proc / "42" / "maps").write_text("")  # nothing mapped: the standard dirs are searched
    lib = proc / "42" / "root" / "usr" / "lib" / f"{os.uname().machine}-linux-gnu"
    lib.mkdir(parents=True)
    for name in ("libcrypto.so.3", "libc.so.6", "libssl.so.3"):
        (lib / name).write_bytes(b"\x7fELF")
    found = resolve_library("libssl", 42, str(proc))
    assert found == f"{lib}/libssl.so.3"
    found = resolve_library("libc", 42, str(proc))
    assert found is not None and found.endswith("/libc.so.6")
    assert resolve_library("libnothere", 42, str(proc)) is None


def test_library_from_the_process_maps_wins(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "7" / "root" / "opt").mkdir(parents=True)
    (proc / "7" / "maps").write_text(
        "7f00-7f01 r-xp 00000000 08:01 1234 /opt/libc-2.31.so\n")
    assert resolve_library("libc", 7, str(proc)) == f"{proc}/7/root/opt/libc-2.31.so"


def test_library_name_variants(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "9" / "root").mkdir(parents=True)
    (proc / "9" / "maps").write_text(
        "7f00-7f01 r-xp 00000000 08:01 1 /lib/libcrypto.so.3\n"
        "7f02-7f03 r-xp 00000000 08:01 2 /lib/ld-musl-x86_64.so.1\n"
        "7f04-7f05 r-xp 00000000 08:01 3 /lib/libc.musl-x86_64.so.1\n")
    assert resolve_library("libc", 9, str(proc)) == f"{proc}/9/root/lib/libc.musl-x86_64.so.1"
    assert resolve_library("libcrypto", 9, str(proc)) == f"{proc}/9/root/lib/libcrypto.so.3"
    assert resolve_library("libssl", 9, str(proc)) is None
