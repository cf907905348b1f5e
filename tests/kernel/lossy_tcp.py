"""A TCP gadget's run around two lossy loopback connections (trace_tcpdrop, trace_tcpretrans).

One connection is made in a workload container, one in a neighbour container, each in its own
network namespace (``lossy_connection``: the receiver drops every segment with a socket filter,
so the client's data is dropped and then retransmitted). The gadget runs filtered to the
workload's mount namespace, until it has reported the workload's client segment.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.kernel.netns import endpoint, lossy_connection
from tests.kernel.runner_proc import RunnerProcess
from tests.workloads import sleeping_container


@dataclass(frozen=True)
class LossyRun:
    events: list[dict[str, Any]]
    seen: dict[str, Any]   # the workload's connection (lossy_connection's output)
    other: dict[str, Any]  # the neighbour's
    mntns_id: int          # the workload's
    container_id: str

    def client_records(self) -> list[dict[str, Any]]:
        """The records of the workload client's segments."""
        return [d for d in self.events if d["src.port"] == self.seen["client"]]


def run_lossy(gadget: Path, family: int, what: str) -> LossyRun:
    """Run `gadget` filtered to a workload while both containers make a lossy connection;
    `what` names the record waited for in a timeout's message."""
    with sleeping_container() as w, sleeping_container() as neighbour:
        with RunnerProcess(gadget, "--mntns", str(w.mntns_id)) as runner:
            runner.wait_schema()
            other = lossy_connection(neighbour, family)
            seen = lossy_connection(w, family)
            runner.wait_event(lambda d: d["src.port"] == seen["client"], what=what)
            assert runner.stop() == 0, runner.stderr()
    return LossyRun(runner.events(), seen, other, w.mntns_id, w.container_id)


def check_client_segment(run: LossyRun, ev: dict[str, Any], host: str) -> None:
    """What both gadgets say of the client's data segment: endpoints, flags, the connection's
    state, network namespace, and the workload's process and container as the owner."""
    assert endpoint(ev, "src") == (host, run.seen["client"], 6)
    assert endpoint(ev, "dst") == (host, run.seen["server"], 6)
    assert (ev["tcpflags"], ev["tcpflags_raw"]) == ("PSH|ACK", 0x18)
    assert ev["state"] == "ESTABLISHED"
    assert ev["netns_id"] == run.seen["netns"]
    assert ev["proc.pid"] == run.seen["pid"]
    assert ev["proc.comm"] == Path(sys.executable).name[:15]
    assert ev["proc.mntns_id"] == run.mntns_id
    assert ev["runtime.containerId"] == run.container_id


def check_neighbour_hidden(run: LossyRun) -> None:
    """The container filter kept only the workload's records."""
    # (network namespace ids are reused once a namespace is gone: not a way to tell them apart)
    other = run.other["client"]
    assert not [d for d in run.events if other in (d["src.port"], d["dst.port"])]
    assert {d["proc.mntns_id"] for d in run.events} == {run.mntns_id}
