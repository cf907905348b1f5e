"""IG's network types, 128-bit integers, enums, short records and empty defaults, for real.

tests/data/gadgets/netabi emits, on getppid(2) of the process given with --pid, one `net`
record with known endpoints, 128-bit integers, enums and typed numbers, and one `short`
record submitted with only 8 of its 32 bytes. Nothing in node_runner knows this gadget.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from node_runner.gadget.spec import load_spec
from tests.conftest import TEST_GADGETS_SRC, needs_root_btf
from tests.kernel.runner_proc import RunnerProcess

NETABI = TEST_GADGETS_SRC / "netabi"
SYSCALL_39 = {"x86_64": "SYS_GETPID", "aarch64": "SYS_UMOUNT2"}

# Keep in sync with tests/data/gadgets/netabi/program.bpf.c.
EXPECTED_NET = {
    "src": "127.0.0.1:4242", "src.addr": "127.0.0.1", "src.port": 4242, "src.proto_raw": 6,
    "src.proto": "TCP", "src.version": 4,
    "dst": "[::1]:443", "dst.addr": "::1", "dst.port": 443, "dst.proto": "UDP",
    "dst.version": 6,
    "peer": "fe80::2a", "peer.addr": "fe80::2a", "peer.version": 6,
    "big": (0x0123456789ABCDEF << 64) | 0xFEDCBA9876543210, "neg": -(1 << 100),
    "state_raw": 9, "state": "NETABI_CLOSED",
    "perms_raw": 5, "perms": "NETABI_READ|NETABI_EXEC",
    "plain": "NETABI_OPEN",
    "syscall_raw": 39,
    "user_raw": 0, "user": "root", "group_raw": 0, "group": "root",
    "sig_raw": 9, "sig": "SIGKILL",
    "marker": 77,  # gadget.yaml's default is "": the value compiled into .rodata
}


@pytest.fixture
def netabi(build_gadget) -> Path:  # type: ignore[no-untyped-def]
    return build_gadget(NETABI)


def _event(runner: RunnerProcess, ds: str) -> dict[str, Any]:
    rec = runner.wait_for(lambda r: r.get("type") == "event" and r.get("ds") == ds,
                          what=f"{ds} event")
    return rec["data"]


def test_netabi_schema_without_root(netabi: Path) -> None:
    net, short = load_spec(str(netabi)).datasources
    assert (net.record_size, short.record_size) == (192, 32)
    assert net.schema is not None
    types = {f.name: f.type for f in net.schema.fields}
    assert (types["big"], types["neg"], types["state_raw"], types["state"]) == (
        "u128", "s128", "u32", "enum")
    assert types["src"] == types["src.addr"] == types["src.proto"] == "string"
    notes = {f.name: f.annotations for f in net.schema.fields}
    # Columns show the endpoint as one `addr:port` column; JSON shows its parts.
    assert notes["src"] == {"json.skip": "true", "description": "source endpoint"}
    assert notes["src.addr_raw"]["columns.hidden"] == "true"
    assert notes["src.port"] == {"columns.hidden": "true"}
    assert load_spec(str(netabi)).params["marker"].default is None


@pytest.mark.kernel
@needs_root_btf
def test_endpoints_int128_enums_and_short_records_decode(netabi: Path) -> None:
    with RunnerProcess(netabi, "--param", f"pid={os.getpid()}") as runner:
        runner.wait_schema()
        os.getppid()
        net = _event(runner, "net")
        short = _event(runner, "short")
        assert runner.stop() == 0, runner.stderr()
        end = runner.end()
    assert {k: net[k] for k in EXPECTED_NET} == EXPECTED_NET
    assert net["syscall"] == SYSCALL_39[os.uname().machine]
    assert "src.addr_raw" in net and net["pid"] == os.getpid()
    # 8 bytes submitted of 32: the rest reads as zero, and the record is not dropped.
    assert short == {"a": 11, "b": 22, "name": "", "tail": 0}
    assert (end["dropped"], end["lost"], end["exit_code"]) == (0, 0, 0)
    assert end["events"] >= 2


@pytest.mark.kernel
@needs_root_btf
def test_a_param_set_by_the_user_still_wins_over_the_compiled_value(netabi: Path) -> None:
    with RunnerProcess(netabi, "--param", f"pid={os.getpid()}", "--param", "marker=5") as r:
        r.wait_schema()
        os.getppid()
        net = _event(r, "net")
        assert r.stop() == 0, r.stderr()
    assert net["marker"] == 5
