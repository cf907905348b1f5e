"""`python -m kubectl_gadget.release wheel|dist|check-krew|runner-image`: the steps behind make.

`dist` builds the one-file binary, its archive `kubectl-gadget_vVERSION_linux_ARCH.tar.gz` and
the krew manifest `gadget.yaml` beside it (checked before it is written out);
`check-krew MANIFEST --archive FILE` checks a manifest as `kubectl krew install` would;
`runner-image --layout DIR --tag TAG` builds the runner image into an OCI image layout.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import yaml

from kubectl_gadget import __version__
from kubectl_gadget.errors import BuildError
from kubectl_gadget.release import dist, krew, runner_image
from node_runner.packaged import oci_arch

RELEASES = "https://github.com/kubectl-gadget/kubectl-gadget/releases/download"


def _dist(out: Path, base_uri: str) -> None:
    with tempfile.TemporaryDirectory(prefix="kubectl-gadget-dist-") as scratch:
        binary = dist.build_binary(out, Path(scratch))
    name = f"kubectl-gadget_v{__version__}_linux_{oci_arch()}.tar.gz"
    archive = dist.archive(binary, out / name)
    doc = krew.manifest(__version__, {("linux", oci_arch()): archive}, base_uri)
    krew.check(doc, {doc["spec"]["platforms"][0]["uri"]: archive})
    (out / f"{krew.PLUGIN}.yaml").write_text(krew.dump(doc))
    for path in (binary, archive, out / f"{krew.PLUGIN}.yaml"):
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB)")


def _check_krew(manifest: Path, archives: list[Path]) -> None:
    try:
        doc = yaml.safe_load(manifest.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BuildError(f"reading krew manifest {manifest}: {exc}") from None
    by_name = {a.name: a for a in archives}
    platforms = (doc.get("spec") or {}).get("platforms") or [] if isinstance(doc, dict) else []
    krew.check(doc, {p["uri"]: by_name[p["uri"].rsplit("/", 1)[-1]] for p in platforms
                     if isinstance(p, dict) and str(p.get("uri", "")).rsplit("/", 1)[-1]
                     in by_name})
    print(f"{manifest}: valid")


def _runner_image(layout: Path, tag: str, arches: list[str], mirror: str) -> None:
    with tempfile.TemporaryDirectory(prefix="kubectl-gadget-runner-image-") as scratch:
        desc = runner_image.build_image(layout, tag, arches, Path(scratch), mirror,
                                        say=lambda line: print(line, file=sys.stderr))
    print(f"oci:{layout}:{tag} {desc['digest']}")
    for size, arch in runner_image.sizes(layout, desc):
        print(f"  linux/{arch}: {size / 1e6:.1f} MB compressed")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m kubectl_gadget.release")
    sub = p.add_subparsers(dest="command", required=True)
    w = sub.add_parser("wheel", help="sdist and wheel carrying the gadgets")
    w.add_argument("--out", type=Path, default=Path("dist"))
    d = sub.add_parser("dist", help="one-file binary, its archive and the krew manifest")
    d.add_argument("--out", type=Path, default=Path("dist"))
    d.add_argument("--base-uri", default=f"{RELEASES}/v{__version__}")
    c = sub.add_parser("check-krew", help="check a krew manifest (and its archives)")
    c.add_argument("manifest", type=Path)
    c.add_argument("--archive", type=Path, action="append", default=[])
    r = sub.add_parser("runner-image", help="the runner image as an OCI index (mmdebstrap)")
    r.add_argument("--layout", type=Path, default=Path("build/runner-image"))
    r.add_argument("--tag", default=__version__)
    r.add_argument("--arch", action="append",
                   help="OCI architecture, repeatable (default: every one with a vmlinux.h, "
                   "amd64 and arm64; a foreign one is built under qemu-user-static)")
    r.add_argument("--mirror", default=runner_image.MIRROR)
    ns = p.parse_args(argv)
    try:
        if ns.command == "wheel":
            with tempfile.TemporaryDirectory(prefix="kubectl-gadget-wheel-") as scratch:
                for path in dist.build_wheel(ns.out, Path(scratch)):
                    print(path)
        elif ns.command == "dist":
            _dist(ns.out, ns.base_uri)
        elif ns.command == "runner-image":
            _runner_image(ns.layout, ns.tag, ns.arch or runner_image.default_arches(), ns.mirror)
        else:
            _check_krew(ns.manifest, ns.archive)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
