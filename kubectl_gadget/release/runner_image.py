"""Build the runner's OCI image from Debian packages, without a container engine.

`mmdebstrap` makes a minimal Debian root filesystem (essential packages plus Python, its YAML,
crypto and HTTP libraries and libbpf) for each architecture, the same recipe for all (another
architecture than the machine's runs its maintainer scripts under qemu-user-static, set up by
`binfmt.ensure`); the runner's files are added the way node_runner/Dockerfile adds them
(`node_runner` in /opt/kubectl-gadget, oras beside it, the in-tree gadgets and the runner's
own objects compiled for that architecture in /usr/share/kubectl-gadget/gadgets and
.../runtime); the tree is packed into one gzip layer here, with fixed times and owners and no
device nodes; each architecture's manifest goes into one OCI index in an image layout
(`oci:DIR:TAG` for skopeo).
The traps avoided: a layer that differs on every build (times, the builder's uids), documents
and package caches nobody reads inflating the image, and a recipe that only a Docker engine
can run.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kubectl_gadget.errors import BuildError
from kubectl_gadget.image import build
from kubectl_gadget.release import binfmt, stage
from node_runner.oci.media import (
    OCI_IMAGE_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    canonical_json,
    descriptor,
)
from node_runner.oci.store import Store
from node_runner.packaged import oci_arch

SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-yaml", "python3-cryptography", "python3-requests",
            "python3-jsonschema", "python3-pyelftools", "libbpf1", "mount", "ca-certificates")
# Paths dpkg never unpacks into the image (documentation, translations).
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*",
                 "/usr/share/locale/*", "/usr/share/lintian/*", "/usr/share/bash-completion/*")
# Left behind by the bootstrap, read by nobody at run time.
PRUNED = ("var/cache/apt", "var/lib/apt/lists", "var/log", "var/cache/debconf/templates.dat-old",
          "var/lib/dpkg/available-old", "var/cache/ldconfig/aux-cache")
APP = "opt/kubectl-gadget"
GADGETS = "usr/share/kubectl-gadget/gadgets"
RUNTIME = "usr/share/kubectl-gadget/runtime"
ENTRYPOINT = ["python3", "-m", "node_runner"]
ENV = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
       f"PYTHONPATH=/{APP}:/{APP}/lib", "PYTHONDONTWRITEBYTECODE=1"]
EPOCH = 0  # every file time in the layer (SOURCE_DATE_EPOCH overrides)


def _run(cmd: Sequence[str], what: str) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-20:])
        raise BuildError(f"{what}: {Path(cmd[0]).name} exited with {proc.returncode}:\n{tail}")


def debian_rootfs(dest: Path, arch: str, mirror: str = MIRROR) -> Path:
    """A minimal Debian tree for `arch` (OCI name) in `dest`, made by mmdebstrap."""
    if not shutil.which("mmdebstrap"):
        raise BuildError("building the runner image: mmdebstrap not found "
                         "(apt-get install mmdebstrap)")
    if dest.exists():
        shutil.rmtree(dest)
    cmd = ["mmdebstrap", "--quiet", "--variant=essential", f"--architectures={arch}",
           f"--include={','.join(PACKAGES)}",
           "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
           *(f"--dpkgopt=path-exclude={p}" for p in DPKG_EXCLUDES), SUITE, str(dest), mirror]
    _run(cmd, f"bootstrapping Debian {SUITE} for {arch}")
    return dest


def add_runner(rootfs: Path, arch: str, repo: Path = stage.REPO) -> None:
    """Put node_runner, oras and the in-tree gadgets built for `arch` into `rootfs`."""
    app = rootfs / APP
    for name in stage.tracked_files(repo):
        if name.startswith("node_runner/") and name.endswith(".py"):
            target = app / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(repo / name, target)
    oras = f"oras=={importlib.metadata.version('oras')}"
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile",
          "--disable-pip-version-check", "--target", str(app / "lib"), oras],
         f"installing {oras} into the runner image")
    include = repo / "gadgets" / "include"
    for src in stage.in_tree_gadgets(repo):
        build.build_dir(src, rootfs / GADGETS / src.name, arch, str(include))
    for src in stage.runtime_objects(repo):
        build.build_dir(src, rootfs / RUNTIME / src.name, arch, str(include))
    for path in PRUNED:
        target = rootfs / path
        if target.is_dir():
            shutil.rmtree(target)
            target.mkdir()
        elif target.exists():
            target.unlink()
    for entry in (rootfs / "dev").iterdir():  # the runtime provides /dev
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def _normalised(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
    if info.ischr() or info.isblk() or info.isfifo():
        return None
    if "/__pycache__/" in f"/{info.name}/" and info.name.startswith(APP):
        return None
    info.mtime = min(info.mtime, int(os.environ.get("SOURCE_DATE_EPOCH", EPOCH)))
    info.uname = info.gname = ""
    info.mode &= ~0o6000  # no setuid/setgid programs: the runner needs none
    if info.name.startswith((APP, GADGETS, RUNTIME)):
        info.uid = info.gid = 0
        info.mode = 0o755 if info.isdir() or info.mode & 0o111 else 0o644
    return info


def layer(rootfs: Path) -> tuple[bytes, str]:
    """The rootfs as a gzip tar layer, and its diff id (the digest of the plain tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(_walk(rootfs)):
            rel = os.path.relpath(path, rootfs)
            info = _normalised(tar.gettarinfo(path, arcname=rel))
            if info is None:
                continue
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    plain = raw.getvalue()
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0) as gz:
        gz.write(plain)
    return packed.getvalue(), "sha256:" + hashlib.sha256(plain).hexdigest()


