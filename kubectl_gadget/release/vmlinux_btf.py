"""Regenerates `gadgets/include/<arch>/vmlinux.h` from a Debian kernel package of another
architecture (`make vmlinux-arm64`), for building the in-tree gadgets for it.

Steps: download the kernel image package with apt for that architecture (a private apt state
under a scratch directory, so the machine's own apt configuration is left as it is), unpack
`boot/vmlinuz-*`, undo its compression (a raw arm64 `Image`, a gzip stream, or an EFI zboot
image wrapping a gzip stream), find the kernel's BTF blob in it and dump it as C with
`bpftool btf dump file BLOB format c`.

Why a raw blob: an arm64 vmlinuz is a boot image, not an ELF file, so there is no `.BTF`
section to read. The blob starts with the BTF header (struct btf_header, little-endian):
u16 magic 0xeB9F, u8 version 1, u8 flags, u32 hdr_len (24), then u32 type_off, type_len,
str_off and str_len, offsets counted from the end of the header. Its size is therefore
hdr_len + max(type_off + type_len, str_off + str_len). Every candidate is checked (sane
lengths, strings ending in NUL) and the largest one kept; bpftool validates it again when it
dumps it.
"""

from __future__ import annotations

import gzip
import re
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

from kubectl_gadget.errors import BuildError

BTF_MAGIC = b"\x9f\xeb"  # 0xeB9F little-endian
_HEADER = struct.Struct("<HBBIIIII")
# The kernel image package of a Debian flavour is linux-image-<version>-<flavour>; the
# flavour's metapackage points at the current one.
DEFAULT_PACKAGE = "linux-image-cloud-arm64"
DEFAULT_SUITE = "sid"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


def decompress_kernel(data: bytes) -> bytes:
    """The uncompressed kernel image inside a vmlinuz (raw Image, gzip, or EFI zboot)."""
    if data[:2] == b"\x1f\x8b":
        return gzip.decompress(data)
    if data[:2] == b"MZ" and data[4:8] == b"zimg":
        # EFI zboot: u32 payload offset and size at 8 and 12, the compression's name at 24.
        offset, size = struct.unpack_from("<II", data, 8)
        kind = data[24:32].rstrip(b"\0").decode("ascii", "replace")
        payload = data[offset:offset + size]
        if kind != "gzip":
            raise BuildError(f"EFI zboot kernel compressed with {kind!r}: only gzip is handled")
        return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(payload)
    return data


def btf_blobs(image: bytes) -> list[bytes]:
    """Every well-formed BTF blob (header + types + strings) found in a kernel image."""
    found = []
    pos = image.find(BTF_MAGIC)
    while pos >= 0:
        if pos + _HEADER.size <= len(image):
            magic, version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
                _HEADER.unpack_from(image, pos)
            end = pos + hdr_len + max(type_off + type_len, str_off + str_len)
            if (magic == 0xEB9F and version == 1 and hdr_len == _HEADER.size
                    and type_len > 0 and str_len > 0 and end <= len(image)
                    and image[pos + hdr_len + str_off] == 0
                    and image[pos + hdr_len + str_off + str_len - 1] == 0):
                found.append(image[pos:end])
        pos = image.find(BTF_MAGIC, pos + 1)
    return found


def kernel_btf(vmlinuz: Path) -> bytes:
    blobs = btf_blobs(decompress_kernel(vmlinuz.read_bytes()))
    if not blobs:
        raise BuildError(f"{vmlinuz}: no BTF found (a kernel built without "
                         "CONFIG_DEBUG_INFO_BTF?)")
    return max(blobs, key=len)


