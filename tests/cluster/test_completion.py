"""Shell completion, driven as the shells drive it: click's environment protocol for
`kubectl-gadget <TAB>`, and the real kubectl's plugin completion (`kubectl __complete gadget
...` runs `kubectl_complete-gadget` from PATH) for `kubectl gadget <TAB>`. Namespaces, pods and
nodes come from the fake API server through a kubeconfig pointing at it; nothing else asks it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster.fakekube import FakeCluster

ROOT = Path(__file__).resolve().parents[2]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("_KUBECTL_GADGET")}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra)
    return env


def bash_complete(line: str, kubeconfig: Path | str = "/nonexistent") -> list[str]:
    """Candidates bash gets for `line` (the cursor at its end; a trailing space: a new word)."""
    words = line.split() + ([""] if line.endswith(" ") else [])
    proc = subprocess.run(
        [sys.executable, "-m", "kubectl_gadget"], capture_output=True, text=True, timeout=60,
        env=_env(_KUBECTL_GADGET_COMPLETE="bash_complete", COMP_WORDS=" ".join(words),
                 COMP_CWORD=str(len(words) - 1), KUBECONFIG=str(kubeconfig)))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return [row.split(",", 1)[1] for row in proc.stdout.splitlines() if row]


def test_subcommands_gadgets_and_output_modes_complete() -> None:
    assert {"run", "completion", "list-gadgets", "image", "version"} <= set(
        bash_complete("kubectl-gadget "))
    gadgets = bash_complete("kubectl-gadget run trace_")
    assert {"trace_exec", "trace_open"} <= set(gadgets) and all(
        g.startswith("trace_") for g in gadgets), gadgets
    assert bash_complete("kubectl-gadget run trace_open -o json") == ["json", "jsonpretty"]
    assert "--timeout" in bash_complete("kubectl-gadget run trace_open --tim")


def test_gadgets_of_the_local_store_complete(tmp_path: Path) -> None:
    store = tmp_path / "store"
    subprocess.run([sys.executable, "-m", "kubectl_gadget", "image", "build", "-t",
                    "localhost/mine/zz_probe:v1", str(ROOT / "gadgets" / "trace_open")],
                   check=True, capture_output=True, timeout=300,
                   env=_env(KUBECTL_GADGET_STORE=str(store)))
    words = "kubectl-gadget run localhost/mine/".split()
    proc = subprocess.run(
        [sys.executable, "-m", "kubectl_gadget"], capture_output=True, text=True, timeout=60,
        env=_env(_KUBECTL_GADGET_COMPLETE="bash_complete", COMP_WORDS=" ".join(words),
                 COMP_CWORD="2", KUBECTL_GADGET_STORE=str(store)))
    assert proc.stdout.splitlines() == ["plain,localhost/mine/zz_probe:v1"], proc


def test_print_scripts_for_each_shell() -> None:
    for shell, marker in (("bash", "complete -o nosort -F"), ("zsh", "#compdef kubectl-gadget"),
                          ("fish", "complete --no-files --command kubectl-gadget")):
        proc = subprocess.run([sys.executable, "-m", "kubectl_gadget", "completion", shell],
                              capture_output=True, text=True, timeout=60, env=_env())
        assert proc.returncode == 0 and marker in proc.stdout, (shell, proc.stdout[:300])
        assert "_KUBECTL_GADGET_COMPLETE" in proc.stdout


@pytest.mark.cluster
def test_namespaces_pods_and_nodes_come_from_the_api(fake_cluster: FakeCluster) -> None:
    fake_cluster.create_target_pod("cart-1", "shop", labels={"app": "cart"}, node="node-b")
    fake_cluster.create_target_pod("carrot-2", "shop", node="node-a")
    fake_cluster.create_target_pod("web-1", "front", node="node-a")
    cfg = fake_cluster.kubeconfig_path
    assert {"shop", "front", "default"} <= set(bash_complete("kubectl-gadget run x -n ", cfg))
    assert bash_complete("kubectl-gadget run x -n s", cfg) == ["shop"]
    assert bash_complete("kubectl-gadget run x -n shop -p car", cfg) == ["carrot-2", "cart-1"]
    assert bash_complete("kubectl-gadget run x -A -p w", cfg) == ["web-1"]
    assert bash_complete("kubectl-gadget run x --node ", cfg) == ["node-a", "node-b", "node-c"]
    # an unreachable API completes nothing, quietly
    assert bash_complete("kubectl-gadget run x -n ", "/nonexistent") == []


@pytest.mark.cluster
def test_kubectl_plugin_completion_runs_kubectl_complete_gadget(fake_cluster: FakeCluster,
                                                                tmp_path: Path) -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("the real kubectl binary is not on PATH")
    fake_cluster.create_target_pod("cart-1", "shop", node="node-b")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    entry = bindir / "kubectl-gadget"  # what an installed entry point looks like
    entry.write_text(f"#!{sys.executable}\nimport sys\nfrom kubectl_gadget.cli import main\n"
                     "sys.exit(main())\n")
    entry.chmod(0o755)
    (bindir / "kubectl_complete-gadget").symlink_to("kubectl-gadget")
    env = _env(PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}",
               KUBECONFIG=str(fake_cluster.kubeconfig_path))

    def kubectl_complete(*words: str) -> tuple[list[str], str]:
        proc = subprocess.run(["kubectl", "__complete", "gadget", *words], capture_output=True,
                              text=True, timeout=60, env=env)
        lines = proc.stdout.splitlines()
        return [line.split("\t")[0] for line in lines[:-1]], lines[-1]

    subcommands, directive = kubectl_complete("")
    assert "run" in subcommands and "completion" in subcommands and directive == ":4"
    assert kubectl_complete("run", "trace_op") == (["trace_open"], ":4")
    assert kubectl_complete("run", "trace_open", "-o", "y") == (["yaml"], ":4")
    assert kubectl_complete("run", "trace_open", "-n", "shop", "-p", "") == (["cart-1"], ":4")
