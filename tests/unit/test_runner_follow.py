"""The run loop's following of new containers (--follow-all), on a fake /proc: a container
that appears is added to the in-kernel filter; once it is gone and its mount namespace id is
held again by processes of no container (ids are reused), that id leaves the filter, so their
events, which would name no container, are not traced. A selected target's namespace stays."""

from __future__ import annotations

import shutil
from pathlib import Path

from node_runner.containers import ContainerTable
from node_runner.enrich import Enricher
from node_runner.run import RunOptions, _Loop, _Stop
from tests.unit.test_containers import CID_A, CID_C, HOST_NS, add_proc, kube_path


class FakeGadget:
    def __init__(self) -> None:
        self.readers: dict[str, object] = {}
        self.filters: list[set[int]] = []

    def maintain(self) -> None:
        pass

    def take_notices(self) -> list[str]:
        return []

    def set_mntns_filter(self, ids: set[int]) -> None:
        self.filters.append(set(ids))


class Lines:
    def lines(self, lines: list[str]) -> None:
        pass

    def record(self, rec: object) -> None:
        pass


def test_a_followed_namespace_id_held_again_outside_containers_leaves_the_filter(
        tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    add_proc(proc, 1, HOST_NS, "/init.scope")
    add_proc(proc, 100, 4026532001, kube_path(CID_A))  # the selected target
    table = ContainerTable(str(proc), min_rescan_interval=0.0)
    gadget = FakeGadget()
    opts = RunOptions(gadget="g", container_ids=(CID_A,), follow_all=True)
    targets = {4026532001}
    loop = _Loop(gadget, {}, Lines(), _Stop(), opts, table,  # type: ignore[arg-type]
                 Enricher(table, "n"), targets)
    add_proc(proc, 200, 4026532003, f"/docker/{CID_C}")  # a container that starts later
    loop.tick()
    assert gadget.filters[-1] == targets == {4026532001, 4026532003}
    shutil.rmtree(proc / "200")  # it ends; the id is held by no one: nothing to change
    loop.tick()
    assert targets == {4026532001, 4026532003}
    add_proc(proc, 300, 4026532003, "/user.slice/session-1.scope")  # reused outside containers
    add_proc(proc, 301, 4026532001, "/user.slice/session-1.scope")  # nsenter into the target
    loop.tick()
    assert gadget.filters[-1] == targets == {4026532001}
