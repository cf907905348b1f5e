"""trace_exec on this kernel: real execs in their own mount namespace, read from a real runner.

Each test starts `python -m node_runner run` as a child process, waits for its `schema` record
(programs attached), runs a known binary inside a container-like workload (tests/workloads.py:
own mount namespace, containerd-shaped cgroup), then stops the runner with SIGTERM and checks
its `end` record.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import Record, RunnerProcess, wait_exit
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

ECHO = shutil.which("echo") or "/bin/echo"


def _comm(pid: int) -> str:
    return Path(f"/proc/{pid}/comm").read_text().strip()


def _boottime_ns() -> int:
    return time.clock_gettime_ns(time.CLOCK_BOOTTIME)


def _check_end(runner: RunnerProcess) -> Record:
    """Stop the runner as a client would (SIGTERM) and check its `end` record."""
    assert runner.stop() == 0, runner.stderr()
    end = runner.end()
    assert end["reason"] == "signal"
    assert end["exit_code"] == 0
    assert end["events"] == len(runner.of_type("event"))
    assert end["dropped"] == 0
    assert not runner.bad_lines
    assert runner.snapshot()[0]["type"] == "hello"
    return end


def _is_echo(data: Record, token: str) -> bool:
    # The workload's gate (python, started by nsenter) carries the command in its own args too.
    return data["file"] == ECHO and token in data["args"]


def _run_echo(w: ContainerWorkload, *args: str) -> subprocess.Popen[bytes]:
    proc = w.popen([ECHO, *args], stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0
    assert out.decode() == " ".join(args) + "\n"
    return proc


def test_exec_in_own_mount_namespace_has_its_identity(built_gadgets: dict[str, Path]) -> None:
    token = secrets.token_hex(6)
    args = (f"gadget-{token}", "second", "3rd-arg")
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["trace_exec"], "--mntns", str(w.mntns_id)) as runner:
        runner.wait_schema()
        before = _boottime_ns()
        proc = _run_echo(w, *args)
        ev = runner.wait_event(lambda d: _is_echo(d, token), what=f"exec of echo {token}")
        after = _boottime_ns()
        _check_end(runner)

    assert ev["proc.pid"] == proc.pid
    assert ev["proc.tid"] == proc.pid
    assert ev["proc.parent.pid"] == os.getpid()  # the workload's process is our child
    assert ev["proc.parent.comm"] == _comm(os.getpid())
    assert ev["proc.comm"] == "echo"
    assert ev["file"] == ECHO
    assert ev["args"] == " ".join((ECHO, *args))
    assert ev["args_count"] == 4
    assert ev["args_truncated"] == 0
    assert ev["proc.mntns_id"] == w.mntns_id
    assert ev["proc.mntns_id"] != os.stat("/proc/self/ns/mnt").st_ino
    assert (ev["retval"], ev["error_raw"], ev["error"]) == (0, 0, "")
    assert (ev["proc.creds.uid"], ev["proc.creds.gid"]) == (os.getuid(), os.getgid())
    assert (ev["cwd"], ev["exepath"]) == ("", "")  # only with --paths
    assert before <= ev["timestamp_raw"] <= after
    wall = datetime.fromisoformat(ev["timestamp"].replace("Z", "+00:00")[:26] + "+00:00")
    assert abs(wall.timestamp() - time.time()) < 60
    # The workload's cgroup is containerd-shaped: enrichment names the container.
    assert ev["runtime.containerId"] == w.container_id
    assert ev["runtime.runtimeName"] == "containerd"
    assert ev["k8s.node"] == os.uname().nodename


def test_failed_exec_reports_enoent_unless_ignored(built_gadgets: dict[str, Path]) -> None:
    missing = f"/nonexistent-{secrets.token_hex(6)}/prog"
    gadget = built_gadgets["trace_exec"]
    with sleeping_container() as w:
        select = ["--mntns", str(w.mntns_id)]
        with RunnerProcess(gadget, *select, "--param", "ignore-failed=false") as runner, \
                RunnerProcess(gadget, *select) as default:
            runner.wait_schema()
            default.wait_schema()
            # The workload's gate execs `missing`: execve fails and Python exits with 1.
            proc = w.popen([missing, "first-arg"], stderr=subprocess.DEVNULL)
            assert wait_exit(proc) != 0
            ev = runner.wait_event(lambda d: d["file"] == missing, what="failed exec")
            # A later exec in the same container: the default runner has seen the failure
            # by then, had it let it through.
            token = secrets.token_hex(6)
            _run_echo(w, token)
            default.wait_event(lambda d: _is_echo(d, token), what="the later echo")
            _check_end(runner)
            _check_end(default)

    assert ev["error"] == "ENOENT"
    assert ev["error_raw"] == 2
    assert ev["retval"] == -2
    assert ev["proc.pid"] == proc.pid
    assert ev["args"] == f"{missing} first-arg"
    assert ev["args_count"] == 2
    assert ev["proc.mntns_id"] == w.mntns_id
    # The exec failed, so the process is still the interpreter that tried it.
    assert ev["proc.comm"] != "prog"
    # ignore-failed is on by default (as in IG): failed execs are left out.
    assert default.events(lambda d: d["file"] == missing) == []
    assert all(d["error_raw"] == 0 for d in default.events())


def test_paths_gives_cwd_and_exepath_across_mounts(built_gadgets: dict[str, Path]) -> None:
    token = secrets.token_hex(6)
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["trace_exec"], "--mntns", str(w.mntns_id),
                          "--param", "paths=true") as runner:
        runner.wait_schema()
        # /dev/shm is a tmpfs on /dev, itself a mount: the walk crosses two mount points.
        # (nsenter starts commands in the root directory: change it in the container.)
        proc = w.popen(["sh", "-c", f"cd /dev/shm && exec {ECHO} {token}"],
                       stdout=subprocess.DEVNULL)
        assert wait_exit(proc) == 0
        ev = runner.wait_event(lambda d: _is_echo(d, token), what=f"exec of echo {token}")
        _check_end(runner)

    assert ev["cwd"] == "/dev/shm"
    assert ev["exepath"] == os.path.realpath(ECHO)


@pytest.mark.parametrize("selector", ["mntns", "container-id"])
def test_filter_drops_a_noisy_neighbour(built_gadgets: dict[str, Path], selector: str) -> None:
    target_token, noise_token = secrets.token_hex(6), secrets.token_hex(6)
    gadget = built_gadgets["trace_exec"]
    with sleeping_container() as target, sleeping_container() as neighbour:
        assert target.mntns_id != neighbour.mntns_id
        select = (["--mntns", str(target.mntns_id)] if selector == "mntns"
                  else ["--container-id", target.container_id])
        both = ["--mntns", str(target.mntns_id), "--mntns", str(neighbour.mntns_id)]
        with RunnerProcess(gadget, *select) as filtered, RunnerProcess(gadget, *both) as control:
            filtered.wait_schema()
            control.wait_schema()
            # The neighbour runs the same binary first: had its event passed the filter, it
            # would come before the target's in the (single, ordered) ring buffer.
            _run_echo(neighbour, f"noise-{noise_token}")
            _run_echo(neighbour, f"noise-{noise_token}")
            _run_echo(target, f"target-{target_token}")
            filtered.wait_event(lambda d: _is_echo(d, target_token), what="target's exec")
            # The control runner sees both, so the neighbour's execs did happen and are visible.
            control.wait_event(lambda d: _is_echo(d, noise_token), what="neighbour's exec")
            control.wait_event(lambda d: _is_echo(d, target_token), what="target's exec")
            _check_end(filtered)
            _check_end(control)

    got = filtered.events()
    assert [d for d in got if noise_token in d["args"]] == []
    assert {d["proc.mntns_id"] for d in got} == {target.mntns_id}
    assert len([d for d in got if _is_echo(d, target_token)]) == 1
    seen = control.events()
    assert len([d for d in seen if _is_echo(d, noise_token)]) == 2
    assert {d["proc.mntns_id"] for d in seen} == {target.mntns_id, neighbour.mntns_id}


def test_hello_names_the_gadget(built_gadgets: dict[str, Path]) -> None:
    """docs/protocol.md: `hello` carries the gadget's name and the reference it was run by."""
    with RunnerProcess(built_gadgets["trace_exec"], "--timeout", "0.5") as runner:
        assert runner.wait(60) == 0, runner.stderr()
    hello = runner.snapshot()[0]
    assert hello["type"] == "hello" and hello["protocol"] == 1
    assert hello["gadget"]["ref"] == str(built_gadgets["trace_exec"])
    assert hello["gadget"]["name"] == "trace_exec"
    assert runner.end()["reason"] == "timeout"
