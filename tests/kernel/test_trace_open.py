"""trace_open on this kernel, through the runner and through `kubectl gadget run --local`.

The workloads are small Python scripts run inside a container-like process (own mount
namespace, containerd-shaped cgroup) that print the fds they got, so the test compares what the
gadget reports with what the process saw.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, needs_root_btf, needs_unshare
from tests.kernel.runner_proc import Record, RunnerProcess, python_argv, run_to_end, wait_exit
from tests.workloads import ContainerWorkload, sleeping_container

# Opens a present file read-only, a missing one, and creates a third; prints the two fds.
OPENER = """
import os, sys
present, missing, created = sys.argv[1:4]
fd = os.open(present, os.O_RDONLY)
try:
    os.open(missing, os.O_RDONLY)
except FileNotFoundError:
    pass
wfd = os.open(created, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
print(fd, wfd, flush=True)
"""

# Opens a missing "storm" file, a missing "calm" file and a present file every 20 ms, until
# killed (however long the clients take to start on a loaded machine).
LOOPER = """
import os, sys, time
storm, calm, present = sys.argv[1:4]
while True:
    for path in (storm, calm):
        try:
            os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            pass
    os.close(os.open(present, os.O_RDONLY))
    time.sleep(0.02)
"""


def _paths(tmp_path: Path) -> tuple[str, str, str]:
    token = secrets.token_hex(4)
    present = tmp_path / f"present-{token}"
    present.write_text("hello\n")
    return str(present), str(tmp_path / f"missing-{token}"), str(tmp_path / f"created-{token}")


def _run_opener(w: ContainerWorkload, paths: tuple[str, str, str]) -> tuple[int, int]:
    proc = w.popen(python_argv(OPENER) + list(paths), stdout=subprocess.PIPE)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    fd, wfd = map(int, out.split())
    return fd, wfd


def _stop(runner: RunnerProcess) -> Record:
    assert runner.stop() == 0, runner.stderr()
    end = runner.end()
    assert (end["reason"], end["exit_code"], end["dropped"]) == ("signal", 0, 0)
    assert end["events"] == len(runner.of_type("event"))
    return end


def _trace_opener(gadget: Path, w: ContainerWorkload, paths: tuple[str, str, str],
                  *args: str) -> tuple[RunnerProcess, tuple[int, int]]:
    with RunnerProcess(gadget, "--mntns", str(w.mntns_id), *args) as runner:
        runner.wait_schema()
        fds = _run_opener(w, paths)
        # The created file is opened last: once it (or, with failed=true, the missing one) is
        # seen, every earlier open of the workload has been read.
        last = paths[1] if "failed=true" in args else paths[2]
        runner.wait_event(lambda d: d["fname"] == last, what=f"open of {last}")
        _stop(runner)
    return runner, fds


def _one(events: list[Record], fname: str) -> Record:
    hits = [d for d in events if d["fname"] == fname]
    assert len(hits) == 1, f"{len(hits)} events for {fname}"
    return hits[0]


@pytest.mark.kernel
@needs_root_btf
@needs_unshare
def test_enoent_for_missing_and_fd_for_present(built_gadgets: dict[str, Path],
                                               tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    present, missing, created = paths
    with sleeping_container() as w:
        runner, (fd, wfd) = _trace_opener(built_gadgets["trace_open"], w, paths)
    events = runner.events()
    assert {d["proc.mntns_id"] for d in events} == {w.mntns_id}

    ok = _one(events, present)
    assert (ok["fd"], ok["error_raw"], ok["error"]) == (fd, 0, "")
    bad = _one(events, missing)
    assert (bad["fd"], bad["error_raw"], bad["error"]) == (-1, 2, "ENOENT")
    new = _one(events, created)
    assert (new["fd"], new["error"]) == (wfd, "")
    for ev in (ok, bad, new):
        assert ev["proc.pid"] == ev["proc.tid"]
        assert ev["proc.comm"] == Path(sys.executable).name[:15]
        assert ev["proc.parent.pid"] == os.getpid()
        assert ev["runtime.containerId"] == w.container_id
    assert ok["proc.pid"] == bad["proc.pid"] == new["proc.pid"]


@pytest.mark.kernel
@needs_root_btf
@needs_unshare
def test_flags_and_mode_are_formatted(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    present, _missing, created = paths
    with sleeping_container() as w:
        runner, _fds = _trace_opener(built_gadgets["trace_open"], w, paths)
    events = runner.events()
    ok = _one(events, present)
    # Python's os.open adds O_CLOEXEC (PEP 446).
    assert ok["flags_raw"] == os.O_RDONLY | os.O_CLOEXEC
    assert ok["flags"] == "O_RDONLY|O_CLOEXEC"
    assert (ok["mode_raw"], ok["mode"]) == (0, "")
    new = _one(events, created)
    assert new["flags_raw"] == os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    assert new["flags"] == "O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC"
    assert (new["mode_raw"], new["mode"]) == (0o640, "0640")


@pytest.mark.kernel
@needs_root_btf
@needs_unshare
def test_param_failed_shows_only_failures(built_gadgets: dict[str, Path],
                                          tmp_path: Path) -> None:
    paths = _paths(tmp_path)
    present, missing, created = paths
    with sleeping_container() as w:
        runner, _fds = _trace_opener(built_gadgets["trace_open"], w, paths,
                                     "--param", "failed=true")
    events = runner.events()
    assert _one(events, missing)["error"] == "ENOENT"
    assert [d for d in events if d["fname"] in (present, created)] == []
    assert events and all(d["error"] and d["fd"] == -1 for d in events)


@pytest.mark.parametrize(("given", "named"), [
    ("faild=true", "(closest known param: failed)"),
    ("zzzz=1", "(known params: comm, failed, gid, pid, tid, uid)"),
])
def test_runner_refuses_an_unknown_param_before_loading(built_gadgets: dict[str, Path],
                                                        given: str, named: str) -> None:
    """The runner itself (a cluster client that has no spec passes params unchecked) stops on
    a key the gadget does not know: a usage error (exit 2) naming the key and the closest
    param, after `hello` and before any phase, instead of running without the setting."""
    key = given.partition("=")[0]
    runner = run_to_end(built_gadgets["trace_open"], "--param", given, "--timeout", "20")
    assert runner.returncode == 2, runner.stderr()
    assert [r["type"] for r in runner.snapshot()] == ["hello", "error", "end"]
    (error,) = runner.of_type("error")
    assert error == {"type": "error", "code": "usage",
                     "message": f"unknown param '{key}' of gadget trace_open {named}"}
    assert (runner.end()["reason"], runner.end()["exit_code"]) == ("error", 2)
    assert runner.stderr().strip() == f"node-runner: {error['message']}"


def _client(*args: str, env: dict[str, str] | None = None,
            timeout: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubectl_gadget", "run", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout, env=env,
                          stdin=subprocess.DEVNULL)


def _json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.kernel
@needs_root_btf
@needs_unshare
def test_client_failed_json_and_filter(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    token = secrets.token_hex(4)
    storm, calm = str(tmp_path / f"storm-{token}"), str(tmp_path / f"calm-{token}")
    present = tmp_path / f"present-{token}"
    present.write_text("x")
    gadget = str(built_gadgets["trace_open"])
    with sleeping_container() as w:
        looper = w.popen(python_argv(LOOPER) + [storm, calm, str(present)])
        common = ["--local", "--failed", "-o", "json", "--timeout", "3",
                  "--container-id", w.container_id]
        failed = _client(gadget, *common)
        # The flat names of the earlier layout still work as aliases (pid is proc.pid).
        filtered = _client(gadget, *common, "--filter", f"fname~storm,pid=={looper.pid}",
                           "--fields", "pid,comm,fname")
        assert looper.poll() is None, "the workload stopped before the client runs ended"
        looper.kill()
        wait_exit(looper)

    assert failed.returncode == 0, failed.stderr
    rows = _json_lines(failed.stdout)
    assert {r["fname"] for r in rows} >= {storm, calm}
    assert all(r["error"] and r["fd"] == -1 for r in rows)
    assert not [r for r in rows if r["fname"] == str(present)]
    row = next(r for r in rows if r["fname"] == storm)
    assert row["error"] == "ENOENT" and row["error_raw"] == 2
    assert row["proc"]["mntns_id"] == w.mntns_id
    assert row["proc"]["pid"] == looper.pid
    # -o json nests the dotted enrichment fields.
    assert row["runtime"]["containerId"] == w.container_id
    assert row["runtime"]["runtimeName"] == "containerd"
    assert row["k8s"]["node"] == os.uname().nodename
    assert "runtime.containerId" not in row

    assert filtered.returncode == 0, filtered.stderr
    kept = _json_lines(filtered.stdout)
    assert kept and all("storm" in r["fname"] for r in kept)
    assert {r["proc"]["pid"] for r in kept} == {looper.pid}
    assert all(set(r) == {"proc", "fname"} and set(r["proc"]) == {"pid", "comm"} for r in kept)
    assert storm in {r["fname"] for r in kept}


FAKE_RUNNER = """
import sys
open(sys.argv[1], "w").write(" ".join(sys.argv[2:]))
"""


def test_unknown_param_flag_is_a_usage_error_before_any_runner(
        built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    marker = tmp_path / "runner-started"
    script = tmp_path / "fake_runner.py"
    script.write_text(FAKE_RUNNER)
    env = {**os.environ, "KUBECTL_GADGET_RUNNER": f"{sys.executable} {script} {marker}"}
    gadget = str(built_gadgets["trace_open"])

    bad = _client(gadget, "--local", "--faild", "--timeout", "1", env=env, timeout=30)
    assert bad.returncode == 2, bad.stderr
    assert "--faild" in bad.stderr
    assert "--failed" in bad.stderr  # the message lists the gadget's params
    assert "params of gadget" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    assert bad.stdout == ""
    assert not marker.exists(), "a runner was started despite the bad flag"

    if os.geteuid() == 0:  # control: the same command with the right flag starts the runner
        good = _client(gadget, "--local", "--failed", "--timeout", "1", env=env, timeout=30)
        assert marker.exists(), good.stderr
        assert "failed=true" in marker.read_text()
