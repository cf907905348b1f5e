"""Setup failures become one `error` record, the documented exit code, and no traceback.

Test gadgets under tests/data/gadgets/: `fentry` (a BPF trampoline program, refused by this
kernel), `verifier` (reads past a map value), `missing_struct` (GADGET_TRACER names a struct
the BTF lacks); and a built trace_open with a malformed gadget.yaml.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from node_runner import system
from tests.conftest import TEST_GADGETS_SRC, needs_root_btf
from tests.kernel.runner_proc import Record, RunnerProcess, run_to_end

pytestmark = [pytest.mark.kernel, needs_root_btf]


def _failed_run(gadget: Path, *args: str) -> tuple[RunnerProcess, Record]:
    """Run a gadget that must fail at setup; check the protocol shape; return its error."""
    runner = run_to_end(gadget, "--timeout", "10", *args)
    # `phase` records (what libbpf was about to do) may come before the error
    records = [r for r in runner.snapshot() if r["type"] != "phase"]
    assert [r["type"] for r in records] == ["hello", "error", "end"], records
    error, end = records[1], records[2]
    assert end["reason"] == "error"
    assert end["exit_code"] == runner.returncode
    assert "Traceback" not in runner.stderr()
    assert "\n" not in error["message"]
    return runner, error


def test_fentry_program_is_not_supported(build_gadget: Callable[[Path], Path]) -> None:
    runner, error = _failed_run(build_gadget(TEST_GADGETS_SRC / "fentry"))
    if runner.returncode == 0:  # pragma: no cover - depends on the kernel
        pytest.skip("this kernel accepts fentry programs")
    assert runner.returncode == 4
    assert error["code"] == "not_supported"
    message = error["message"]
    assert "'fentry_openat2'" in message
    assert "fentry" in message.replace("'fentry_openat2'", "")
    assert "not supported on this kernel" in message
    assert "gadget fentry" in message
    # stderr carries the same one-line message for humans.
    assert runner.stderr().strip().splitlines()[-1] == f"node-runner: {message}"


def test_verifier_rejection_is_one_line_with_log_on_verbose(
        build_gadget: Callable[[Path], Path]) -> None:
    gadget = build_gadget(TEST_GADGETS_SRC / "verifier")
    runner, error = _failed_run(gadget)
    assert runner.returncode == 5
    assert error["code"] == "verifier"
    message = error["message"]
    assert message.startswith("loading program 'out_of_bounds' of gadget verifier: ")
    assert "rejected by the verifier" in message
    # The verifier's reason, not only its follow-up line about the register's range.
    assert "invalid access to map value" in message
    assert "detail" not in error
    assert runner.stderr().strip().splitlines() == [f"node-runner: {message}"]

    verbose, error = _failed_run(gadget, "--verbose")
    assert verbose.returncode == 5 and error["code"] == "verifier"
    assert error["message"] == message
    log = error["detail"]
    assert "invalid access to map value, value_size=16 off=64 size=4" in log
    assert "processed " in log and len(log.splitlines()) > 5
    assert "invalid access to map value, value_size=16" in verbose.stderr()


def test_malformed_gadget_yaml_is_gadget_invalid(built_gadgets: dict[str, Path],
                                                 tmp_path: Path) -> None:
    gadget = tmp_path / "trace_open_bad_yaml"
    shutil.copytree(built_gadgets["trace_open"], gadget)
    (gadget / "gadget.yaml").write_text("name: broken\ndatasources:\n  open: [unclosed\n")
    runner, error = _failed_run(gadget)
    assert runner.returncode == 3
    assert error["code"] == "gadget_invalid"
    assert "gadget.yaml" in error["message"]
    assert "line" in error["message"]


def test_missing_tracer_struct_is_gadget_invalid(build_gadget: Callable[[Path], Path]) -> None:
    runner, error = _failed_run(build_gadget(TEST_GADGETS_SRC / "missing_struct"))
    assert runner.returncode == 3
    assert error["code"] == "gadget_invalid"
    assert "no_such_event" in error["message"]
    assert "ghost" in error["message"]  # the datasource that declared it


def test_long_verifier_log_is_whole(build_gadget: Callable[[Path], Path]) -> None:
    """A log far longer than libbpf's printed copy: the reason and every line still arrive."""
    gadget = build_gadget(TEST_GADGETS_SRC / "verifier_long")
    runner, error = _failed_run(gadget, "--verbose")
    assert runner.returncode == 5 and error["code"] == "verifier"
    assert "invalid access to map value, value_size=16 off=64 size=4" in error["message"]
    log = error["detail"]
    assert len(log) > 32768  # four times what one libbpf message can carry here
    assert log.count("-- BEGIN PROG LOAD LOG --") == 1
    body = log.split("-- BEGIN PROG LOAD LOG --\n")[1]
    assert body.startswith("0: R1=ctx()")  # from the first instruction ...
    processed = re.search(r"\nprocessed (\d+) insns", body)
    assert processed is not None and int(processed.group(1)) > 400
    last = int(processed.group(1))
    assert f"\n{last}: (61) r1 = *(u32 *)(r6 +64)\n" in body  # ... to the refused one
    assert body.endswith("-- END PROG LOAD LOG --\n")
    assert processed.group(0) in runner.stderr()


def test_kprobe_program_is_not_supported(build_gadget: Callable[[Path], Path]) -> None:
    runner, error = _failed_run(build_gadget(TEST_GADGETS_SRC / "kprobe"))
    if runner.returncode == 0:  # pragma: no cover - depends on the kernel
        pytest.skip("this kernel has kprobes")
    assert runner.returncode == 4 and error["code"] == "not_supported"
    message = error["message"]
    assert message.startswith("attaching program 'kprobe_openat2' of gadget kprobe: "
                              "not supported on this kernel: kprobe attach failed")
    if not system.has_kprobes():
        assert "this kernel has no kprobes" in message
