"""A gadget carrying a WASM module runs without it; one warning names what is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import needs_root_btf
from tests.kernel.runner_proc import run_to_end

pytestmark = [pytest.mark.kernel, needs_root_btf]


def test_wasm_gadget_runs_without_its_module(built_gadgets: dict[str, Path],
                                             tmp_path: Path) -> None:
    gadget = tmp_path / "trace_open"
    shutil.copytree(built_gadgets["trace_open"], gadget)
    (gadget / "program.wasm").write_bytes(b"\0asm\1\0\0\0")
    meta = yaml.safe_load((gadget / "gadget.yaml").read_text())
    meta["datasources"]["open_summary"] = {"fields": {"opens": {}}}
    (gadget / "gadget.yaml").write_text(yaml.safe_dump(meta))
    runner = run_to_end(gadget, "--timeout", "1")
    warnings = [r["message"] for r in runner.of_type("warning")]
    assert len([w for w in warnings if "WASM module" in w]) == 1, warnings
    line = next(w for w in warnings if "WASM module" in w)
    assert "gadget trace_open carries a WASM module" in line
    assert "datasource open_summary (fields opens)" in line
    assert runner.returncode == 0 and runner.end()["reason"] == "timeout"
