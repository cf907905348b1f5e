"""The arm64 vmlinux.h generator's offline half: the kernel's BTF blob is found in a boot
image (raw, gzip'd, or wrapped in an EFI zboot image) next to byte runs that only look like a
BTF header, and the blob it returns is one bpftool dumps as C. The blob is a real one: the
.BTF section of a compiled gadget."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import pytest

from kubectl_gadget.errors import BuildError
from kubectl_gadget.release.vmlinux_btf import btf_blobs, decompress_kernel, dump_c, kernel_btf
from node_runner.gadget.elf import ElfFile


@pytest.fixture(scope="module")
def blob(built_gadgets: dict[str, Path]) -> bytes:
    elf = ElfFile.parse((built_gadgets["trace_open"] / "program.bpf.o").read_bytes())
    return bytes(elf.section(".BTF").data)


def _image(blob: bytes) -> bytes:
    # A header-shaped decoy (lengths past the end) before the blob, and code-like bytes around.
    decoy = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 16, 16, 1 << 30)
    return b"MZ\x40\xfa" + bytes(range(256)) * 8 + decoy + b"\x00" * 64 + blob + b"\xff" * 512


def _zboot(payload: bytes) -> bytes:
    head = bytearray(64)
    head[0:2], head[4:8] = b"MZ", b"zimg"
    struct.pack_into("<II", head, 8, 64, len(payload))
    head[24:28] = b"gzip"
    return bytes(head) + payload


@pytest.mark.parametrize("wrap", ["raw", "gzip", "zboot"])
def test_blob_is_found_in_a_boot_image(blob: bytes, wrap: str, tmp_path: Path) -> None:
    image = _image(blob)
    packed = {"raw": image, "gzip": gzip.compress(image, mtime=0),
              "zboot": _zboot(gzip.compress(image, mtime=0))}[wrap]
    assert decompress_kernel(packed) == image
    assert btf_blobs(image) == [blob]
    vmlinuz = tmp_path / "vmlinuz"
    vmlinuz.write_bytes(packed)
    assert kernel_btf(vmlinuz) == blob


def test_found_blob_dumps_as_c(blob: bytes, tmp_path: Path) -> None:
    if not shutil.which("bpftool"):
        pytest.skip("bpftool not installed")
    path = tmp_path / "btf"
    path.write_bytes(btf_blobs(_image(blob))[0])
    assert "struct event {" in dump_c(path)


def test_an_image_without_btf_is_refused(tmp_path: Path) -> None:
    vmlinuz = tmp_path / "vmlinuz-no-btf"
    vmlinuz.write_bytes(gzip.compress(b"MZ" + bytes(4096)))
    with pytest.raises(BuildError, match="no BTF found"):
        kernel_btf(vmlinuz)
    zboot = tmp_path / "vmlinuz-zstd"
    zboot.write_bytes(_zboot(b"").replace(b"gzip", b"zstd"))
    with pytest.raises(BuildError, match="only gzip"):
        kernel_btf(zboot)
