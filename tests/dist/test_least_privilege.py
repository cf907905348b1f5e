"""The runner pod, as the client writes it, run as a real runc container from the runner image.

The manifest comes from `runner_pod` (the code that makes real runner pods); the kubelet-like
translation (tests/cluster/fakekube/oci_spec.py) gives the container exactly the capabilities
listed, the host's PID namespace, the hostPath mounts read-only as written, a read-only /sys
and no service-account token. The runner must trace with that, the whole host or one target
container: an exec the test makes there once the runner says it traces comes back as an event.
With one capability taken away it must either still trace that exec or stop by itself with a
clear error (a protocol `error` record, an exit code of the documented table, no traceback),
never trace nothing or hang. Which removals break trace_exec on this kernel is asserted too,
so a change in what the runner needs is noticed. Run by `make runner-image-test` (CI runs it
after `make test`).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubectl_gadget.cluster.runner_pod import CAPABILITIES, RunnerSettings, runner_pod
from tests.cluster.fakekube import runc
from tests.cluster.fakekube.oci_spec import TOKEN_PATH, grantable, runtime_config
from tests.conftest import needs_root_btf
from tests.runner_image import amd64_image, needs_mmdebstrap
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.runner_image, needs_mmdebstrap, needs_root_btf,
              pytest.mark.skipif(not shutil.which("runc"),
                                 reason="runc not installed (apt-get install runc)")]
DOCUMENTED_EXIT_CODES = {3, 4, 5, 6, 7}
# The removals that stop trace_exec here, (capability, run targets a container): SYS_ADMIN
# mounts bpffs; SYS_PTRACE reads the target container's mount namespace (/proc/<pid>/ns/mnt).
NEEDED = {("SYS_ADMIN", False), ("SYS_ADMIN", True), ("SYS_PTRACE", True)}
WATCHDOG_SECONDS = 120  # a backstop only: a working run ends in seconds, a failing one too


def _pod(drop: str | None = None, timeout: int = 2,
         extra: tuple[str, ...] = ()) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = runner_pod(RunnerSettings(), "lp", "node-1",
                     ["--gadget", "trace_exec", "--timeout", str(timeout), *extra],
                     "trace_exec", time.time())
    container = pod["spec"]["containers"][0]
    caps = container["securityContext"]["capabilities"]
    caps["add"] = [c for c in caps["add"] if c != drop and c in grantable()]
    return pod, container


@dataclass
class _Run:
    returncode: int
    records: list[dict[str, Any]]
    stderr: str
    marker_seen: bool


def _run(runner_layout: Path, runner_rootfs: Path, tmp_path: Path, drop: str | None = None,
         target: ContainerWorkload | None = None) -> _Run:
    """Run the runner pod's container with runc, reading its records as they come.

    With a `target`, the runner is given its container id as on a cluster (`--cluster
    --container-id`). Once the runner says it traces (its `schema` record), the test execs
    `echo MARKER` in the target, else on the host; once that exec comes back as an event, the
    container gets SIGTERM (as the kubelet stops a pod), so a run that works ends as soon as it
    has shown it. The runner's own timeout (60 s) and a watchdog that kills the container stop
    a run that does neither.
    """
    extra = (("--cluster", "--container-id", f"containerd://{target.container_id}")
             if target is not None else ())
    pod, container = _pod(drop, timeout=60, extra=extra)
    _, image_config, _ = amd64_image(runner_layout)
    cid = f"kg-lp-{uuid.uuid4().hex[:8]}"
    config = runtime_config(pod, container, image_config, str(runner_rootfs),
                            f"/kubepods/besteffort/pod{cid}/{cid}")
    marker = f"lp-{uuid.uuid4().hex[:8]}"
    records: list[dict[str, Any]] = []
    seen = False
    with runc.bundle(cid, config, tmp_path / "bundle") as bundle, \
            open(tmp_path / "stderr", "w+", encoding="utf-8") as err:
        proc = subprocess.Popen(runc.run_argv(bundle), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        watchdog = threading.Timer(WATCHDOG_SECONDS, subprocess.run,
                                   ([runc.RUNC, "kill", cid, "KILL"],),
                                   {"capture_output": True, "check": False})
        watchdog.start()
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                if not line.startswith("{"):
                    continue
                record = json.loads(line)
                records.append(record)
                if record["type"] == "schema":
                    if target is not None:
                        target.exec(["/bin/echo", marker])
                    else:
                        subprocess.run(["/bin/echo", marker], stdout=subprocess.DEVNULL,
                                       check=True)
                elif (record["type"] == "event" and not seen
                      and record["data"].get("proc.comm") == "echo"
                      and str(record["data"].get("args", "")).endswith(marker)):
                    seen = True
                    proc.send_signal(signal.SIGTERM)
            proc.wait()
        finally:
            watchdog.cancel()
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        err.seek(0)
        stderr = err.read()
    return _Run(proc.returncode, records, stderr, seen)


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


def _run_mode(runner_layout: Path, runner_rootfs: Path, tmp_path: Path, drop: str | None,
              targeted: bool) -> _Run:
    if not targeted:
        return _run(runner_layout, runner_rootfs, tmp_path, drop)
    with sleeping_container() as target:
        return _run(runner_layout, runner_rootfs, tmp_path, drop, target)


@pytest.mark.parametrize("targeted", [False, True], ids=["host", "container"])
def test_runner_traces_in_a_container_with_the_listed_capabilities(
        runner_layout: Path, runner_rootfs: Path, tmp_path: Path, targeted: bool) -> None:
    missing = sorted(set(CAPABILITIES) - grantable())
    print(f"capabilities this machine cannot grant (left out): {missing}")
    run = _run_mode(runner_layout, runner_rootfs, tmp_path, None, targeted)
    types = [r["type"] for r in run.records]
    assert run.marker_seen, f"the exec of echo MARKER was traced: {types}\n{run.stderr}"
    assert run.returncode == 0, run.stderr
    assert types[0] == "hello" and "schema" in types, types
    assert run.records[-1] == {**run.records[-1], "type": "end", "reason": "signal",
                               "exit_code": 0}
    assert "Traceback" not in run.stderr


@pytest.mark.parametrize("targeted", [False, True], ids=["host", "container"])
@pytest.mark.parametrize("cap", CAPABILITIES)
def test_one_capability_less_works_or_fails_clearly(
        runner_layout: Path, runner_rootfs: Path, tmp_path: Path, cap: str,
        targeted: bool) -> None:
    """Without `cap` the runner either still traces (the exec is seen) or stops by itself with
    an `error` record and a documented exit code: never a run that traces nothing, a hang
    (the watchdog's kill leaves no `end` record) or a traceback."""
    if cap not in grantable():
        pytest.skip(f"this machine cannot grant CAP_{cap} to any container (not in its "
                    "bounding set), so there is nothing to take away")
    run = _run_mode(runner_layout, runner_rootfs, tmp_path, cap, targeted)
    records = run.records
    assert "Traceback" not in run.stderr, run.stderr
    assert records and records[-1]["type"] == "end", f"no end record: a hang?\n{run.stderr}"
    if run.returncode == 0:
        assert run.marker_seen, f"exit 0 without CAP_{cap}, but the exec was not traced"
        assert records[-1]["exit_code"] == 0
        assert (cap, targeted) not in NEEDED, f"CAP_{cap} is no longer needed: update NEEDED"
        return
    errors = [r for r in records if r["type"] == "error"]
    assert errors and errors[0]["message"], records
    assert run.returncode in DOCUMENTED_EXIT_CODES
    assert records[-1]["exit_code"] == run.returncode
    if (cap, targeted) not in NEEDED:
        pytest.fail(f"trace_exec needs CAP_{cap} on this kernel now ({errors[0]['message']}); "
                    "say why in runner_pod.py and update this test")
    # exit 6 (permission) naming the capability
    assert run.returncode == 6 and f"CAP_{cap}" in errors[0]["message"], errors
