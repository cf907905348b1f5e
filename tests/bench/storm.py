"""An open() storm at a fixed offered rate: `python storm.py COUNT RATE START [IDLE]`.

START is a delay in seconds (so a tracer can attach to its pid), or `probe`: then it opens
PROBE_PATH every 20 ms until a byte arrives on stdin (the caller saw a probe in the tracer's
output, so the tracer is attached and delivering) and only then starts. It calls open() on
STORM_PATH COUNT times, paced in 1 ms slices to RATE calls per second (RATE 0: as fast as it
can), then sleeps IDLE seconds (an idle run: COUNT 0 and IDLE the storm's duration), and prints
the rate it achieved on stderr as `offered N in S s cpu C s` (C: its CPU time in the storm).
"""

import os
import select
import sys
import time

STORM_PATH = b"/nonexistent/kubectl-gadget-bench"
PROBE_PATH = b"/nonexistent/kubectl-gadget-probe"


def _open(path: bytes) -> None:
    try:
        os.close(os.open(path, os.O_RDONLY))
    except OSError:
        pass


def _probe_until_go() -> None:
    while True:
        _open(PROBE_PATH)
        ready, _, _ = select.select([0], [], [], 0.02)
        if ready:
            os.read(0, 1)
            return


def _storm(count: int, rate: float) -> int:
    chunk = max(1, int(rate / 1000)) if rate > 0 else 1000
    start = time.perf_counter()
    done = 0
    while done < count:
        for _ in range(min(chunk, count - done)):
            try:
                os.open(STORM_PATH, os.O_RDONLY)
            except OSError:
                pass
        done += min(chunk, count - done)
        if rate > 0:
            ahead = start + done / rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)
    return done


def main() -> None:
    count, rate, start = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    idle = float(sys.argv[4]) if len(sys.argv) > 4 else 0.0
    if start == "probe":
        _probe_until_go()
    else:
        time.sleep(float(start))
    t0, c0 = time.perf_counter(), time.process_time()
    done = _storm(count, rate)
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    time.sleep(idle)
    print(f"offered {done} in {elapsed:.3f} s cpu {cpu:.3f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
