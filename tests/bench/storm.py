"""An open() storm at a fixed offered rate: `python storm.py COUNT RATE START_DELAY`.

It waits START_DELAY seconds (so a tracer can attach to its pid), then calls open() on a
missing path COUNT times, paced in 1 ms slices to RATE calls per second, and prints the rate it
achieved on stderr as `offered N in S s`.
"""

import os
import sys
import time


def main() -> None:
    count, rate, delay = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    time.sleep(delay)
    path = b"/nonexistent/kubectl-gadget-bench"
    chunk = max(1, int(rate / 1000))
    start = time.perf_counter()
    done = 0
    while done < count:
        for _ in range(chunk):
            try:
                os.open(path, os.O_RDONLY)
            except OSError:
                pass
        done += chunk
        ahead = start + done / rate - time.perf_counter()
        if ahead > 0:
            time.sleep(ahead)
    print(f"offered {done} in {time.perf_counter() - start:.3f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
