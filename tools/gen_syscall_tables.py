"""Regenerate node_runner/syscall_table.py from the kernel UAPI headers on this machine.

    python3 tools/gen_syscall_tables.py > node_runner/syscall_table.py

x86_64 numbers come from <asm/unistd_64.h>; arm64 uses the generic table
(<asm-generic/unistd.h>) with the __ARCH_WANT_* switches arm64 turns on. Both are read by
running the C preprocessor (clang -E -dM) and resolving aliases such as __NR3264_fcntl.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

ARM64_WANTS = ("RENAMEAT", "NEW_STAT", "SET_GET_RLIMIT", "SYS_CLONE3", "MEMFD_SECRET")
X86_64_HEADER = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
GENERIC_HEADER = "/usr/include/asm-generic/unistd.h"


def macros(header: str, defines: list[str]) -> dict[str, str]:
    out = subprocess.run(["clang", "-E", "-dM", "-x", "c", *defines, header],
                         check=True, capture_output=True, text=True).stdout
    found = {}
    for line in out.splitlines():
        m = re.match(r"#define (\w+) (.+)$", line)
        if m:
            found[m.group(1)] = m.group(2).strip()
    return found


def table(defs: dict[str, str]) -> dict[int, str]:
    def value(text: str, depth: int = 0) -> int | None:
        text = text.strip("() ")
        if re.fullmatch(r"\d+", text):
            return int(text)
        if depth < 8 and text in defs:
            return value(defs[text], depth + 1)
        m = re.fullmatch(r"(\w+)\s*\+\s*(\d+)", text)
        if m and depth < 8:
            base = value(m.group(1), depth + 1)
            return None if base is None else base + int(m.group(2))
        return None

    out: dict[int, str] = {}
    for name, text in defs.items():
        if not name.startswith("__NR_") or name in ("__NR_syscalls", "__NR_arch_specific_syscall"):
            continue
        nr = value(text)
        if nr is not None:
            out.setdefault(nr, name[len("__NR_"):])
    return dict(sorted(out.items()))


def render(name: str, t: dict[int, str]) -> str:
    body = " ".join(f"{nr}:{call}" for nr, call in t.items())
    wrapped = textwrap.fill(body, 92, initial_indent="    ", subsequent_indent="    ")
    return f'{name} = """\n{wrapped}\n"""\n'


def main() -> None:
    x86 = table(macros(X86_64_HEADER, []))
    arm = table(macros(GENERIC_HEADER, ["-D__BITS_PER_LONG=64"]
                       + [f"-D__ARCH_WANT_{w}" for w in ARM64_WANTS]))
    sys.stdout.write('"""Syscall numbers -> names for x86_64 and arm64 (generated; do not edit).\n\n'
                     "Made by tools/gen_syscall_tables.py from the kernel UAPI headers "
                     "(asm/unistd_64.h,\nasm-generic/unistd.h with arm64's switches). "
                     'Format: "number:name" pairs.\n"""\n\n')
    sys.stdout.write(render("X86_64", x86) + "\n" + render("ARM64", arm))


if __name__ == "__main__":
    main()
