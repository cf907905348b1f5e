"""trace_init_module on this kernel: a process in its own mount namespace asks the kernel to
load modules that are not modules, which is safe anywhere: init_module() with a small ELF
image that has a `.modinfo` section naming a module (the kernel refuses it: no symbols, no
module struct; a kernel built without module support answers ENOSYS), init_module() with
garbage bytes, and finit_module() with an fd of a text file named like a compressed module.
Each call is a record with the errno the workload itself saw, the module name read from the
image or made from the file name, the parameters, the size, the fd, flags and file path; a
neighbour container making the same calls is filtered out."""

from __future__ import annotations

import errno
import json
import os
import platform
import secrets
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import needs_root_btf, needs_unshare
from tests.kernel.runner_proc import (
    Record,
    RunnerProcess,
    python_argv,
    stop_and_check_end,
    wait_exit,
)
from tests.workloads import ContainerWorkload, sleeping_container

pytestmark = [pytest.mark.kernel, needs_root_btf, needs_unshare]

# (init_module, finit_module) in this machine's syscall table
NUMBERS = {"x86_64": (175, 313), "aarch64": (105, 273)}
COMPRESSED_FILE = 4

LOADER = """
import ctypes, json, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
init_nr, finit_nr = int(sys.argv[1]), int(sys.argv[2])
image, path, params = bytes.fromhex(sys.argv[3]), sys.argv[4], sys.argv[5].encode()
def call(*args):
    ctypes.set_errno(0)
    ret = libc.syscall(*args)
    return ctypes.get_errno() if ret < 0 else 0
out = {'pid': os.getpid()}
buf = ctypes.create_string_buffer(image, len(image))
out['image'] = call(init_nr, buf, ctypes.c_size_t(len(image)), params)
junk = ctypes.create_string_buffer(b'\\x7fELFjunk' * 40, 400)
out['junk'] = call(init_nr, junk, ctypes.c_size_t(400), None)
fd = os.open(path, os.O_RDONLY)
out['fd'] = fd
out['file'] = call(finit_nr, fd, params, 4)
print(json.dumps(out), flush=True)
"""


def module_image(name: str) -> bytes:
    """A 64-bit little-endian ELF relocatable object with .modinfo and .shstrtab only."""
    modinfo = (b"license=GPL\0description=" + b"x" * 150 + b"\0\0\0name=" + name.encode() +
               b"\0vermagic=test\0")
    names = b"\0.modinfo\0.shstrtab\0"
    at_modinfo = 64
    at_names = at_modinfo + len(modinfo)
    shoff = (at_names + len(names) + 7) & ~7
    section = struct.Struct("<IIQQQQIIQQ")
    headers = (bytes(64) + section.pack(1, 1, 0, 0, at_modinfo, len(modinfo), 0, 0, 1, 0) +
               section.pack(10, 3, 0, 0, at_names, len(names), 0, 0, 1, 0))
    ehdr = (b"\x7fELF\x02\x01\x01" + bytes(9) +
            struct.pack("<HHIQQQIHHHHHH", 1, 62, 1, 0, 0, shoff, 0, 64, 0, 0, 64, 3, 2))
    body = ehdr + modinfo + names
    return body + bytes(shoff - len(body)) + headers


def _load(w: ContainerWorkload, name: str, path: Path, params: str) -> dict[str, Any]:
    numbers = NUMBERS.get(platform.machine())
    if numbers is None:
        pytest.skip(f"no syscall numbers for {platform.machine()}")
    proc = w.popen([*python_argv(LOADER), *map(str, numbers), module_image(name).hex(),
                    str(path), params], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    out: dict[str, Any] = json.loads(proc.stdout.readline() or b"{}")
    assert wait_exit(proc) == 0
    assert set(out) == {"pid", "image", "junk", "fd", "file"}, out
    return out


def _module_file(tmp_path: Path, stem: str) -> Path:
    path = tmp_path / f"{stem}.ko.xz"
    path.write_text("not a module\n")
    return path


def _errname(code: int) -> str:
    return errno.errorcode[code] if code else ""


def test_refused_module_loads(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    name = f"kg_{secrets.token_hex(4)}"
    path = _module_file(tmp_path, name.replace("_", "-"))
    with sleeping_container() as w, \
            RunnerProcess(built_gadgets["trace_init_module"], "--mntns", str(w.mntns_id)) as runner:
        runner.wait_schema()
        out = _load(w, name, path, "debug=1 mode=fast")
        runner.wait_event(lambda d: d["proc.pid"] == out["pid"] and d["syscall"] == "finit_module",
                          what="the finit_module record")
        stop_and_check_end(runner)

    mine = runner.events(lambda d: d["proc.pid"] == out["pid"])
    assert [d["syscall"] for d in mine] == ["init_module", "init_module", "finit_module"]
    image, junk, file = mine
    # A refused call, with the errno the caller got (ENOSYS without module support).
    assert all(out[k] != 0 for k in ("image", "junk", "file")), out
    assert (image["error"], junk["error"], file["error"]) == \
        (_errname(out["image"]), _errname(out["junk"]), _errname(out["file"]))
    assert image["error_raw"] == out["image"]
    assert (image["name"], image["param_values"], image["len"]) == \
        (name, "debug=1 mode=fast", len(module_image(name)))
    assert (image["fd"], image["filepath"], image["flags"], image["syscall_raw"]) == (-1, "", "", 0)
    assert (junk["name"], junk["param_values"], junk["len"]) == ("", "", 400)
    assert (file["name"], file["filepath"], file["fd"]) == (name, str(path), out["fd"])
    assert (file["flags"], file["flags_raw"]) == ("COMPRESSED_FILE", COMPRESSED_FILE)
    assert (file["param_values"], file["len"], file["syscall_raw"]) == ("debug=1 mode=fast", 0, 1)
    assert image["proc.comm"].startswith("python")
    assert (image["proc.tid"], image["proc.creds.uid"]) == (out["pid"], os.getuid())
    assert image["proc.mntns_id"] == w.mntns_id
    assert image["runtime.containerId"] == w.container_id
    assert image["timestamp_raw"] <= junk["timestamp_raw"] <= file["timestamp_raw"]


def test_container_filter(built_gadgets: dict[str, Path], tmp_path: Path) -> None:
    path = _module_file(tmp_path, "kg-filter")
    with sleeping_container() as target, sleeping_container() as neighbour, \
            RunnerProcess(built_gadgets["trace_init_module"],
                          "--container-id", target.container_id) as runner:
        runner.wait_schema()
        noisy = _load(neighbour, "kg_noisy", path, "")
        out = _load(target, "kg_target", path, "")
        runner.wait_event(lambda d: d["proc.pid"] == out["pid"] and d["syscall"] == "finit_module",
                          what="the target's finit_module")
        stop_and_check_end(runner)

    got: list[Record] = runner.events()
    assert {d["proc.mntns_id"] for d in got} == {target.mntns_id}
    assert not runner.events(lambda d: d["proc.pid"] == noisy["pid"])
    assert [d["name"] for d in got if d["proc.pid"] == out["pid"]] == \
        ["kg_target", "", "kg_filter"]
