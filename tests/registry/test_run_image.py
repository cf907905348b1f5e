"""The whole path on this kernel: build -> push -> sign -> remove -> the runner pulls the
reference, verifies its signature and allowlist, loads it, and reports real opens.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest

from tests.conftest import needs_root_btf
from tests.kernel.runner_proc import RunnerProcess
from tests.registry.conftest import Registry
from tests.registry.util import image_ok, write_keys

pytestmark = [pytest.mark.registry, pytest.mark.kernel, needs_root_btf]


def test_pushed_signed_image_runs_from_the_registry(capsys: pytest.CaptureFixture[str],
                                                    registry: Registry, built_store: str,
                                                    store_dir: Path, tmp_path: Path) -> None:
    ref = f"{registry.host}/gadgets/trace_open:kernel"
    key, pub = write_keys(tmp_path, "release")
    image_ok(capsys, "tag", "trace_open", ref)
    image_ok(capsys, "push", ref, "--insecure-registries", registry.host)
    image_ok(capsys, "sign", ref, "--key", str(key), "--insecure-registries", registry.host)
    image_ok(capsys, "remove", ref, "trace_open")
    assert "trace_open" not in image_ok(capsys, "list")
    marker = tmp_path / f"marker-{secrets.token_hex(6)}"
    marker.write_text("x")
    with RunnerProcess(ref, "--insecure-registries", registry.host, "--public-key", str(pub),
                       "--allowed-gadgets", f"{registry.host}/gadgets/*",
                       "--timeout", "30") as runner:
        runner.wait_schema(60)
        for _ in range(3):
            os.close(os.open(marker, os.O_RDONLY))
        event = runner.wait_event(lambda d: d.get("fname") == str(marker), 15,
                                  f"open of {marker}")
        runner.stop()
        hello = runner.of_type("hello")[0]
    assert event["proc.pid"] == os.getpid() and event["error"] == "" and event["fd"] >= 0
    assert hello["gadget"]["ref"] == ref and hello["gadget"]["digest"] == built_store
    assert runner.end()["exit_code"] == 0
    # the pull left the image and its signature in the store
    listed = image_ok(capsys, "list", "--no-trunc")
    assert f"{ref}" in listed and built_store in listed