def dump_c(blob: Path) -> str:
    proc = subprocess.run(["bpftool", "btf", "dump", "file", str(blob), "format", "c"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"bpftool could not read the BTF blob: {proc.stderr.strip()}")
    return proc.stdout


def _apt(scratch: Path, arch: str, suite: str, mirror: str) -> list[str]:
    lists, cache = scratch / "lists", scratch / "cache"
    for d in (lists / "partial", cache / "archives" / "partial"):
        d.mkdir(parents=True, exist_ok=True)
    sources = scratch / "sources.list"
    sources.write_text(f"deb [arch={arch} signed-by={KEYRING}] {mirror} {suite} main\n")
    return ["-o", f"Dir::Etc::SourceList={sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={lists}", "-o", f"Dir::Cache={cache}",
            "-o", f"APT::Architecture={arch}", "-o", f"APT::Architectures::={arch}"]


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BuildError(f"{' '.join(cmd[:2])} failed: {proc.stderr.strip()[-800:]}")
    return proc.stdout


def fetch_vmlinuz(scratch: Path, arch: str, package: str, suite: str, mirror: str) -> Path:
    """Download the flavour's current kernel image package and unpack its vmlinuz."""
    opts = _apt(scratch, arch, suite, mirror)
    _run(["apt-get", *opts, "update"])
    # The metapackage depends on the versioned image package; newer Debian kernels move the
    # image itself into linux-binary-<version>, so follow that too.
    names = [package]
    for _ in range(3):
        depends = _run(["apt-cache", *opts, "depends", names[-1]])
        images = re.findall(r"Depends: (linux-(?:image|binary)-\d[^\s:]*)", depends)
        if not images:
            break
        names.append(images[-1] if images[-1].startswith("linux-binary-") else images[0])
    debs = scratch / "debs"
    debs.mkdir(exist_ok=True)
    _run(["apt-get", *opts, "download", *names[1:]], cwd=debs)
    unpacked = scratch / "root"
    for deb in sorted(debs.glob("*.deb")):
        _run(["dpkg-deb", "-x", str(deb), str(unpacked)])
    # Older packages ship boot/vmlinuz-<release>, newer ones usr/lib/modules/<release>/vmlinuz.
    found = [*sorted(unpacked.glob("boot/vmlinuz-*")),
             *sorted(unpacked.glob("usr/lib/modules/*/vmlinuz"))]
    if not found:
        raise BuildError(f"no boot/vmlinuz-* in {', '.join(names[1:])}")
    return found[0]


def kernel_release(vmlinuz: Path) -> str:
    if vmlinuz.name == "vmlinuz":
        return vmlinuz.parent.name
    return vmlinuz.name.removeprefix("vmlinuz-")


def generate(out: Path, arch: str, package: str, suite: str, mirror: str) -> str:
    """Write `out` (vmlinux.h with a header naming its kernel); return the kernel release."""
    with tempfile.TemporaryDirectory(prefix="kubectl-gadget-vmlinux-") as tmp:
        scratch = Path(tmp)
        vmlinuz = fetch_vmlinuz(scratch, arch, package, suite, mirror)
        release = kernel_release(vmlinuz)
        blob = scratch / "btf"
        blob.write_bytes(kernel_btf(vmlinuz))
        text = dump_c(blob)
    note = (f"/* Generated by `make vmlinux-{arch}` from the BTF of Debian's {arch} kernel "
            f"{release} ({package}, {suite}). */\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(note + text)
    return release


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m kubectl_gadget.release.vmlinux_btf")
    p.add_argument("--arch", default="arm64", help="Debian architecture (default arm64)")
    p.add_argument("--package", default=DEFAULT_PACKAGE)
    p.add_argument("--suite", default=DEFAULT_SUITE)
    p.add_argument("--mirror", default=DEFAULT_MIRROR)
    p.add_argument("--vmlinuz", type=Path, help="use this vmlinuz instead of downloading one")
    p.add_argument("--out", type=Path, required=True)
    ns = p.parse_args(argv)
    try:
        if ns.vmlinuz:
            with tempfile.TemporaryDirectory(prefix="kubectl-gadget-vmlinux-") as tmp:
                blob = Path(tmp) / "btf"
                blob.write_bytes(kernel_btf(ns.vmlinuz))
                ns.out.write_text(f"/* Generated from the BTF of {ns.vmlinuz.name}. */\n"
                                  + dump_c(blob))
            release = ns.vmlinuz.name
        else:
            release = generate(ns.out, ns.arch, ns.package, ns.suite, ns.mirror)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    print(f"{ns.out}: from kernel {release}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
