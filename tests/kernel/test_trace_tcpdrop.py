"""trace_tcpdrop on this kernel: TCP segments dropped by a socket filter inside a container.

The receiver of a loopback connection drops every segment with a classic BPF socket filter;
the kernel frees them with SKB_DROP_REASON_SOCKET_FILTER. The record must carry that reason by
name, the segment's endpoints and flags, the receiving socket's state and owner. A neighbour
container's drops must be hidden by the container filter.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.netns import endpoint, lossy_connection
from tests.kernel.runner_proc import RunnerProcess
from tests.workloads import sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]


@pytest.fixture(scope="module")
def gadget(built_gadgets: dict[str, Path]) -> Path:
    return built_gadgets["trace_tcpdrop"]


@pytest.mark.parametrize("family,host", [(4, "127.0.0.1"), (6, "::1")])
def test_socket_filter_drop_with_reason_endpoints_and_owner(gadget: Path, family: int,
                                                            host: str) -> None:
    with sleeping_container() as w, sleeping_container() as neighbour:
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id)) as runner:
            runner.wait_schema()
            other = lossy_connection(neighbour, family)
            seen = lossy_connection(w, family)
            runner.wait_event(lambda d: d["src.port"] == seen["client"], what="a drop")
            assert runner.stop() == 0, runner.stderr()
    events = runner.events()
    mine = [d for d in events if d["src.port"] == seen["client"]]
    assert mine
    ev = mine[0]
    assert ev["reason"] == "SKB_DROP_REASON_SOCKET_FILTER"
    assert endpoint(ev, "src") == (host, seen["client"], 6)
    assert endpoint(ev, "dst") == (host, seen["server"], 6)
    assert (ev["tcpflags"], ev["tcpflags_raw"]) == ("PSH|ACK", 0x18)
    assert ev["state"] == "ESTABLISHED"  # the receiving socket's
    assert ev["netns_id"] == seen["netns"]
    # the receiving socket was accepted by the workload's listener: its owner is the workload
    assert ev["proc.pid"] == seen["pid"]
    assert ev["proc.comm"] == Path(sys.executable).name[:15]
    assert ev["proc.mntns_id"] == w.mntns_id
    assert ev["runtime.containerId"] == w.container_id
    # (network namespace ids are reused once a namespace is gone: not a way to tell them apart)
    assert not [d for d in events if other["client"] in (d["src.port"], d["dst.port"])]
    assert {d["proc.mntns_id"] for d in events} == {w.mntns_id}
