"""A gadget using CO-RE type-match relocations (bpf_core_type_matches(), as Inspektor Gadget's
profile_blockio does) builds and runs: the default clang 14 cannot emit them, so the build
falls back to a newer clang, and the matched prototype's arguments are read right.

tests/data/gadgets/type_match reads sched_process_fork's (parent, child) after checking the
tracepoint's prototype against the kernel's BTF; a process in its own mount namespace forks.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from kubectl_gadget.image import build
from tests.conftest import TEST_GADGETS_SRC, needs_root_btf, needs_unshare
from tests.kernel.runner_proc import RunnerProcess, python_argv, stop_and_check_end, wait_exit
from tests.workloads import sleeping_container

pytestmark = pytest.mark.skipif(build._newer_clang() is None,
                                reason="no clang-15 or later installed (apt-get install clang-19)")

FORK = """
import os
pid = os.fork()
if pid == 0:
    os._exit(0)
os.waitpid(pid, 0)
print(pid, flush=True)
"""


def test_type_match_gadget_builds(build_gadget) -> None:  # type: ignore[no-untyped-def]
    built: Path = build_gadget(TEST_GADGETS_SRC / "type_match")
    assert (built / build.OBJECT_FILE).stat().st_size > 0


@pytest.mark.kernel
@needs_root_btf
@needs_unshare
def test_type_matched_arguments(build_gadget) -> None:  # type: ignore[no-untyped-def]
    gadget = build_gadget(TEST_GADGETS_SRC / "type_match")
    with sleeping_container() as w, RunnerProcess(gadget, "--mntns", str(w.mntns_id)) as runner:
        runner.wait_schema()
        parent = w.popen(python_argv(FORK), stdout=subprocess.PIPE)
        out, _ = parent.communicate(timeout=60)
        assert wait_exit(parent) == 0
        child = int(out.split()[0])
        runner.wait_event(lambda d: d["parent"] == parent.pid and d["child"] == child,
                          what=f"fork {parent.pid} -> {child}")
        stop_and_check_end(runner)
