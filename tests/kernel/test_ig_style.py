"""Gadget sources written for Inspektor Gadget's header interface build and run here.

tests/data/gadgets/ig_style spells every helper the way IG's gadgets do (the tracer map passed
by address to gadget_reserve_buf() and gadget_output_buf(), gadget_get_mntns_id(),
gadget_fill_current_process(), gadget_should_discard_data(), BPF_PROG() and BPF_URETPROBE()
with only the gadget headers included, get_path_str(), get_task_state(),
bpf_map_lookup_or_try_init(), `proc.parent.tid`) and its gadget.yaml uses
IG's older keys (`dataSources`, top-level `ebpfParams`). A process in its own mount namespace
renames itself, calls getppid(2) and renames itself again; the records carry what it did.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from node_runner.gadget.spec import load_spec
from tests.conftest import TEST_GADGETS_SRC, needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, python_argv, stop_and_check_end, wait_exit
from tests.workloads import sleeping_container

IG_STYLE = TEST_GADGETS_SRC / "ig_style"
WORKDIR = "/usr/lib"
CHILD = f"""
import os
open('/proc/self/comm', 'w').write('igstyle')
os.chdir({WORKDIR!r})
print(os.getppid(), flush=True)
open('/proc/self/comm', 'w').write('igrenamed')
"""


@pytest.fixture
def ig_style(build_gadget) -> Path:  # type: ignore[no-untyped-def]
    return build_gadget(IG_STYLE)


def test_ig_style_spec(ig_style: Path) -> None:
    """No root: IG's yaml keys give the param its flag and the field its description."""
    spec = load_spec(str(ig_style))
    (ds,) = spec.datasources
    assert ds.name == "ig"
    param = spec.param("cwd")
    assert param is not None and param.var == "with_cwd" and param.default == "false"
    assert param.description == "add the working directory"
    names = [f.name for f in ds.fields]
    assert names[:11] == ["timestamp_raw", "proc.comm", "proc.pid", "proc.tid",
                          "proc.mntns_id", "proc.creds.uid", "proc.creds.gid",
                          "proc.parent.comm", "proc.parent.pid", "proc.parent.tid", "mntns_id"]
    notes = ds.field_annotations
    assert notes["newcomm"]["description"].startswith("the name a thread was given")
    assert notes["kind_raw"]["columns.hidden"] == "true"


@pytest.mark.kernel
@needs_root_btf
@needs_unshare
def test_ig_style_records(ig_style: Path) -> None:
    with sleeping_container() as w, \
            RunnerProcess(ig_style, "--mntns", str(w.mntns_id), "--param", "comm=igstyle",
                          "--param", "cwd=true") as runner:
        runner.wait_schema()
        child = w.popen(python_argv(CHILD), stdout=subprocess.PIPE)
        out, _ = child.communicate(timeout=60)
        assert wait_exit(child) == 0
        ppid = int(out.split()[0])
        reserved = runner.wait_event(lambda d: d["kind"] == "RESERVED", what="getppid record")
        uprobe = runner.wait_event(lambda d: d["kind"] == "UPROBE", what="getppid() return")
        output = runner.wait_event(lambda d: d["kind"] == "OUTPUT", what="rename record")
        end = stop_and_check_end(runner)

    assert end["lost"] == 0
    for rec in (reserved, uprobe, output):
        assert rec["proc.pid"] == rec["proc.tid"] == child.pid
        assert rec["proc.comm"] == "igstyle"
        assert rec["proc.parent.pid"] == rec["proc.parent.tid"] == ppid
        assert rec["mntns_id"] == rec["proc.mntns_id"] == w.mntns_id
        assert rec["state"] == 0  # TASK_RUNNING, read through get_task_state()
        assert rec["cwd"] == WORKDIR
    assert reserved["kind_raw"] == 1 and reserved["newcomm"] == ""
    assert reserved["calls"] == 1  # the thread's first getppid(), counted in the kernel
    assert uprobe["kind_raw"] == 3 and uprobe["ret"] == ppid
    assert output["kind_raw"] == 2 and output["newcomm"] == "igrenamed"
    # The comm filter ran in the kernel: the first rename happened under the old name.
    events = runner.events()
    assert all(d["proc.comm"] == "igstyle" for d in events), events
    assert not [d for d in events if d["newcomm"] == "igstyle"]
