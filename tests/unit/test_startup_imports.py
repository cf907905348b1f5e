"""Start-up cost: what `version` and the `--local` path must not import.

The Kubernetes client, the registry stack (oras, requests, cryptography) and the gadget spec
parser (ELF/BTF) each cost a tenth of a second or more to import; `version` needs none of
them and a `--local` run never the first two. Checked in a fresh interpreter.
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("kubernetes", "oras", "requests", "cryptography", "node_runner.gadget.spec")


def _modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport json, sys\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_version_imports_nothing_heavy() -> None:
    loaded = _modules("from kubectl_gadget.cli import main\nmain(['version'])")
    assert not [m for m in loaded if m.startswith(HEAVY)], sorted(loaded)


def test_the_local_run_path_does_not_import_the_cluster_or_registry_stack() -> None:
    loaded = _modules("import kubectl_gadget.cli, kubectl_gadget.launch, kubectl_gadget.local")
    assert not [m for m in loaded if m.startswith(HEAVY[:4])]
    assert "kubectl_gadget.cluster.kube" not in loaded
