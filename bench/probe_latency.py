"""Probes behind bench/README's "Why the remaining misses are where they are".

    python bench/probe_latency.py channel [N]   # bare loop on NuMap's channels
    python bench/probe_latency.py cpu-gap [--tuned]
    python bench/probe_latency.py sleep-trace [BUFFER]
    python bench/probe_latency.py cores
    python bench/probe_latency.py instructions   # needs valgrind

channel: N tiny items (default 20,000), 2 worker processes, one item each in
  flight, through ProcessChannel and the _protocol frames with the real
  worker loop, the parent doing nothing but send, poll, receive; then the
  same items through NuMap with its defaults and through
  multiprocessing.Pool.imap(chunksize=1). Shows what NuMap's own per-item
  bookkeeping costs on top of the pipes.
cpu-gap: 1,000 items of a 2 ms time-based spin on 2 processes; the idle gap
  between two items of one worker (time-based, so the VM's changing CPU
  speed does not enter).
cores: what this machine gives 2 busy processes: the loop rate of one
  process alone, then of each of two running at once (3 rounds of 2 s
  each); with shares balanced between them, a 2-worker map of CPU-bound
  items can be at most (sum of the two rates) / (rate alone) times faster
  than map.
instructions: the parent's CPU instructions per result on tiny items (x*2),
  NuMap tuned (stride 2048, buffer 8192) against Pool.imap(chunksize=1024),
  2 workers, counted by valgrind's callgrind: the difference between runs
  of 20,000 and 100,000 items, so that start-up and imports cancel out;
  then NuMap with its defaults and Pool.imap(chunksize=1) (a round trip
  per item, so 1,000 and 4,000 items: valgrind slows each ~50 times; Pool's
  count is that of its three threads in the parent).
  Unlike times, these counts do not move with the VM's speed. The watch is
  off (NUMAP_WATCH_SECONDS=0), so waiting for the (slowed) workers adds no
  instructions; what is counted is the parent's work. Takes a few minutes.
sleep-trace: sleep(0.01) over 1,000 items on 32 threads; per item, the time
  from the end of its sleep to being handed out, and from being handed out
  to the start of the item that took its buffer slot.
"""

from __future__ import annotations

import multiprocessing
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from _harness import run_json_script
from _workloads import double
from numap import NuMap, _protocol
from numap._channel import ProcessChannel


def _quantiles(values: list[float]) -> str:
    ordered = sorted(values)
    return (
        f"median {statistics.median(ordered) * 1e6:.0f} us, "
        f"p90 {ordered[int(len(ordered) * 0.9)] * 1e6:.0f} us, "
        f"mean {statistics.mean(ordered) * 1e6:.0f} us"
    )


def bare_channel_loop(n: int) -> float:
    start = time.perf_counter()
    channels = [ProcessChannel() for _ in range(2)]
    task_frame = _protocol.encode_task(0, _protocol.dumps_task([(double, (), {})]))
    poller = select.poll()
    by_fd = {}
    for channel in channels:
        channel.send(task_frame)
        poller.register(channel.waitable, select.POLLIN)
        by_fd[channel.waitable] = channel
    items = iter(range(n))
    in_flight = 0
    total = 0

    def send_next(channel: ProcessChannel) -> int:
        for x in items:
            prefix = _protocol.batch_prefix(x, 0, x, 1)
            channel.send(_protocol.dumps([x], prefix=prefix))
            return 1
        return 0

    for channel in channels:
        in_flight += send_next(channel)
    while in_flight:
        for fd, _ in poller.poll():
            channel = by_fd[fd]
            _, _, payload = _protocol.decode_result(channel.recv())
            values, _errors = _protocol.loads(payload)
            total += values[0]
            in_flight -= 1
            in_flight += send_next(channel)
    assert total == n * (n - 1)
    elapsed = time.perf_counter() - start
    for channel in channels:
        channel.close()
    return elapsed


def one_run(kind: str, n: int) -> float:
    if kind == "bare":
        return bare_channel_loop(n)
    start = time.perf_counter()
    if kind == "numap":
        numap = NuMap(double, range(n), worker_num=2)
        assert sum(numap) == n * (n - 1)
        numap.stop()
    else:
        with multiprocessing.Pool(2) as pool:
            assert sum(pool.imap(double, range(n))) == n * (n - 1)
    return time.perf_counter() - start


def channel_probe(n: int, repeats: int = 7) -> None:
    # Each run in a fresh process, the three kinds interleaved.
    times: dict[str, list[float]] = {"bare": [], "numap": [], "pool": []}
    for _ in range(repeats):
        for kind, runs in times.items():
            # The child prints one float, which is a JSON line.
            runs.append(run_json_script([__file__, "_one", kind, str(n)], 300))
    labels = {
        "bare": "bare channel loop",
        "numap": "NuMap defaults",
        "pool": "Pool.imap(chunksize=1)",
    }
    print(f"{n} items, 2 processes, medians of {repeats} fresh-process runs:")
    for kind, runs in times.items():
        listed = " ".join(f"{t:.3f}" for t in sorted(runs))
        print(f"  {labels[kind]:24s} {statistics.median(runs):.3f} s  ({listed})")


def spin(x: int) -> tuple[int, float, float]:
    begin = time.perf_counter()
    end = begin + 0.002
    while time.perf_counter() < end:
        pass
    return os.getpid(), begin, time.perf_counter()


