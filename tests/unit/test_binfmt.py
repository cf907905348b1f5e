"""The binfmt_misc step of the runner image build, on a stand-in binfmt_misc directory.

What the step decides without touching the machine: the register line is Debian's
qemu-user-static line with the F flag added, a missing package is named, and an entry that
exists but is disabled or lacks F is reported with its fix and left as it was (nothing is
written to `register`). The real registration runs in the runner image group
(tests/dist/test_runner_image_arm64.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kubectl_gadget.errors import BuildError
from kubectl_gadget.release import binfmt
from node_runner.packaged import oci_arch

FOREIGN = "arm64" if oci_arch() == "amd64" else "amd64"
QEMU = binfmt.QEMU_NAMES[FOREIGN]
MAGIC = r"\x7f\x45\x4c\x46\x02\x01\x01\x00"
MASK = r"\xff\xff\xff\xff\xff\xff\xff\x00"


def _conf(tmp_path: Path, flags: str = "OP", interpreter: str = sys.executable) -> Path:
    conf_dir = tmp_path / "binfmt.d"
    conf_dir.mkdir()
    (conf_dir / f"qemu-{QEMU}.conf").write_text(
        f"# from the package\n:qemu-{QEMU}:M::{MAGIC}:{MASK}:{interpreter}:{flags}\n")
    return conf_dir


def _binfmt(tmp_path: Path, entry: str | None) -> Path:
    root = tmp_path / "binfmt_misc"
    root.mkdir()
    (root / "register").write_text("")
    (root / "status").write_text("enabled\n")
    if entry is not None:
        (root / f"qemu-{QEMU}").write_text(entry)
    return root


def _entry(state: str, flags: str) -> str:
    return (f"{state}\ninterpreter /usr/libexec/qemu-binfmt/{QEMU}-binfmt-P\nflags: {flags}\n"
            "offset 0\nmagic 7f454c460201010000\nmask ffffffffffffff00\n")


def test_register_line_gets_the_fix_binary_flag() -> None:
    line, interp = binfmt.registration_line(f"# c\n:qemu-x:M::{MAGIC}:{MASK}:/usr/bin/q:OPC\n")
    assert line == f":qemu-x:M::{MAGIC}:{MASK}:/usr/bin/q:OPCF"
    assert interp == "/usr/bin/q"
    line, _ = binfmt.registration_line(f":qemu-x:M::{MAGIC}:{MASK}:/usr/bin/q:F\n")
    assert line.endswith(":F")
    with pytest.raises(BuildError, match="no line"):
        binfmt.registration_line(":too:few:fields\n")


def test_entry_is_read_as_the_kernel_shows_it() -> None:
    entry = binfmt.parse_entry(_entry("enabled", "POCF"))
    assert entry == binfmt.Entry(True, f"/usr/libexec/qemu-binfmt/{QEMU}-binfmt-P", "POCF")
    assert not binfmt.parse_entry(_entry("disabled", "P")).enabled


def test_this_machines_architecture_needs_nothing(tmp_path: Path) -> None:
    assert binfmt.ensure(oci_arch(), tmp_path / "absent", tmp_path / "absent") == []


def test_missing_package_is_named(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="apt-get install qemu-user-static"):
        binfmt.ensure(FOREIGN, _binfmt(tmp_path, None), tmp_path / "no-binfmt.d")
    conf_dir = _conf(tmp_path, interpreter=str(tmp_path / "no-qemu"))
    with pytest.raises(BuildError, match=f"{tmp_path / 'no-qemu'} not found .apt-get install"):
        binfmt.ensure(FOREIGN, tmp_path / "binfmt_misc", conf_dir)


def test_unknown_architecture_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no qemu-user emulator known for s390x"):
        binfmt.ensure("s390x", tmp_path, tmp_path)


@pytest.mark.parametrize(("state", "flags", "message"), [
    ("disabled", "POF", "disabled; it was not registered by this build"),
    ("enabled", "PO", "without the F flag"),
])
def test_someone_elses_entry_is_reported_and_left_alone(tmp_path: Path, state: str, flags: str,
                                                        message: str) -> None:
    root = _binfmt(tmp_path, _entry(state, flags))
    before = (root / f"qemu-{QEMU}").read_text()
    with pytest.raises(BuildError, match=message):
        binfmt.ensure(FOREIGN, root, _conf(tmp_path))
    assert (root / f"qemu-{QEMU}").read_text() == before
    assert (root / "register").read_text() == ""


def test_an_entry_with_the_fix_binary_flag_is_used_as_it_is(tmp_path: Path) -> None:
    root = _binfmt(tmp_path, _entry("enabled", "POF"))
    assert binfmt.ensure(FOREIGN, root, _conf(tmp_path)) == []
    assert (root / "register").read_text() == ""


def test_a_missing_entry_is_registered_with_the_fix_binary_flag(tmp_path: Path) -> None:
    # A plain directory does not create the entry as the kernel does: the step writes Debian's
    # line with F, then reads the entry back and says it is missing.
    root = _binfmt(tmp_path, None)
    with pytest.raises(BuildError, match=f"reading {root / f'qemu-{QEMU}'}"):
        binfmt.ensure(FOREIGN, root, _conf(tmp_path))
    assert (root / "register").read_text() == (
        f":qemu-{QEMU}:M::{MAGIC}:{MASK}:{sys.executable}:OPF\n")
