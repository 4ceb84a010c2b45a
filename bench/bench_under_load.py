"""NuMap beside busy processes: does the pipe watch cost the map its CPU?

    python bench/bench_under_load.py [--items N] [--repeats R] [--busy B]

Starts B busy loops (default: one per core), then times a 2-worker NuMap
of N tiny items (default 20,000; x + 1) at stride 1, buffer 2 (one item in
flight per worker: every item is a round trip), each run in a fresh
process, with the pipe watch off (NUMAP_WATCH_SECONDS=0) and on (0.001),
alternating. Prints each time and the median ratio on/off from this run.
Before the contention guard in numap/_watch.py, yielding beside the busy
loops made the watched runs about ten times slower than the unwatched ones.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

RUN = """
import sys, time
from numap import NuMap
items = int(sys.argv[1])
began = time.perf_counter()
with NuMap(lambda x: x + 1, range(items), worker_num=2, stride=1, buffer=2) as m:
    assert sum(1 for _ in m) == items
print(time.perf_counter() - began)
"""


def timed_run(items: int, watch: str) -> float:
    env = {**os.environ, "NUMAP_WATCH_SECONDS": watch}
    done = subprocess.run(
        [sys.executable, "-c", RUN, str(items)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    return float(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(args.busy)
    ]
    try:
        time.sleep(0.5)
        times: dict[str, list[float]] = {"0": [], "0.001": []}
        for repeat in range(args.repeats):
            for watch in times:
                seconds = timed_run(args.items, watch)
                times[watch].append(seconds)
                print(f"[{repeat + 1}] watch {watch:>5} s: {seconds:.2f} s", flush=True)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    off, on = statistics.median(times["0"]), statistics.median(times["0.001"])
    print(
        f"{args.items} tiny items, buffer 2, beside {args.busy} busy loops: "
        f"watch off {off:.2f} s, on {on:.2f} s (median); on/off = {on / off:.2f}"
    )


if __name__ == "__main__":
    main()
