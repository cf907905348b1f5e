"""The Python API on this kernel: `from kubectl_gadget import run` yields typed events of a real
gadget for one container (the same --container-id filter as the CLI), stops the runner when
the loop is left early, yields a snapshot's rows as one `Rows`, and refuses a bad filter
before any runner starts."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from kubectl_gadget import Event, Rows, RunFailed, run
from kubectl_gadget.errors import GadgetError, UsageError
from tests.conftest import needs_root_btf, needs_unshare
from tests.workloads import sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]


def _runners() -> list[int]:
    """Runner processes (children of this test process) still alive."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, ValueError, IndexError):
            continue
        if int(stat[1]) == me and b"node_runner" in cmd:
            found.append(int(entry))
    return found


def test_events_of_one_container_then_an_early_break(built_gadgets: dict[str, Path]) -> None:
    diag: list[str] = []
    with sleeping_container() as w, sleeping_container() as neighbour:
        stop = threading.Event()

        def keep_execing() -> None:
            while not stop.wait(0.3):
                for c in (w, neighbour):
                    c.popen(["/bin/true"]).wait(60)

        execs = threading.Thread(target=keep_execing)
        execs.start()
        seen: list[Event] = []
        try:
            for item in run(str(built_gadgets["trace_exec"]), local=True, timeout=60,
                            container_ids=[w.container_id], diag=diag.append):
                assert isinstance(item, Event), item
                seen.append(item)
                if sum(e["proc.comm"] == "true" for e in seen) == 2:
                    break
            left = _runners()
        finally:
            stop.set()
            execs.join()
    assert left == [], "leaving the loop stopped and waited for the runner"
    assert {e.ds for e in seen} == {"exec"}
    assert "true" in {e["proc.comm"] for e in seen}  # (and the helper entering the container)
    assert {e["runtime.containerId"] for e in seen} == {w.container_id}, diag
    assert all(isinstance(e["proc.pid"], int) for e in seen)
    assert not [d for d in diag if "Traceback" in d or "b'" in d], diag


def test_a_snapshot_is_one_rows_batch_with_fields(built_gadgets: dict[str, Path]) -> None:
    with sleeping_container() as w:
        items = list(run(str(built_gadgets["snapshot_process"]), local=True,
                         container_ids=[w.container_id], fields="proc.pid,proc.comm",
                         diag=lambda _m: None))
    assert len(items) == 1 and isinstance(items[0], Rows), items
    assert (items[0].ds, list(items[0].rows)) == (
        "processes", [{"proc.pid": w.pid, "proc.comm": "sleep"}])


def test_a_bad_filter_or_a_failed_run_raise(built_gadgets: dict[str, Path],
                                            tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="nosuch"):
        next(run(str(built_gadgets["trace_exec"]), local=True, filter="nosuch==1"))
    with pytest.raises(UsageError, match="timeout"):
        next(run(str(built_gadgets["trace_exec"]), local=True, timeout=-1))
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "program.bpf.c").write_text("this is not C\n")
    with pytest.raises(GadgetError) as invalid:
        list(run(str(broken), local=True, timeout=5, diag=lambda _m: None))
    assert invalid.value.exit_code == 3  # what the CLI exits with
    diag: list[str] = []
    with pytest.raises(RunFailed) as failed:  # the runner finds no such container
        list(run(str(built_gadgets["trace_exec"]), local=True, timeout=5,
                 container_ids=["0123456789abcdef"], diag=diag.append))
    assert failed.value.exit_code == 2, diag
    assert any("no running container matches 0123456789abcdef" in d for d in diag), diag