def _walk(root: Path) -> list[str]:
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        out += [os.path.join(dirpath, n) for n in dirnames + filenames]
    return out


def image_config(arch: str, diff_id: str) -> dict[str, Any]:
    return {"architecture": arch, "os": "linux", "created": "1970-01-01T00:00:00Z",
            "config": {"Entrypoint": ENTRYPOINT, "Env": ENV, "WorkingDir": "/"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
            "history": [{"created": "1970-01-01T00:00:00Z",
                         "created_by": f"mmdebstrap {SUITE} + node_runner (make runner-image)"}]}


def add_platform(store: Store, rootfs: Path, arch: str) -> dict[str, Any]:
    """Write one architecture's layer, config and manifest; return the manifest descriptor."""
    blob, diff_id = layer(rootfs)
    config = canonical_json(image_config(arch, diff_id))
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": descriptor(OCI_IMAGE_CONFIG, config),
                "layers": [descriptor("application/vnd.oci.image.layer.v1.tar+gzip", blob)]}
    store.write_blob(blob)
    store.write_blob(config)
    data = canonical_json(manifest)
    store.write_blob(data)
    return descriptor(OCI_MANIFEST, data, platform={"architecture": arch, "os": "linux"})


def default_arches() -> list[str]:
    """Every architecture the in-tree gadgets are built for (a checked-in vmlinux.h each),
    this machine's first."""
    arches = build.available_arches(stage.REPO / "gadgets" / "include")
    return sorted(arches, key=lambda arch: arch != oci_arch())


def build_image(layout: Path, tag: str, arches: Sequence[str], scratch: Path,
                mirror: str = MIRROR, say: Callable[[str], None] = lambda _: None
                ) -> dict[str, Any]:
    """Build the image index for `arches` into the OCI layout `layout`, tagged `tag`; a
    foreign architecture is bootstrapped under qemu-user emulation (binfmt.ensure)."""
    store = Store(layout)
    manifests = []
    for arch in arches:
        if arch not in build.available_arches(stage.REPO / "gadgets" / "include"):
            raise BuildError(f"building the runner image for {arch}: no vmlinux.h for it "
                             "under gadgets/include")
    for arch in dict.fromkeys(arches):
        for line in binfmt.ensure(arch):
            say(line)
        times = [time.monotonic()]
        rootfs = debian_rootfs(scratch / f"rootfs-{arch}", arch, mirror)
        times.append(time.monotonic())
        add_runner(rootfs, arch)
        times.append(time.monotonic())
        manifests.append(add_platform(store, rootfs, arch))
        shutil.rmtree(rootfs)
        times.append(time.monotonic())
        bootstrap, runner, pack = (b - a for a, b in zip(times, times[1:], strict=False))
        say(f"linux/{arch}: built in {times[-1] - times[0]:.0f} s (Debian {bootstrap:.0f} s, "
            f"runner and gadgets {runner:.0f} s, layer {pack:.0f} s)")
    index = canonical_json({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests})
    store.write_blob(index)
    desc = descriptor(OCI_INDEX, index)
    store.tag(tag, desc)
    return desc


def sizes(layout: Path, index_desc: dict[str, Any]) -> list[tuple[int, str]]:
    """(compressed size of layers + config, architecture) for each platform of the index."""
    store = Store(layout)
    out = []
    for m in store.read_manifest(index_desc["digest"])["manifests"]:
        manifest = store.read_manifest(m["digest"])
        total = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
        out.append((total, m["platform"]["architecture"]))
    return out
