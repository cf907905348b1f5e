"""Let this machine run another architecture's programs: qemu-user-static in binfmt_misc.

Bootstrapping Debian for a foreign architecture runs that architecture's maintainer scripts
in a chroot, so the kernel must hand its ELF files to qemu. `ensure(arch)` makes that so, and
is cheap to call before every build: binfmt_misc is mounted when it is not, and Debian's
qemu-user-static entry for the architecture (its /usr/lib/binfmt.d file, the one systemd or
binfmt-support would register at boot) is registered with the F flag when no entry of that
name exists. F makes the kernel open the interpreter once, at registration, so programs run
inside any chroot or container without a copy of qemu in it.
The traps avoided: changing or removing an entry somebody else registered (one that is
disabled or lacks F is reported with the fix, never touched), a registration that looks done
but cannot run anything (the entry is read back), and a bare mount or write failure where the
missing package or permission should be named.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubectl_gadget.errors import BuildError
from node_runner.packaged import oci_arch

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")
CONF_DIR = Path("/usr/lib/binfmt.d")  # where Debian's qemu-user-static puts its entries
QEMU_NAMES = {"amd64": "x86_64", "arm64": "aarch64"}  # OCI architecture -> qemu's name
PACKAGE = "qemu-user-static"


@dataclass(frozen=True)
class Entry:
    """A binfmt_misc entry as /proc/sys/fs/binfmt_misc/NAME shows it."""

    enabled: bool
    interpreter: str
    flags: str


def parse_entry(text: str) -> Entry:
    fields = dict(line.split(" ", 1) for line in text.splitlines()[1:] if " " in line)
    return Entry(enabled=text.startswith("enabled"),
                 interpreter=fields.get("interpreter", "").strip(),
                 flags=fields.get("flags:", "").strip())


def registration_line(conf: str) -> tuple[str, str]:
    """(register line with the F flag added when missing, interpreter) of a binfmt.d file's
    `:name:type:offset:magic:mask:interpreter:flags` line."""
    for line in conf.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            sep = line[0]
            fields = line[1:].split(sep)
            if len(fields) != 7:
                break
            if "F" not in fields[6]:
                fields[6] += "F"
            return sep + sep.join(fields), fields[5]
    raise BuildError(f"reading {PACKAGE}'s binfmt entry: no line ':name:type:offset:magic:"
                     f"mask:interpreter:flags' in it")


def _mount(binfmt: Path) -> None:
    with open("/proc/filesystems") as f:
        if not any(line.split()[-1:] == ["binfmt_misc"] for line in f):
            raise BuildError("setting up binfmt_misc: this kernel has no binfmt_misc "
                             "(CONFIG_BINFMT_MISC), so it cannot run other architectures' programs")
    proc = subprocess.run(["mount", "-t", "binfmt_misc", "binfmt_misc", str(binfmt)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not (binfmt / "register").exists():
        raise BuildError(f"mounting binfmt_misc on {binfmt}: {proc.stderr.strip() or 'failed'} "
                         "(needs root with CAP_SYS_ADMIN)")


def ensure(arch: str, binfmt: Path = BINFMT_DIR, conf_dir: Path = CONF_DIR) -> list[str]:
    """Make programs of `arch` (OCI name) runnable here; return what was done (nothing when
    `arch` is this machine's or its entry is already registered with F)."""
    if arch == oci_arch():
        return []
    qemu = QEMU_NAMES.get(arch)
    if qemu is None:
        raise BuildError(f"running {arch} programs: no qemu-user emulator known for {arch}")
    what = f"running {arch} programs here (qemu-{qemu} in binfmt_misc)"
    conf = conf_dir / f"qemu-{qemu}.conf"
    if not conf.is_file():
        raise BuildError(f"{what}: {conf} not found (apt-get install {PACKAGE})")
    line, interpreter = registration_line(conf.read_text())
    if not Path(interpreter).exists():
        raise BuildError(f"{what}: {interpreter} not found (apt-get install {PACKAGE})")
    done = []
    if not (binfmt / "register").exists():
        _mount(binfmt)
        done.append(f"mounted binfmt_misc on {binfmt}")
    name = f"qemu-{qemu}"
    if not (binfmt / name).exists():
        try:
            (binfmt / "register").write_text(line + "\n")
        except OSError as exc:
            raise BuildError(f"{what}: registering {name}: {exc.strerror or exc} "
                             "(needs root with CAP_SYS_ADMIN)") from None
        done.append(f"registered {name} in binfmt_misc (flags {line.rsplit(line[0], 1)[1]})")
    try:
        entry = parse_entry((binfmt / name).read_text())
    except OSError as exc:
        raise BuildError(f"{what}: reading {binfmt / name}: {exc.strerror or exc}") from None
    if not entry.enabled:
        raise BuildError(f"{what}: {binfmt / name} exists but is disabled; it was not "
                         f"registered by this build, so it is left alone: enable it with "
                         f"`echo 1 > {binfmt / name}`")
    if "F" not in entry.flags:
        raise BuildError(f"{what}: {binfmt / name} is registered without the F flag (flags "
                         f"'{entry.flags}'), so its interpreter would have to exist inside "
                         f"the chroot; it was not registered by this build, so it is left "
                         f"alone: remove it (`echo -1 > {binfmt / name}`) and build again to "
                         f"register it with F")
    return done
