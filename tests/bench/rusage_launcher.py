"""Run a command and write its rusage: `python rusage_launcher.py OUT -- ARGV...`.

Why a launcher: on Linux a child's ru_maxrss starts from the RSS of the process it was
forked from (the mm counters are copied at fork and kept through exec), so a client spawned
straight from the benchmark, which hosts the fake API server, would report the benchmark's
RSS as its own peak. Spawned from this small process, the client's peak is its own.
The child's pid is written to OUT.pid as soon as it runs; its wait status, peak RSS (KiB) and
CPU seconds to OUT once it ended. Stdin, stdout and stderr are the child's.
"""

import json
import os
import subprocess
import sys


def main() -> int:
    out, sep, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
    assert sep == "--" and argv, __doc__
    proc = subprocess.Popen(argv)
    with open(out + ".pid.tmp", "w") as f:
        f.write(str(proc.pid))
    os.replace(out + ".pid.tmp", out + ".pid")
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    with open(out, "w") as f:
        json.dump({"exit_code": code, "maxrss_kib": usage.ru_maxrss,
                   "cpu": usage.ru_utime + usage.ru_stime}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
