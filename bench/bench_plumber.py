"""Benchmark: a 3-stage pipeline as a PaPy Plumber vs pypeln and Pool.imap.

The pipeline: two CPU stages of about 0.2 ms each, then a trivial sink,
over 20,000 integers. Contenders, each run in a fresh process:

  papy        Plumber, the three Pipers on ONE shared process NuMap
  pypeln      pl.process.map x 3 (--workers processes for each CPU stage,
              1 for the sink; no batching: --chunk is its queue maxsize)
  pool-chain  multiprocessing Pool.imap(stage2, Pool.imap(stage1, data)),
              sink in the parent
  pool-single one Pool.imap of the composed function stage2(stage1(x)),
              sink in the parent (the lower bound for this machine)

Every contender uses --workers worker processes per CPU stage (default: CPU
count); papy and the Pools share one batch size (--chunk: Pool.imap
chunksize, NuMap stride = chunk x workers so that each worker batch is
`chunk` items). Medians of --repeat
runs and ratios to pool-single are printed in one table.

    /work/venv/bin/python bench/bench_plumber.py [--items 20000]
        [--repeat 3] [--workers N] [--chunk 32]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import _workloads
from _harness import run_json_script

STAGE_SECONDS = 0.0002
LOOPS = 1  # set from --loops: _workloads.burn loops that take STAGE_SECONDS


def stage1(x: int) -> int:
    _workloads.burn(x, LOOPS)
    return x + 1


def stage2(x: int) -> int:
    _workloads.burn(x, LOOPS)
    return x * 2


def sink(x: int) -> int:
    return x


def composed(x: int) -> int:
    return stage2(stage1(x))


def inbox_stage1(inbox: tuple) -> int:
    return stage1(inbox[0])


def inbox_stage2(inbox: tuple) -> int:
    return stage2(inbox[0])


def inbox_sink(inbox: tuple) -> int:
    return inbox[0]


def expected_checksum(items: int) -> int:
    return sum((x + 1) * 2 for x in range(items))


def run_papy(items: int, workers: int, chunk: int) -> tuple[float, int]:
    from numap import NuMap
    from papy.core import Piper, Plumber

    begin = time.perf_counter()
    numap = NuMap(worker_type="process", worker_num=workers, stride=chunk * workers)
    first = Piper(inbox_stage1, parallel=numap, name="stage1")
    second = Piper(inbox_stage2, parallel=numap, name="stage2")
    last = Piper(inbox_sink, parallel=numap, name="sink", track=True)
    plumber = Plumber(pipes=[(first, second, last)], name="bench")
    plumber.start([range(items)])
    plumber.run()
    plumber.wait()
    seconds = time.perf_counter() - begin
    tracked = plumber.stats["pipers_tracked"][last]  # to check, not timed
    plumber.stop()
    return seconds, sum(tracked.values())


def run_pypeln(items: int, workers: int, chunk: int) -> tuple[float, int]:
    import pypeln as pl

    begin = time.perf_counter()
    stream = pl.process.map(stage1, range(items), workers=workers, maxsize=chunk)
    stream = pl.process.map(stage2, stream, workers=workers, maxsize=chunk)
    stream = pl.process.map(sink, stream, workers=1, maxsize=chunk)
    checksum = sum(stream)
    return time.perf_counter() - begin, checksum


def run_pool_chain(items: int, workers: int, chunk: int) -> tuple[float, int]:
    import multiprocessing

    begin = time.perf_counter()
    with multiprocessing.Pool(workers) as pool:
        firsts = pool.imap(stage1, range(items), chunksize=chunk)
        seconds = pool.imap(stage2, firsts, chunksize=chunk)
        checksum = sum(sink(x) for x in seconds)
        return time.perf_counter() - begin, checksum


def run_pool_single(items: int, workers: int, chunk: int) -> tuple[float, int]:
    import multiprocessing

    begin = time.perf_counter()
    with multiprocessing.Pool(workers) as pool:
        results = pool.imap(composed, range(items), chunksize=chunk)
        checksum = sum(sink(x) for x in results)
        return time.perf_counter() - begin, checksum


CONTENDERS = {
    "papy": run_papy,
    "pypeln": run_pypeln,
    "pool-chain": run_pool_chain,
    "pool-single": run_pool_single,
}


def child(name: str, items: int, workers: int, chunk: int) -> None:
    # Timed inside each contender: from building the pool/pipeline to the
    # last result; imports and the final shutdown are not timed.
    seconds, checksum = CONTENDERS[name](items, workers, chunk)
    print(json.dumps({"seconds": seconds, "checksum": checksum}))


def measure(name: str, items: int, workers: int, chunk: int, loops: int) -> float:
    command = [
        __file__,
        "--child",
        name,
        "--items",
        str(items),
        "--workers",
        str(workers),
        "--chunk",
        str(chunk),
        "--loops",
        str(loops),
    ]
    result = run_json_script(command, timeout=600)
    if result["checksum"] != expected_checksum(items):
        raise RuntimeError(f"{name} returned a wrong checksum {result['checksum']}")
    return result["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--child", choices=sorted(CONTENDERS))
    parser.add_argument("--loops", type=int, default=0, help="default: calibrate")
    args = parser.parse_args()
    global LOOPS
    LOOPS = args.loops or _workloads.calibrate_loops(STAGE_SECONDS)
    if args.child:
        child(args.child, args.items, args.workers, args.chunk)
        return
    print(
        f"{args.items} items, 2 x {STAGE_SECONDS * 1000:.1f} ms CPU stages + sink, "
        f"{args.workers} workers, chunk {args.chunk}, median of {args.repeat} "
        f"({LOOPS} loops per stage)"
    )
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(args.repeat):
        for name in CONTENDERS:  # interleaved, so load changes hit all alike
            seconds = measure(name, args.items, args.workers, args.chunk, LOOPS)
            times[name].append(seconds)
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians["pool-single"]
    print(f"{'contender':<12} {'median s':>9} {'vs pool-single':>15}  runs")
    for name in CONTENDERS:
        runs = " ".join(f"{t:.2f}" for t in times[name])
        print(f"{name:<12} {medians[name]:9.3f} {medians[name] / base:14.2f}x  {runs}")


if __name__ == "__main__":
    main()
