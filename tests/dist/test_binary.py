"""`make dist`: the one-file binary runs on its own, and its krew manifest is valid.

The binary, its archive and `gadget.yaml` are built once (`python -m kubectl_gadget.release
dist`, as `make dist` does); the binary is copied alone into an empty directory and run with a
clean environment (PATH holding nothing, so no Python, venv or clang is reachable). PyInstaller
takes about a minute and a half on a 2-core machine; `make dist-test` runs these alone.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import yaml

from kubectl_gadget import __version__
from kubectl_gadget.release import krew
from tests.conftest import REPO, needs_root_btf
from tests.dist.shipped import run, sandbox, trace_exec_sees_probe

pytestmark = [pytest.mark.dist]


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "kubectl_gadget.release", "dist", "--out",
                           str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          check=False, timeout=900)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture
def binary(out: Path, tmp_path: Path) -> tuple[Path, Path]:
    """The binary copied alone into an empty directory of a fresh sandbox."""
    box_root = tmp_path / "box"
    box_root.mkdir()
    copy = box_root / "kubectl-gadget"
    shutil.copy2(out / "kubectl-gadget", copy)
    return copy, box_root


def test_binary_alone_prints_version_and_help(binary: tuple[Path, Path]) -> None:
    exe, root = binary
    box = sandbox(root)
    proc = run([str(exe), "version"], box)
    assert (proc.returncode, proc.stdout.strip()) == (0, f"kubectl-gadget {__version__}"), \
        proc.stderr
    proc = run([str(exe), "--help"], box)
    assert proc.returncode == 0, proc.stderr
    assert "Usage: kubectl-gadget" in proc.stdout
    for command in ("run", "image", "gc", "list", "version"):
        assert f"  {command} " in proc.stdout


def test_binary_answers_kubectl_plugin_completion_through_a_symlink(
        binary: tuple[Path, Path]) -> None:
    exe, root = binary
    completer = root / "kubectl_complete-gadget"
    completer.symlink_to(exe.name)
    proc = run([str(completer), "run", "trace_e"], sandbox(root))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith(":"), lines  # cobra's directive line ends the answer
    assert any(line.split("\t")[0] == "trace_exec" for line in lines[:-1]), lines


@needs_root_btf
def test_binary_alone_runs_trace_exec_without_python_or_clang(binary: tuple[Path, Path]) -> None:
    exe, root = binary
    trace_exec_sees_probe([str(exe)], sandbox(root), root)


def test_archive_and_krew_manifest_agree(out: Path) -> None:
    archive = out / f"kubectl-gadget_v{__version__}_linux_amd64.tar.gz"
    doc = yaml.safe_load((out / "gadget.yaml").read_text())
    assert krew.problems(doc) == []
    platform = doc["spec"]["platforms"][0]
    assert platform["uri"].endswith("/" + archive.name)
    assert krew.install_problems(platform, archive) == []
    with tarfile.open(archive) as tar:
        (member,) = tar.getmembers()
        data = tar.extractfile(member)
        assert data is not None and data.read() == (out / "kubectl-gadget").read_bytes()
    assert member.name == "kubectl-gadget" and member.mode == 0o755
