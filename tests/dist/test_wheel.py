"""`pip install` of the built wheel in a fresh venv: the installed tool runs in-tree gadgets.

The wheel is built with `python -m kubectl_gadget.release wheel` (sdist first, the wheel from
it), installed into a new venv (its dependencies come from the package index pip is configured
with), and run from an empty directory with a clean environment: no checkout, no clang on PATH,
no build cache. trace_exec must run from the packaged prebuilt object and see a real exec.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, TEST_GADGETS_SRC, needs_root_btf
from tests.dist.shipped import run, sandbox, trace_exec_sees_probe

pytestmark = [pytest.mark.dist]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("wheel-out")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-m", "kubectl_gadget.release", "wheel", "--out",
                           str(out)], cwd=REPO, env=env, capture_output=True, text=True,
                          check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


def test_wheel_carries_sources_headers_and_prebuilt_objects(built: dict[str, Path]) -> None:
    names = set(zipfile.ZipFile(built["wheel"]).namelist())
    arch = {"x86_64": "amd64", "aarch64": "arm64"}[os.uname().machine]
    for gadget in ("trace_exec", "trace_open"):
        assert f"node_runner/share/gadgets/{gadget}/program.bpf.c" in names
        assert f"node_runner/share/gadgets/{gadget}/gadget.yaml" in names
        assert f"node_runner/share/prebuilt/{arch}/{gadget}/program.bpf.o" in names
        assert f"node_runner/share/prebuilt/{arch}/{gadget}/gadget.yaml" in names
    assert f"node_runner/share/runtime/{arch}/socket_enricher/program.bpf.o" in names
    assert "node_runner/share/gadgets/runtime/socket_enricher/program.bpf.c" in names
    assert "node_runner/share/include/gadget/macros.h" in names
    assert f"node_runner/share/include/{os.uname().machine}/vmlinux.h" in names
    assert not any(n.startswith(("tests/", "gadgets/")) for n in names)


@pytest.fixture(scope="module")
def venv(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", "--no-compile", str(built["wheel"])],
                          env=env, capture_output=True, text=True, check=False, timeout=600)
    if proc.returncode != 0 and "No matching distribution" in proc.stderr:
        pytest.skip(f"the package index is unreachable for the wheel's dependencies: "
                    f"{proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    return root


def test_installed_wheel_prints_its_version(venv: Path, tmp_path: Path) -> None:
    from kubectl_gadget import __version__

    proc = run([str(venv / "bin" / "kubectl-gadget"), "version"], sandbox(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"kubectl-gadget {__version__}"


@needs_root_btf
def test_installed_wheel_runs_trace_exec_without_checkout_or_clang(venv: Path,
                                                                   tmp_path: Path) -> None:
    box = sandbox(tmp_path)
    trace_exec_sees_probe([str(venv / "bin" / "kubectl-gadget")], box, tmp_path)


@needs_root_btf
def test_installed_runner_finds_packaged_gadgets_by_name(venv: Path, tmp_path: Path) -> None:
    """`node-runner run --gadget trace_exec` (how a cluster runner gets in-tree gadgets) finds
    the packaged prebuilt copy."""
    proc = run([str(venv / "bin" / "node-runner"), "run", "--gadget", "trace_exec",
                "--timeout", "1"], sandbox(tmp_path))
    assert proc.returncode == 0, proc.stderr
    types = [json.loads(line)["type"] for line in proc.stdout.splitlines()]
    assert (types[0], types[-1]) == ("hello", "end") and "schema" in types, types


@needs_root_btf
def test_installed_wheel_builds_own_gadget_with_packaged_headers_and_enricher(
        venv: Path, tmp_path: Path) -> None:
    """A gadget of one's own, outside any checkout, compiles against the headers in the wheel,
    and its `gadget_sockets` map is filled by the packaged socket enricher."""
    if not shutil.which("clang"):
        pytest.skip("clang not installed: cannot compile a gadget")
    box = sandbox(tmp_path)
    shutil.copytree(TEST_GADGETS_SRC / "socket_owner", box.cwd / "my_sockets")
    box.env["PATH"] = "/usr/bin:/bin"
    proc = run([str(venv / "bin" / "kubectl-gadget"), "run", "./my_sockets", "--local",
                "--timeout", "1"], box)
    assert proc.returncode == 0, proc.stderr
    assert "compiling gadget my_sockets" in proc.stderr
    assert "socket enricher is not built" not in proc.stderr
