"""One measurement, in a fresh process: `python bench/_child.py '<json spec>'`.

The spec names the workload, the system and its options. The process loads
only what that system needs, runs the map once, and prints one JSON line:
wall time, time to first result, the process's peak RSS (this process is
the "parent" of the map's workers) and its RSS before the map started, the
result count and a checksum the harness compares across systems.

With `"profile": true` the run is done under cProfile and the top entries
by cumulative and internal time are printed to stderr (for diagnosis).
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import _systems
import _workloads as w


def _build(spec: dict[str, Any]) -> tuple[list[Callable], Iterable, Callable]:
    """Return (functions, input iterable, consumer) for the spec's workload."""
    workload = spec["workload"]
    n = spec["n"]
    if workload == "tiny":
        return [w.double], range(n), w.fast_consume
    if workload == "cpu":
        return [w.cpu_function(spec["loops"])], range(n), w.fast_consume
    if workload == "cpu-clock":
        return [w.cpu_clock_function(0.002)], range(n), w.fast_consume
    if workload == "sleep":
        return [w.nap], range(n), w.fast_consume
    if workload == "gen-len":
        return [w.length], w.blobs(n), w.fast_consume
    if workload == "gen-item":
        return [w.identity], w.blobs(n), w.slow_consume
    if workload == "chain":
        stage = w.cpu_function(spec["loops"])
        return [stage, stage], range(n), w.fast_consume
    if workload == "chain-clock":
        stage = w.cpu_clock_function(0.001)
        return [stage, stage], range(n), w.fast_consume
    raise ValueError(f"unknown workload {workload!r}")


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    funcs, items, consume = _build(spec)
    open_system = _systems.SYSTEMS[spec["system"]]
    # Import the system's modules before taking the baseline.
    with open_system(spec["opts"], spec["worker_type"], 1, [w.double], range(0)) as r:
        for _ in r:
            pass
    base_mb = _peak_rss_mb()
    first: list[float] = []
    start = time.perf_counter()

    def on_first() -> None:
        first.append(time.perf_counter() - start)

    with open_system(
        spec["opts"], spec["worker_type"], spec["workers"], funcs, items
    ) as results:
        count, checksum = consume(results, on_first)
        elapsed = time.perf_counter() - start
    return {
        "time": elapsed,
        "first": first[0] if first else None,
        "peak_mb": _peak_rss_mb(),
        "base_mb": base_mb,
        "count": count,
        "checksum": checksum,
    }


def _profile_threads(stream: Any) -> Callable[[], None]:
    """Profile every thread started from now on; return a function that prints.

    cProfile sees only the thread that enables it, and a map spends much of
    its time in its own threads (feeders, result handlers), so each thread's
    run() gets its own profiler.
    """
    import cProfile
    import pstats
    import threading

    profiles: list[tuple[str, cProfile.Profile]] = []
    original_run = threading.Thread.run

    def profiled_run(self: threading.Thread) -> None:
        profiler = cProfile.Profile()
        profiles.append((self.name, profiler))
        profiler.runcall(original_run, self)

    threading.Thread.run = profiled_run  # type: ignore[method-assign]

    def report() -> None:
        for name, profiler in profiles:
            print(f"\n==== thread {name}", file=stream)
            stats = pstats.Stats(profiler, stream=stream)
            stats.sort_stats("tottime").print_stats(12)

    return report


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("profile"):
        import cProfile
        import pstats

        report_threads = _profile_threads(sys.stderr)
        profiler = cProfile.Profile()
        result = profiler.runcall(measure, spec)
        print("\n==== main thread", file=sys.stderr)
        stats = pstats.Stats(profiler, stream=sys.stderr)
        stats.sort_stats("cumulative").print_stats(25)
        stats.sort_stats("tottime").print_stats(25)
        report_threads()
    else:
        result = measure(spec)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
