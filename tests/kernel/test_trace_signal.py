"""trace_signal on this kernel: a process in its own mount namespace sends SIGUSR1 to a
neighbour process of its container, then, as nobody, tries SIGTERM on a root process (EPERM);
both are decoded with sender, target, signal name, si_code, result and errno."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import (
    Record,
    RunnerProcess,
    python_argv,
    stop_and_check_end,
    wait_exit,
)
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

NOBODY = 65534


def _sender_code(delivered: int, refused: int) -> str:
    return ("import os, signal\n"
            f"os.kill({delivered}, signal.SIGUSR1)\n"
            f"os.setuid({NOBODY})\n"
            "try:\n"
            f"    os.kill({refused}, signal.SIGTERM)\n"
            "except PermissionError:\n"
            "    os._exit(0)\n"
            "os._exit(1)\n")


def _send_two(w: ContainerWorkload) -> tuple[int, int, int]:
    """(sender pid, pid that got SIGUSR1, pid the refused SIGTERM was for)."""
    delivered, refused = w.popen(["sleep", "100"]), w.popen(["sleep", "100"])
    sender = w.popen(python_argv(_sender_code(delivered.pid, refused.pid)))
    assert wait_exit(sender) == 0
    assert wait_exit(delivered) == -signal.SIGUSR1
    refused.kill()
    wait_exit(refused)
    return sender.pid, delivered.pid, refused.pid


def _from(pid: int) -> Callable[[Record], bool]:
    return lambda d: d["proc.pid"] == pid


def test_sent_and_refused_signals(built_gadgets: dict[str, Path]) -> None:
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["trace_signal"], "--mntns", str(w.mntns_id)) as runner:
        runner.wait_schema()
        sender, delivered, refused = _send_two(w)
        runner.wait_event(lambda d: d["proc.pid"] == sender and d["tpid"] == refused,
                          what="the refused SIGTERM")
        stop_and_check_end(runner)

    sent = runner.events(_from(sender))
    assert [d["tpid"] for d in sent] == [delivered, refused]
    ok, failed = sent
    assert (ok["sig"], ok["sig_raw"], ok["tcomm"]) == ("SIGUSR1", signal.SIGUSR1, "sleep")
    assert (ok["result"], ok["result_raw"], ok["code"]) == ("DELIVERED", 0, "SI_USER")
    assert (ok["error"], ok["group"]) == ("", True)
    assert ok["proc.comm"].startswith("python")
    assert (ok["proc.tid"], ok["proc.parent.pid"]) == (sender, os.getpid())
    assert (ok["proc.mntns_id"], ok["proc.creds.uid"]) == (w.mntns_id, os.getuid())
    assert ok["runtime.containerId"] == w.container_id
    assert (failed["sig"], failed["result"], failed["code"]) == ("SIGTERM", "NOT_SENT", "SI_USER")
    assert (failed["error"], failed["error_raw"]) == ("EPERM", 1)
    assert failed["proc.creds.uid"] == NOBODY


def test_kernel_sent_sigsegv(built_gadgets: dict[str, Path]) -> None:
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["trace_signal"], "--mntns", str(w.mntns_id),
                          "--param", f"signal={int(signal.SIGSEGV)}") as runner:
        runner.wait_schema()
        crash = w.popen(python_argv("import ctypes; ctypes.string_at(0)"))
        assert wait_exit(crash) == -signal.SIGSEGV
        ev = runner.wait_event(_from(crash.pid), what="the SIGSEGV")
        stop_and_check_end(runner)

    # Sent by the kernel to the faulting thread itself, with SEGV_MAPERR (1) as si_code.
    assert (ev["tpid"], ev["sig"], ev["code_raw"]) == (crash.pid, "SIGSEGV", 1)
    assert (ev["result"], ev["group"]) == ("DELIVERED", False)
    assert {d["sig"] for d in runner.events()} == {"SIGSEGV"}


def test_filter_and_failed_param(built_gadgets: dict[str, Path]) -> None:
    gadget = built_gadgets["trace_signal"]
    with sleeping_container() as target, sleeping_container() as neighbour:
        both = ["--mntns", str(target.mntns_id), "--mntns", str(neighbour.mntns_id)]
        with RunnerProcess(gadget, "--container-id", target.container_id) as filtered, \
                RunnerProcess(gadget, *both, "--param", "failed=true") as failed_only:
            filtered.wait_schema()
            failed_only.wait_schema()
            noisy, _, noisy_refused = _send_two(neighbour)
            sender, delivered, _ = _send_two(target)
            filtered.wait_event(lambda d: d["proc.pid"] == sender and d["result"] == "NOT_SENT",
                                what="the target's refused SIGTERM")
            failed_only.wait_event(lambda d: d["proc.pid"] == sender, what="target's failure")
            stop_and_check_end(filtered)
            stop_and_check_end(failed_only)

    got = filtered.events()
    assert {d["proc.mntns_id"] for d in got} == {target.mntns_id}
    assert not filtered.events(_from(noisy))
    assert [d["tpid"] for d in got if d["proc.pid"] == sender][0] == delivered
    rows = failed_only.events()
    assert all(d["result"] != "DELIVERED" for d in rows)
    assert [(d["tpid"], d["error"]) for d in rows if d["proc.pid"] == noisy] == \
        [(noisy_refused, "EPERM")]
