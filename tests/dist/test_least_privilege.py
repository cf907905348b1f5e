"""The runner pod, as the client writes it, run as a real runc container from the runner image.

The manifest comes from `runner_pod` (the code that makes real runner pods); the kubelet-like
translation (tests/cluster/fakekube/oci_spec.py) gives the container exactly the capabilities
listed, the host's PID namespace, the hostPath mounts read-only as written, a read-only /sys
and no service-account token. The runner must trace with that; with one capability taken away
it must either still work or stop with a clear error (a protocol `error` record, an exit code
of the documented table, no traceback) well before its timeout. Which removals break
trace_exec on this kernel is asserted too, so a change in what the runner needs is noticed.
Opt-in with the image build: `make runner-image-test`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from kubectl_gadget.cluster.runner_pod import CAPABILITIES, RunnerSettings, runner_pod
from tests.cluster.fakekube import runc
from tests.cluster.fakekube.oci_spec import TOKEN_PATH, grantable, runtime_config
from tests.conftest import needs_root_btf
from tests.dist.conftest import amd64_image, needs_mmdebstrap

pytestmark = [pytest.mark.runner_image, needs_mmdebstrap, needs_root_btf,
              pytest.mark.skipif(not shutil.which("runc"),
                                 reason="runc not installed (apt-get install runc)")]
DOCUMENTED_EXIT_CODES = {3, 4, 5, 6, 7}


def _pod(drop: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = runner_pod(RunnerSettings(), "lp", "node-1",
                     ["--gadget", "trace_exec", "--timeout", "2"], "trace_exec", time.time())
    container = pod["spec"]["containers"][0]
    caps = container["securityContext"]["capabilities"]
    caps["add"] = [c for c in caps["add"] if c != drop and c in grantable()]
    return pod, container


def _run(layout: Path, rootfs: Path, tmp_path: Path,
         drop: str | None = None) -> tuple[subprocess.CompletedProcess[str], list[dict]]:
    pod, container = _pod(drop)
    _, image_config, _ = amd64_image(layout)
    cid = f"kg-lp-{uuid.uuid4().hex[:8]}"
    config = runtime_config(pod, container, image_config, str(rootfs),
                            f"/kubepods/besteffort/pod{cid}/{cid}")
    with runc.bundle(cid, config, tmp_path / "bundle") as bundle:
        proc = bundle.run(timeout=60)
    records = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc, records


def test_translation_is_as_strict_as_the_manifest() -> None:
    pod, container = _pod()
    config = runtime_config(pod, container, {"config": {"Entrypoint": ["x"]}}, "/r", "/c")
    caps = config["process"]["capabilities"]
    assert caps["effective"] == sorted(f"CAP_{c}" for c in CAPABILITIES if c in grantable())
    assert caps["bounding"] == caps["effective"] == caps["permitted"]
    assert "pid" not in [ns["type"] for ns in config["linux"]["namespaces"]]  # hostPID
    binds = {m["destination"]: m["options"][-1] for m in config["mounts"] if m["type"] == "bind"}
    written = {vm["mountPath"]: "ro" if vm.get("readOnly") else "rw"
               for vm in container["volumeMounts"]}
    assert binds == written and "ro" in binds.values()
    assert not [m for m in config["mounts"] if m["destination"].startswith(TOKEN_PATH)]
    sysfs = next(m for m in config["mounts"] if m["destination"] == "/sys")
    assert "ro" in sysfs["options"]


def test_runner_traces_in_a_container_with_the_listed_capabilities(
        layout: Path, rootfs: Path, tmp_path: Path) -> None:
    missing = sorted(set(CAPABILITIES) - grantable())
    print(f"capabilities this machine cannot grant (left out): {missing}")
    proc, records = _run(layout, rootfs, tmp_path)
    assert proc.returncode == 0, proc.stderr
    types = [r["type"] for r in records]
    assert types[0] == "hello" and "schema" in types and "event" in types, types
    assert records[-1] == {**records[-1], "type": "end", "exit_code": 0}
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("cap", CAPABILITIES)
def test_one_capability_less_works_or_fails_clearly(layout: Path, rootfs: Path, tmp_path: Path,
                                                     cap: str) -> None:
    if cap not in grantable():
        pytest.skip(f"this machine cannot grant CAP_{cap} to any container (not in its "
                    "bounding set), so there is nothing to take away")
    started = time.monotonic()
    proc, records = _run(layout, rootfs, tmp_path, drop=cap)
    assert time.monotonic() - started < 30, "no hang: the runner stops by itself"
    assert "Traceback" not in proc.stderr, proc.stderr
    assert records and records[-1]["type"] == "end", proc.stderr
    if proc.returncode == 0:
        assert records[-1]["exit_code"] == 0
        return
    errors = [r for r in records if r["type"] == "error"]
    assert errors and errors[0]["message"], records
    assert proc.returncode in DOCUMENTED_EXIT_CODES
    assert records[-1]["exit_code"] == proc.returncode
    if cap == "SYS_ADMIN":  # tracefs/bpffs mounts: exit 6 (permission) naming the capability
        assert proc.returncode == 6 and "CAP_SYS_ADMIN" in errors[0]["message"], errors
    else:
        pytest.fail(f"trace_exec needs CAP_{cap} on this kernel now ({errors[0]['message']}); "
                    "say why in runner_pod.py and update this test")
