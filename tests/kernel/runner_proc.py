"""The node runner as a real child process, its protocol records read as they come.

Kernel tests drive `python -m node_runner run ...` exactly as a runner pod or `--local` does:
they wait for the `schema` record (the runner writes it only once every program is attached),
start their workload, wait for the events they expect, then stop the runner with SIGTERM and
check the `end` record. A reader thread parses stdout line by line, so a test can wait for a
record with a timeout instead of sleeping. The runner is always stopped and reaped, even when
the test fails (use it as a context manager).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent.parent
Record = dict[str, Any]


class RunnerFailed(AssertionError):
    """The runner ended, or did not produce what the test waited for."""


class RunnerProcess:
    def __init__(self, gadget: Path | str, *args: str) -> None:
        self.argv = [sys.executable, "-m", "node_runner", "run", "--gadget", str(gadget), *args]
        self.records: list[Record] = []
        self.bad_lines: list[bytes] = []
        self._cond = threading.Condition()
        self._done = False
        self._stderr = tempfile.TemporaryFile()
        self._stderr_text: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.returncode: int | None = None

    # lifecycle ---------------------------------------------------------------------------------
    def start(self) -> RunnerProcess:
        self.proc = subprocess.Popen(self.argv, cwd=REPO, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=self._stderr)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        return self

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                rec = json.loads(line)
            except ValueError:
                rec = None
            with self._cond:
                if isinstance(rec, dict):
                    self.records.append(rec)
                else:
                    self.bad_lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._done = True
            self._cond.notify_all()

    def stop(self, timeout: float = 60.0) -> int:
        """SIGTERM (drain and write `end`), wait; SIGKILL if it does not exit in time."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            raise RunnerFailed(f"runner ignored SIGTERM for {timeout}s\n{self.stderr()}") from None
        finally:
            # The runner has exited, so its stdout ends: let the reader parse every line that
            # is still in the pipe (a loaded machine can take a while for thousands of
            # records; closing the pipe earlier would lose them and miscount the events).
            if self._thread is not None:
                self._thread.join(120)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        return self.returncode

    def wait(self, timeout: float = 60.0) -> int:
        """Wait for the runner to end by itself (timeout, error)."""
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RunnerFailed(f"runner still running after {timeout}s") from None
        if self._thread is not None:
            self._thread.join(10)
        return self.returncode

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self._thread is not None:
            self._thread.join(10)
        if self._stderr_text is None:
            self._stderr_text = self.stderr()
            self._stderr.close()

    def __enter__(self) -> RunnerProcess:
        return self.start() if self.proc is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # reading -------------------------------------------------------------------------------------
    def stderr(self) -> str:
        if self._stderr_text is not None:
            return self._stderr_text
        self._stderr.flush()
        self._stderr.seek(0)
        return self._stderr.read().decode("utf-8", "replace")

    def snapshot(self) -> list[Record]:
        with self._cond:
            return list(self.records)

    def wait_for(self, pred: Callable[[Record], bool], timeout: float = 60.0,
                 what: str = "record") -> Record:
        """The first record matching `pred`; fails if the runner ends or time runs out."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for rec in self.records[seen:]:
                    if pred(rec):
                        return rec
                seen = len(self.records)
                errors = [r for r in self.records if r.get("type") in ("error", "end")]
                left = deadline - time.monotonic()
                if errors or self._done or left <= 0:
                    break
                self._cond.wait(min(left, 0.5))
        raise RunnerFailed(f"no {what} within {timeout}s; runner said {errors or '(nothing)'}"
                           f"\nstderr:\n{self.stderr()[-3000:]}")

    def wait_schema(self, timeout: float = 60.0) -> Record:
        """Wait until the programs are attached (the `schema` record is written after that)."""
        return self.wait_for(lambda r: r.get("type") == "schema", timeout, "schema record")

    def events(self, pred: Callable[[Record], bool] = lambda d: True) -> list[Record]:
        """The `data` of every event so far that matches `pred`."""
        return [r["data"] for r in self.snapshot()
                if r.get("type") == "event" and pred(r["data"])]

    def wait_event(self, pred: Callable[[Record], bool], timeout: float = 60.0,
                   what: str = "event") -> Record:
        rec = self.wait_for(lambda r: r.get("type") == "event" and pred(r["data"]), timeout,
                            what)
        return rec["data"]

    def next_fetch(self, timeout: float = 30.0) -> Record:
        """Wait for the `array` record of the runner's next fetch. Work started right after it
        is not cut by a fetch: its lookup-and-delete loses an increment racing it."""
        last = max([r["fetch"] for r in self.of_type("array")], default=0)
        return self.wait_for(lambda r: r.get("type") == "array" and r["fetch"] > last, timeout,
                             "the next fetch")

    def of_type(self, kind: str) -> list[Record]:
        return [r for r in self.snapshot() if r.get("type") == kind]

    def end(self) -> Record:
        ends = self.of_type("end")
        if len(ends) != 1:
            raise RunnerFailed(f"expected exactly one end record, got {ends}\n{self.stderr()}")
        if self.snapshot()[-1] is not ends[0]:
            raise RunnerFailed("the end record is not the last record")
        return ends[0]


def run_to_end(gadget: Path | str, *args: str, timeout: float = 60.0) -> RunnerProcess:
    """Run a runner that is expected to end by itself (an error, --timeout); return it."""
    runner = RunnerProcess(gadget, *args)
    with runner:
        runner.wait(timeout)
    return runner


def wait_exit(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> int:
    """Reap a workload process, killing it if it overruns."""
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


def python_argv(code: str) -> Sequence[str]:
    """argv running `code` with this interpreter, isolated from the test environment."""
    return [sys.executable, "-I", "-S", "-c", code]


def env_without_pythonpath() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def stop_and_check_end(runner: RunnerProcess) -> Record:
    """Stop the runner as a client would (SIGTERM) and check that it ended cleanly."""
    assert runner.stop() == 0, runner.stderr()
    end = runner.end()
    assert end["reason"] == "signal"
    assert end["exit_code"] == 0
    assert end["events"] == len(runner.of_type("event"))
    assert end["dropped"] == 0
    assert not runner.bad_lines
    return end
