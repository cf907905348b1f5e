"""trace_tcpretrans on this kernel: a real retransmission inside a container's network namespace.

The receiver of a loopback connection drops every segment with a socket filter, so the client's
data is retransmitted from the retransmission timer, where the running task is not the client:
the record must still name the client's process (learned when it connected). A neighbour
container makes its own retransmission, which the container filter must hide.
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
    return built_gadgets["trace_tcpretrans"]


@pytest.mark.parametrize("family,host", [(4, "127.0.0.1"), (6, "::1")])
def test_retransmission_with_endpoints_state_and_owner(gadget: Path, family: int,
                                                       host: str) -> None:
    with sleeping_container() as w, sleeping_container() as neighbour:
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id)) as runner:
            runner.wait_schema()
            other = lossy_connection(neighbour, family)
            seen = lossy_connection(w, family)
            runner.wait_event(lambda d: d["src.port"] == seen["client"], what="a retransmission")
            assert runner.stop() == 0, runner.stderr()
    events = runner.events()
    mine = [d for d in events if d["src.port"] == seen["client"]]
    assert 1 <= len(mine) <= seen["retrans"] + 1, mine
    ev = mine[0]
    assert endpoint(ev, "src") == (host, seen["client"], 6)
    assert endpoint(ev, "dst") == (host, seen["server"], 6)
    assert ev["state"] == "ESTABLISHED"
    assert (ev["tcpflags"], ev["tcpflags_raw"]) == ("PSH|ACK", 0x18)
    assert ev["error"] == ""
    assert ev["netns_id"] == seen["netns"]
    assert (ev["proc.pid"], ev["proc.tid"]) == (seen["pid"], seen["pid"])
    assert ev["proc.comm"] == Path(sys.executable).name[:15]
    assert ev["proc.mntns_id"] == w.mntns_id
    assert ev["runtime.containerId"] == w.container_id
    # (network namespace ids are reused once a namespace is gone: not a way to tell them apart)
    assert not [d for d in events if other["client"] in (d["src.port"], d["dst.port"])]
    assert {d["proc.mntns_id"] for d in events} == {w.mntns_id}
