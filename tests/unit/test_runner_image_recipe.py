"""The two recipes of the runner image agree: node_runner/Dockerfile and `make runner-image`.

Docker users build with the Dockerfile, everyone else with mmdebstrap
(kubectl_gadget/release/runner_image.py); both must give the same runtime: the same Debian
packages, the same paths for the runner and the gadgets, the same entry point and environment.
Also checks the layer normalisation on a small tree (fixed owners, times and modes of our
files, no setuid bits, no device nodes) without bootstrapping Debian.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import tarfile
from pathlib import Path

from kubectl_gadget.release import runner_image
from tests.conftest import REPO

DOCKERFILE = REPO / "node_runner" / "Dockerfile"


def _final_stage() -> str:
    return DOCKERFILE.read_text().rsplit("\nFROM ", 1)[1]


def test_same_debian_packages() -> None:
    text = _final_stage().replace("\\\n", " ")
    (install,) = re.findall(r"apt-get install -y --no-install-recommends ([^&]+)", text)
    purged = set(re.findall(r"apt-get purge -y ([^&]+)", text)[0].split())
    assert set(install.split()) - purged == set(runner_image.PACKAGES)


def test_same_paths_entry_point_and_environment() -> None:
    text = _final_stage()
    entry = re.search(r"^ENTRYPOINT (.+)$", text, re.M)
    assert entry and json.loads(entry.group(1)) == runner_image.ENTRYPOINT
    env_line = re.search(r"^ENV (.+)$", text, re.M)
    assert env_line
    docker_env = dict(kv.split("=", 1) for kv in env_line.group(1).split())
    ours = dict(kv.split("=", 1) for kv in runner_image.ENV)
    assert {k: ours[k] for k in docker_env} == docker_env
    copies = re.findall(r"^COPY (?:--from=\S+ )?\S+ (\S+)$", text, re.M)
    assert copies == [f"/{runner_image.APP}/node_runner", f"/{runner_image.GADGETS}",
                      f"/{runner_image.RUNTIME}"]
    assert f"--target /{runner_image.APP}/lib" in text


def test_layer_normalises_owners_times_and_modes(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    app = root / runner_image.APP / "node_runner"
    app.mkdir(parents=True)
    (app / "cli.py").write_text("print()\n")
    os.chmod(app / "cli.py", 0o666)
    tool = root / "usr" / "bin" / "tool"
    tool.parent.mkdir(parents=True)
    tool.write_bytes(b"\x7fELF")
    os.chmod(tool, 0o4755)
    if os.geteuid() == 0:
        os.chown(app / "cli.py", 1000, 1000)
    os.mkfifo(root / "fifo")
    blob, diff_id = runner_image.layer(root)
    again, diff_again = runner_image.layer(root)
    assert (blob, diff_id) == (again, diff_again)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert "fifo" not in members
    ours = members[f"{runner_image.APP}/node_runner/cli.py"]
    assert (ours.uid, ours.gid, stat.S_IMODE(ours.mode), ours.mtime) == (0, 0, 0o644, 0)
    assert stat.S_IMODE(members["usr/bin/tool"].mode) == 0o755
    assert all(m.mtime == 0 for m in members.values())
