"""kubectl's global flags reach the API server: token, impersonation, server, TLS, timeouts.

Each is checked on what the fake API server saw (the authenticated user, the impersonation
headers), with `kubectl gadget list`, whose only work is API calls.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.product_fixtures import ROOT, GadgetCluster


def _client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kubectl_gadget", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def _users(gc: GadgetCluster) -> set[str]:
    return {r.user for r in gc.requests("GET", "/api/v1/namespaces/gadget/pods")}


def _kubeconfig(gc: GadgetCluster, tmp_path: Path, **cluster: Any) -> Path:
    """A kubeconfig for the fake server with the admin token removed and `cluster` applied."""
    path = gc.cluster.write_kubeconfig(tmp_path / "kubeconfig")
    config = yaml.safe_load(path.read_text())
    config["users"][0]["user"] = {}
    config["clusters"][0]["cluster"].update(cluster)
    path.write_text(yaml.safe_dump(config))
    return path


def test_token_and_impersonation_reach_the_api_server(gadget_cluster: GadgetCluster,
                                                      tmp_path: Path) -> None:
    gc = gadget_cluster
    token = gc.cluster.add_user("alice")
    kubeconfig = _kubeconfig(gc, tmp_path)

    gc.clear_requests()
    listed = _client("list", "--kubeconfig", str(kubeconfig), "--token", token)
    assert "no gadget sessions" in listed.stderr, listed.stderr
    assert _users(gc) == {"alice"}

    gc.clear_requests()
    listed = _client("list", "--kubeconfig", str(kubeconfig), "--token", token,
                     "--as", "bob", "--as-group", "devs")
    assert listed.returncode == 0, listed.stderr
    seen = gc.requests("GET", "/api/v1/namespaces/gadget/pods")
    assert {r.user for r in seen} == {"bob"}
    assert all(r.groups == ["devs"] for r in seen), seen[0].headers

    # kubectl sends one header line per --as-group; so do we, on every request.
    gc.clear_requests()
    listed = _client("list", "--kubeconfig", str(kubeconfig), "--token", token,
                     "--as", "bob", "--as-group", "devs", "--as-group", "system:authenticated")
    assert listed.returncode == 0, listed.stderr
    seen = gc.requests()
    assert seen and all(r.groups == ["devs", "system:authenticated"] for r in seen), [
        (r.path, r.groups) for r in seen]

    bad = _client("list", "--kubeconfig", str(kubeconfig), "--token", "not-a-token")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert "Unauthorized" in bad.stderr or "401" in bad.stderr, bad.stderr


def test_server_flag_overrides_the_kubeconfig(gadget_cluster: GadgetCluster,
                                              tmp_path: Path) -> None:
    gc = gadget_cluster
    token = gc.cluster.add_user("carol")
    wrong = _kubeconfig(gc, tmp_path, server="http://127.0.0.1:9")
    unreachable = _client("list", "--kubeconfig", str(wrong), "--token", token,
                          "--request-timeout", "5s")
    assert unreachable.returncode == 1 and "cannot reach" in unreachable.stderr
    gc.clear_requests()
    fixed = _client("list", "--kubeconfig", str(wrong), "--token", token,
                    "--server", gc.cluster.url, "--request-timeout", "10s")
    assert fixed.returncode == 0, fixed.stderr
    assert _users(gc) == {"carol"}
    # No kubeconfig at all: --server and --token are enough, as for kubectl.
    gc.clear_requests()
    bare = _client("list", "--kubeconfig", str(tmp_path / "none"), "--server", gc.cluster.url,
                   "--token", token)
    assert bare.returncode == 0, bare.stderr
    assert _users(gc) == {"carol"}


def test_insecure_skip_tls_verify(make_gadget_cluster: Any, tmp_path: Path) -> None:
    gc = make_gadget_cluster(nodes=("node-a",), tls=True)
    token = gc.cluster.add_user("dave")
    no_ca = _kubeconfig(gc, tmp_path)
    no_ca_cfg = yaml.safe_load(no_ca.read_text())
    no_ca_cfg["clusters"][0]["cluster"].pop("certificate-authority-data", None)
    no_ca.write_text(yaml.safe_dump(no_ca_cfg))
    refused = _client("list", "--kubeconfig", str(no_ca), "--token", token)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    gc.clear_requests()
    skipped = _client("list", "--kubeconfig", str(no_ca), "--token", token,
                      "--insecure-skip-tls-verify")
    assert skipped.returncode == 0, skipped.stderr
    assert _users(gc) == {"dave"}


@pytest.mark.parametrize("value", ["abc", "-1s", "nan", "5x"])
def test_bad_request_timeout_is_a_usage_error(value: str) -> None:
    proc = _client("list", "--request-timeout", value)
    assert proc.returncode == 2 and "Invalid value for '--request-timeout'" in proc.stderr
