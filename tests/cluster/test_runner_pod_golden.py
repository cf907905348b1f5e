"""The runner pod manifest, checked against golden YAML (tests/cluster/golden/runner_pod*.yaml).

The manifest is what a cluster admin reviews before letting the tool in (privileges, host
mounts, placement, lifetime), so any change to it must show up as a reviewed golden diff.
`UPDATE_GOLDEN=1 python -m pytest tests/cluster/test_runner_pod_golden.py` rewrites the files;
a missing golden file fails (it is never created silently). The client version is written as
`<version>` so a version bump alone does not churn the files.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from kubectl_gadget.cluster.gadget_files import MOUNT_PATH, GadgetFiles, volume_mount
from kubectl_gadget.cluster.runner_pod import (
    CLIENT_VERSION,
    DEFAULT_IMAGE,
    RunnerSettings,
    metadata_arg,
    runner_margin,
    runner_pod,
)
from tests.golden import check_golden

GOLDEN = Path(__file__).parent / "golden"
NOW = 1_760_000_000.0  # 2025-10-09T08:53:20Z
SESSION = "0a1b2c3d"
NODE = "worker-1.example.com"
GADGET = "ghcr.io/kubectl-gadget/gadgets/trace_exec:v1"
METADATA = {"3f" * 32: {"namespace": "shop", "pod_name": "cart-7d4b9-x2x8q",
                        "container_name": "app", "pod_labels": {"app": "cart"},
                        "owner_kind": "ReplicaSet", "owner_name": "cart-7d4b9"}}
ARGS = ["--gadget", GADGET, "--node", NODE, "--cluster", "--timeout", "30.0",
        "--follow-namespace", "shop", "--container-id", "3f" * 32,
        "--k8s-metadata", metadata_arg(METADATA)]

CASES = {
    "runner_pod.yaml": RunnerSettings(),
    "runner_pod_privileged.yaml": RunnerSettings(privileged=True),
    "runner_pod_no_tolerations_pull_secrets.yaml": RunnerSettings(
        namespace="tracing", image="registry.example/mirror/node-runner:0.1.0",
        pull_policy="Always", pull_secrets=("mirror-creds", "backup-creds"),
        tolerate_taints=False, deadline_seconds=600),
}


# A local gadget directory (`run ./my_exec`): its files come in the session's ConfigMap.
FILES = GadgetFiles("./my_exec", "my_exec", (("program.bpf.o", b"\x7fELF"),
                                            ("gadget.yaml", b"name: my_exec\n")), "amd64")
SHIPPED_ARGS = ["--gadget", f"{MOUNT_PATH}/my_exec", *ARGS[2:]]


def render(settings: RunnerSettings, shipped: bool = False) -> str:
    if shipped:
        manifest = runner_pod(settings, SESSION, NODE, list(SHIPPED_ARGS), FILES.name, NOW,
                              ((FILES.volume(SESSION), volume_mount()),))
    else:
        manifest = runner_pod(settings, SESSION, NODE, list(ARGS), GADGET, NOW)
    manifest["metadata"]["annotations"][CLIENT_VERSION] = "<version>"
    container = manifest["spec"]["containers"][0]
    if container["image"] == DEFAULT_IMAGE:
        container["image"] = DEFAULT_IMAGE.rsplit(":", 1)[0] + ":<version>"
    return yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, width=100)


@pytest.mark.parametrize("name", sorted(CASES))
def test_runner_pod_matches_golden(name: str) -> None:
    check_golden(GOLDEN / name, render(CASES[name]))


def test_shipped_gadget_directory_pod_matches_golden() -> None:
    """Only the ConfigMap volume, its read-only mount and --gadget differ from the default."""
    text = render(RunnerSettings(), shipped=True)
    check_golden(GOLDEN / "runner_pod_shipped_gadget.yaml", text)
    shipped, default = yaml.safe_load(text), yaml.safe_load(render(RunnerSettings()))
    volume = shipped["spec"]["volumes"].pop()
    mount = shipped["spec"]["containers"][0]["volumeMounts"].pop()
    assert volume == {"name": "gadget-files", "configMap": {
        "name": f"gadget-{SESSION}-files",
        "items": [{"key": "program.bpf.o", "path": "my_exec/program.bpf.o"},
                  {"key": "gadget.yaml", "path": "my_exec/gadget.yaml"}]}}
    assert mount == {"name": "gadget-files", "mountPath": MOUNT_PATH, "readOnly": True}
    args = shipped["spec"]["containers"][0]["args"]
    assert args[args.index("--gadget") + 1] == f"{MOUNT_PATH}/my_exec"
    args[args.index("--gadget") + 1] = GADGET
    shipped["metadata"]["annotations"]["kubectl-gadget.io/gadget"] = GADGET
    assert shipped == default


def test_goldens_differ_where_the_flags_say() -> None:
    """The golden files themselves encode the flags: guard against regenerating them from a
    runner_pod that ignores its settings."""
    default, privileged, custom = (yaml.safe_load((GOLDEN / n).read_text()) for n in (
        "runner_pod.yaml", "runner_pod_privileged.yaml",
        "runner_pod_no_tolerations_pull_secrets.yaml"))
    sc = default["spec"]["containers"][0]["securityContext"]
    assert sc["privileged"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert "SYS_ADMIN" in sc["capabilities"]["add"]
    assert privileged["spec"]["containers"][0]["securityContext"] == {"privileged": True}
    assert default["spec"]["tolerations"] == [{"operator": "Exists"}]
    assert "tolerations" not in custom["spec"]
    assert custom["spec"]["imagePullSecrets"] == [{"name": "mirror-creds"},
                                                  {"name": "backup-creds"}]
    assert custom["spec"]["activeDeadlineSeconds"] == 600
    assert custom["metadata"]["namespace"] == "tracing"
    for manifest in (default, privileged, custom):
        spec = manifest["spec"]
        assert spec["restartPolicy"] == "Never"
        assert spec["automountServiceAccountToken"] is False
        args = spec["containers"][0]["args"]
        deadline = int(args[args.index("--deadline") + 1])
        active = spec["activeDeadlineSeconds"]
        assert deadline == int(NOW) + active - runner_margin(active)
        assert 0 < runner_margin(active) < active
        assert manifest["metadata"]["labels"]["kubectl-gadget.io/session"] == SESSION
