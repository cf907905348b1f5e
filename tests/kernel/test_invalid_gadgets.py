"""Invalid gadgets stop the runner with `gadget_invalid` (exit 3), an `error` and an `end`.

Each case is a real gadget, built from tests/data/gadgets and then broken the way a gadget
author or a corrupted download would: a companion name that clashes with a member, a param
default that is not a value, an unbounded column width, gadget.yaml that is a directory, an
extern no loader can resolve, a BTF type id out of range (which crashed libbpf). None needs
root: the spec is read, and libbpf's open runs, before anything touches the kernel.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from kubectl_gadget.errors import BuildError
from kubectl_gadget.image.build import build_dir
from node_runner.gadget.elf import ElfFile
from tests.conftest import TEST_GADGETS_SRC
from tests.kernel.runner_proc import RunnerProcess, run_to_end
from tests.unit.test_schema import _type_records

NETABI = TEST_GADGETS_SRC / "netabi"


def _invalid(gadget: Path) -> str:
    runner = run_to_end(gadget, "--no-prepare-host", "--timeout", "5")
    assert runner.returncode == 3, runner.stderr()
    (error,) = runner.of_type("error")
    end = runner.end()
    assert (error["code"], end["reason"], end["exit_code"]) == ("gadget_invalid", "error", 3)
    assert "Traceback" not in runner.stderr()
    return str(error["message"])


def _copy(built: Path, tmp: Path) -> Path:
    out = tmp / built.name
    shutil.copytree(built, out)
    return out


def test_companion_clash_is_an_invalid_gadget(build_gadget) -> None:  # type: ignore[no-untyped-def]
    message = _invalid(build_gadget(TEST_GADGETS_SRC / "clash"))
    assert "'fd_raw' would add a readable field 'fd'" in message


def test_bad_param_default_is_an_invalid_gadget(build_gadget, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    g = _copy(build_gadget(NETABI), tmp_path)
    meta = (g / "gadget.yaml").read_text().replace('defaultValue: ""', 'defaultValue: "lots"')
    (g / "gadget.yaml").write_text(meta)
    assert _invalid(g) == ("reading gadget netabi: gadget.yaml: default of param marker: "
                           "'lots' is not an integer")


def test_huge_column_width_is_refused(build_gadget, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    g = _copy(build_gadget(NETABI), tmp_path)
    meta = (g / "gadget.yaml").read_text().replace(
        "description: source endpoint", "columns.width: 99999999999")
    (g / "gadget.yaml").write_text(meta)
    assert "columns.width: '99999999999' is not a column width" in _invalid(g)


def test_gadget_yaml_that_is_a_directory(build_gadget, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    g = _copy(build_gadget(NETABI), tmp_path)
    (g / "gadget.yaml").unlink()
    (g / "gadget.yaml").mkdir()
    assert "gadget.yaml: Is a directory" in _invalid(g)
    src = tmp_path / "src" / "netabi"
    shutil.copytree(NETABI, src)
    (src / "gadget.yaml").unlink()
    (src / "gadget.yaml").mkdir()
    with pytest.raises(BuildError, match="gadget.yaml is not a regular file"):
        build_dir(src, tmp_path / "out" / "netabi")


def test_out_of_range_type_id_never_reaches_libbpf(build_gadget, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A VAR of the .maps section pointing past the last type made libbpf's open segfault."""
    g = _copy(build_gadget(NETABI), tmp_path)
    obj = g / "program.bpf.o"
    data = bytearray(obj.read_bytes())
    btf = ElfFile.parse(bytes(data)).get_section(".BTF")
    assert btf is not None
    start = bytes(data).index(bytes(btf.data))
    _kind, pos = _type_records(bytes(btf.data))["VAR:events_lost_samples"]
    struct.pack_into("<I", data, start + pos + 8, 0xFF00)  # the VAR's type id
    obj.write_bytes(bytes(data))
    assert "refers to type id 65280" in _invalid(g)


def test_unresolved_extern(tmp_path: Path) -> None:
    """Refused by the build (the compiler's message), and by the runner if built elsewhere."""
    src = tmp_path / "src" / "netabi"
    shutil.copytree(NETABI, src)
    text = (src / "program.bpf.c").read_text().replace("#include <bpf/bpf_endian.h>\n", "")
    (src / "program.bpf.c").write_text(text)
    with pytest.raises(BuildError, match="declaration of function 'bpf_htonl'"):
        build_dir(src, tmp_path / "out" / "netabi")
    # Declared but defined nowhere: clang accepts it, libbpf cannot resolve it.
    (src / "program.bpf.c").write_text(text.replace(
        "#include <gadget/buffer.h>", "extern __u32 bpf_htonl(__u32);\n#include <gadget/buffer.h>"))
    built = build_dir(src, tmp_path / "out2" / "netabi")
    assert "failed to find BTF for extern 'bpf_htonl'" in _invalid(built)


def test_phase_records_say_what_the_runner_was_doing(build_gadget) -> None:  # type: ignore[no-untyped-def]
    """Before each libbpf step the runner says which, so a crash during it can be named."""
    with RunnerProcess(build_gadget(NETABI), "--timeout", "1") as r:
        r.wait(60)
    phases = [rec["phase"] for rec in r.of_type("phase")]
    if r.returncode == 0:
        assert phases == ["opening the object", "loading the programs",
                          "attaching the programs"]
    else:  # not root: the object opens, loading is refused
        assert phases[0] == "opening the object", subprocess.list2cmdline(r.argv)