def cpu_gap_probe(tuned: bool) -> None:
    n = 1000
    settings = {"stride": 8, "buffer": 32} if tuned else {}
    start = time.perf_counter()
    numap = NuMap(spin, range(n), worker_num=2, **settings)
    results = list(numap)
    numap.stop()
    elapsed = time.perf_counter() - start
    by_worker: dict[int, list[tuple[float, float]]] = {}
    for pid, begin, end in results:
        by_worker.setdefault(pid, []).append((begin, end))
    gaps = []
    for spans in by_worker.values():
        spans.sort()
        gaps += [spans[i + 1][0] - spans[i][1] for i in range(len(spans) - 1)]
    print(
        f"{'tuned (stride 8, buffer 32)' if tuned else 'defaults'}: {elapsed:.3f} s "
        f"for an ideal {n * 0.002 / 2:.3f} s; gap between a worker's items: "
        f"{_quantiles(gaps)}"
    )


def loop_rate(seconds: float) -> float:
    """Turns per second of a plain Python loop run for ``seconds``."""
    turns = 0
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        turns += 1
    return turns / seconds


def cores_probe(rounds: int = 3, seconds: float = 2.0) -> None:
    with multiprocessing.Pool(2) as pool:
        for _ in range(rounds):
            alone = pool.apply(loop_rate, (seconds,))
            pair = pool.map(loop_rate, [seconds, seconds], chunksize=1)
            print(
                f"alone {alone / 1e6:.2f}M/s; two at once "
                f"{pair[0] / 1e6:.2f}M/s + {pair[1] / 1e6:.2f}M/s: a balanced "
                f"2-worker map can be {sum(pair) / alone:.2f}x map's speed, "
                f"equal shares {2 * min(pair) / alone:.2f}x"
            )


def tiny_map(system: str, n: int) -> None:
    """Map x*2 over n ints with NuMap or Pool.imap, tuned or at their
    defaults; print this pid."""
    if system.startswith("numap"):
        if system == "numap-defaults":
            numap = NuMap(double, range(n), worker_num=2)
        else:
            numap = NuMap(double, range(n), worker_num=2, stride=2048, buffer=8192)
        total = sum(numap)
        numap.stop()
    else:
        chunksize = 1 if system == "pool-c1" else 1024
        with multiprocessing.Pool(2) as pool:
            total = sum(pool.imap(double, range(n), chunksize))
    assert total == n * (n - 1)
    print(os.getpid())


def parent_instructions(system: str, n: int, folder: str) -> int:
    """Instructions the parent process of tiny_map ran, counted by callgrind
    (the workers, forked under valgrind too, leave files of their own)."""
    command = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={folder}/callgrind.%p",
        sys.executable,
        __file__,
        "_tiny",
        system,
        str(n),
    ]
    env = {**os.environ, "NUMAP_WATCH_SECONDS": "0"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=900, env=env, check=True
    )
    pid = done.stdout.split()[-1]
    with open(f"{folder}/callgrind.{pid}") as counts:
        for line in counts:
            if line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no summary line in callgrind.{pid}")


def instructions_probe(small: int = 20_000, large: int = 100_000) -> None:
    if shutil.which("valgrind") is None:
        raise SystemExit("instructions: needs valgrind (e.g. apt install valgrind)")
    runs = {
        "numap": ("NuMap, stride 2048, buffer 8192", small, large),
        "pool": ("Pool.imap(chunksize=1024)", small, large),
        "numap-defaults": ("NuMap, defaults", 1_000, 4_000),
        "pool-c1": ("Pool.imap(chunksize=1)", 1_000, 4_000),
    }
    for system, (label, few_items, many_items) in runs.items():
        with tempfile.TemporaryDirectory() as folder:
            few = parent_instructions(system, few_items, folder)
            many = parent_instructions(system, many_items, folder)
        per_result = (many - few) / (many_items - few_items)
        print(f"{label:32s} {per_result:6.0f} instructions per result in the parent")


def sleep_trace_probe(buffer: int | None) -> None:
    n = 1000
    threads = 32
    started: dict[int, float] = {}
    ended: dict[int, float] = {}

    def nap(x: int) -> int:
        started[x] = time.perf_counter()
        time.sleep(0.01)
        ended[x] = time.perf_counter()
        return x

    numap = NuMap(
        nap, range(n), worker_type="thread", worker_num=threads, buffer=buffer
    )
    begin = time.perf_counter()
    handed = {}
    for x in numap:
        handed[x] = time.perf_counter()
    elapsed = time.perf_counter() - begin
    numap.stop()
    size = buffer or threads
    print(f"buffer {size}: {elapsed:.3f} s (ideal {n * 0.01 / threads:.4f} s)")
    sleeps = [ended[k] - started[k] for k in range(n)]
    waits = [handed[k] - ended[k] for k in range(n)]
    # Item k + size enters the map when result k is handed out.
    later = [started[k + size] - handed[k] for k in range(n - size)]
    print(f"  sleep itself:         {_quantiles(sleeps)}")
    print(f"  end -> handed out:    {_quantiles(waits)}")
    print(f"  handed -> next start: {_quantiles(later)}")


def main() -> None:
    command = sys.argv[1] if len(sys.argv) > 1 else "channel"
    if command == "_one":
        print(one_run(sys.argv[2], int(sys.argv[3])))
    elif command == "channel":
        channel_probe(int(sys.argv[2]) if len(sys.argv) > 2 else 20_000)
    elif command == "cpu-gap":
        cpu_gap_probe("--tuned" in sys.argv[2:])
    elif command == "cores":
        cores_probe()
    elif command == "instructions":
        instructions_probe()
    elif command == "_tiny":
        tiny_map(sys.argv[2], int(sys.argv[3]))
    elif command == "sleep-trace":
        sleep_trace_probe(int(sys.argv[2]) if len(sys.argv) > 2 else None)
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
