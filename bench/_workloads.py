"""The functions, inputs and consumers the benchmark maps over.

Everything here is defined at module level so that every system under test
can ship it to worker processes by reference (plain pickle and dill alike).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterator

BLOB_SIZE = 32 * 1024
SLEEP_SECONDS = 0.01
CONSUMER_SECONDS = 0.0001


def double(x: int) -> int:
    """The tiny function: the work is negligible, only overhead counts."""
    return x * 2


def burn(x: int, loops: int) -> int:
    """Pure-Python CPU work; `calibrate_loops` gives the `loops` for a time."""
    acc = x
    for i in range(loops):
        acc = (acc * 31 + i) % 1_000_003
    return acc


def spin_cpu(x: int, seconds: float) -> int:
    """CPU work measured by the clock, not by a loop count: spin until this
    thread has run on a CPU for ``seconds``.

    A fixed loop count takes as long as the VM's CPU is fast at that
    moment, and this VM's two virtual CPUs change speed from one second to
    the next and slow each other down when both are busy. Measured by this
    thread's CPU clock, every item is the same work in every system, run
    and repeat, and ``map`` takes exactly ``n * seconds``: what is left to
    compare is how well a system keeps its workers busy, including the CPU
    its parent takes from them.
    """
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass
    return x * 3 + 1


def nap(x: int) -> int:
    """Sleep-bound work: the GIL is released, so threads overlap fully."""
    time.sleep(SLEEP_SECONDS)
    return x


def length(blob: bytes) -> int:
    return len(blob)


def identity(blob: bytes) -> bytes:
    return blob


def blobs(count: int) -> Iterator[bytes]:
    """Yield `count` distinct 32 KiB items, made one at a time.

    Held at once, 30,000 of them are about 1 GB; a lazy map keeps only the
    few in flight.
    """
    for i in range(count):
        yield i.to_bytes(8, "little") * (BLOB_SIZE // 8)


def cpu_function(loops: int) -> Callable[[int], int]:
    return functools.partial(burn, loops=loops)


def cpu_clock_function(seconds: float) -> Callable[[int], int]:
    return functools.partial(spin_cpu, seconds=seconds)


def calibrate_loops(target_seconds: float) -> int:
    """Return the loop count that makes `burn` take about `target_seconds`.

    Timed in this thread's CPU time, so that other processes competing for
    the CPU do not shrink the work (wall time would count their turns too).
    """
    loops = 10_000
    while True:
        start = time.thread_time()
        burn(1, loops)
        if time.thread_time() - start > 0.2 * target_seconds:
            break
        loops *= 4
    samples = []
    for _ in range(5):
        start = time.thread_time()
        burn(1, loops)
        samples.append(time.thread_time() - start)
    return max(1, round(loops * target_seconds / min(samples)))


def slow_consume(results: Iterator[object], on_first: Callable[[], None]) -> tuple:
    """Take each result at a cost of 0.1 ms, as a slow consumer would.

    Returns (count, checksum). The cost is paid by sleeping, so the consumer
    holds no GIL while it waits (it models a consumer waiting on I/O). A
    single `sleep(0.0001)` lasts about 0.2 ms on Linux, so the consumer
    accrues 0.1 ms per result and sleeps it off in slices of at least 1 ms,
    crediting the time it actually slept: the total is 0.1 ms per result.
    """
    count = 0
    checksum = 0
    owed = 0.0
    for result in results:
        if count == 0:
            on_first()
        count += 1
        checksum += _checksum_of(result)
        owed += CONSUMER_SECONDS
        if owed >= 0.001:
            start = time.perf_counter()
            time.sleep(owed)
            owed -= time.perf_counter() - start
    return count, checksum


def fast_consume(results: Iterator[object], on_first: Callable[[], None]) -> tuple:
    count = 0
    checksum = 0
    for result in results:
        if count == 0:
            on_first()
        count += 1
        checksum += _checksum_of(result)
    return count, checksum


def _checksum_of(result: object) -> int:
    if isinstance(result, bytes):
        return len(result) + result[0]
    return int(result)  # type: ignore[call-overload]
