"""Snapshots (GADGET_ITER): iterators run once, their rows merged, the container filter held.

tests/data/gadgets/snapshot_test has three iterator datasources: `tasks` (iter/task), `socks`
(iter/tcp + iter/udp into one array) and `filtered` (iter/bpf_map_elem over the runner's own
container-filter map). A snapshot-only gadget fetches once and ends with exit 0.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.conftest import TEST_GADGETS_SRC, needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess
from tests.workloads import sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf]


@pytest.fixture
def gadget(build_gadget) -> Path:  # type: ignore[no-untyped-def]
    return build_gadget(TEST_GADGETS_SRC / "snapshot_test")  # type: ignore[no-any-return]


def _snapshot(gadget: Path, *args: str) -> dict[str, list[dict[str, object]]]:
    with RunnerProcess(gadget, *args) as runner:
        assert runner.wait(60) == 0, runner.stderr()
    end = runner.end()
    assert (end["reason"], end["exit_code"]) == ("finished", 0)
    arrays = runner.of_type("array")
    assert all(a["fetch"] == 1 for a in arrays)
    return {a["ds"]: a["data"] for a in arrays}


@needs_unshare
def test_a_container_process_appears_unless_filtered_out(gadget: Path) -> None:
    with sleeping_container() as mine, sleeping_container() as other:
        everything = _snapshot(gadget)
        filtered = _snapshot(gadget, "--mntns", str(other.mntns_id))
    rows = [r for r in everything["tasks"] if r["pid"] == mine.pid]
    assert len(rows) == 1, everything["tasks"][:5]
    assert (rows[0]["comm"], rows[0]["mntns_id"]) == ("sleep", mine.mntns_id)
    assert not [r for r in filtered["tasks"] if r["pid"] == mine.pid]
    assert {r["mntns_id"] for r in filtered["tasks"]} == {other.mntns_id}
    assert [r["pid"] for r in filtered["tasks"]] == [other.pid]
    # The bpf_map_elem iterator walked the filter map the runner filled.
    assert [r["mntns_id"] for r in filtered["filtered"]] == [other.mntns_id]
    assert everything["filtered"] == []


def test_two_iterators_merge_into_one_array(gadget: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp, \
            socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as udp:
        tcp.bind(("127.0.0.1", 0))
        tcp.listen()
        udp.bind(("::1", 0))
        rows = _snapshot(gadget)["socks"]
        tcp_port, udp_port = tcp.getsockname()[1], udp.getsockname()[1]
    assert {"proto": 6, "port": tcp_port, "family": 2} in [
        {k: r[k] for k in ("proto", "port", "family")} for r in rows]
    assert {"proto": 17, "port": udp_port, "family": 10} in [
        {k: r[k] for k in ("proto", "port", "family")} for r in rows]


def test_an_interval_repeats_the_snapshot(gadget: Path) -> None:
    with RunnerProcess(gadget, "--map-fetch-interval", "0.2", "--map-fetch-count", "2") as r:
        assert r.wait(60) == 0, r.stderr()
    assert sorted({(a["ds"], a["fetch"]) for a in r.of_type("array")}) == [
        (ds, n) for ds in ("filtered", "socks", "tasks") for n in (1, 2)]
