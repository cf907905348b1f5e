"""Small helpers for the registry tests: the image CLI in-process, the runner as a process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kubectl_gadget.image import cli as image_cli
from tests.conftest import REPO


def image(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `kubectl gadget image ARGS` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = image_cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def image_ok(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, out, err = image(capsys, *args)
    assert code == 0, f"image {' '.join(args)} failed ({code}): {err}"
    return out


def runner_records(*args: str, timeout: float = 60) -> tuple[int, list[dict[str, Any]], str]:
    """Run the node runner to its end: (exit code, protocol records, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "node_runner", "run", *args], cwd=REPO,
                          capture_output=True, timeout=timeout, check=False)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    return proc.returncode, records, proc.stderr.decode()


def runner_error(*args: str) -> str:
    """The message of the runner's `error` record; asserts code `image` and exit code 7."""
    code, records, err = runner_records(*args)
    errors = [r for r in records if r.get("type") == "error"]
    assert code == 7, f"exit {code}, records {records}, stderr {err}"
    assert len(errors) == 1 and errors[0]["code"] == "image", records
    message = str(errors[0]["message"])
    assert "\n" not in message
    return message


def write_keys(tmp: Path, name: str) -> tuple[Path, Path]:
    from node_runner.oci.signing import generate_key

    private, public = generate_key()
    key, pub = tmp / f"{name}.key", tmp / f"{name}.pub"
    key.write_bytes(private)
    pub.write_bytes(public)
    return key, pub
