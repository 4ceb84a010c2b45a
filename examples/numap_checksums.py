"""Checksum and parse a generated log file in parallel with NuMap.

    python examples/numap_checksums.py [--out DIR] [--megabytes N] [--workers N]

1. Writes a deterministic sensor log (CSV lines: time, sensor, reading) of
   about --megabytes MiB to DIR/readings.csv (the same bytes on every run).
2. Reads it lazily in chunks that end at line boundaries and, in worker
   processes, computes each chunk's SHA-256 and parses its lines (record
   count, per-sensor sums, minimum and maximum reading).
3. Writes the chunk checksums to DIR/chunks.sha256 (offset, length, digest),
   the per-sensor means to DIR/summary.txt, checks the parallel results
   against a serial pass, and prints what it did and where.

Memory stays bounded: NuMap pulls a chunk from the file only when its
buffer has room, whatever the file's size.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import time
from collections.abc import Iterator
from pathlib import Path

from numap import NuMap

SENSORS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot")
CHUNK_BYTES = 1 << 20


def write_log(path: Path, megabytes: int, seed: int = 2) -> int:
    """Write the deterministic log; return its size in bytes."""
    rng = random.Random(seed)
    target = megabytes << 20
    written = 0
    second = 1_700_000_000
    with path.open("wb") as out:
        while written < target:
            lines = []
            for _ in range(10_000):
                second += rng.randint(0, 3)
                sensor = SENSORS[rng.randrange(len(SENSORS))]
                reading = rng.gauss(20.0, 5.0)
                lines.append(f"{second},{sensor},{reading:.3f}\n")
            block = "".join(lines).encode()
            out.write(block)
            written += len(block)
    return written


def read_chunks(path: Path, size: int = CHUNK_BYTES) -> Iterator[tuple[int, bytes]]:
    """Yield (offset, chunk) pieces of about `size` bytes ending at a newline."""
    offset = 0
    carry = b""
    with path.open("rb") as source:
        while True:
            block = source.read(size)
            if not block:
                break
            data = carry + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                carry = data
                continue
            yield offset, data[:cut]
            offset += cut
            carry = data[cut:]
    if carry:
        yield offset, carry


def analyse(piece: tuple[int, bytes]) -> dict:
    """Checksum one chunk and parse its lines (runs in a worker process)."""
    offset, chunk = piece
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    low, high = float("inf"), float("-inf")
    for line in chunk.splitlines():
        _, sensor, value = line.split(b",")
        reading = float(value)
        name = sensor.decode()
        sums[name] = sums.get(name, 0.0) + reading
        counts[name] = counts.get(name, 0) + 1
        low = min(low, reading)
        high = max(high, reading)
    return {
        "offset": offset,
        "length": len(chunk),
        "sha256": hashlib.sha256(chunk).hexdigest(),
        "sums": sums,
        "counts": counts,
        "low": low,
        "high": high,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="out/numap_checksums", help="output folder")
    parser.add_argument("--megabytes", type=int, default=16, help="log size in MiB")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="worker processes"
    )
    options = parser.parse_args()

    out = Path(options.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    log = out / "readings.csv"

    started = time.perf_counter()
    size = write_log(log, options.megabytes)
    generated = time.perf_counter()
    print(f"wrote {log} ({size / 2**20:.1f} MiB) in {generated - started:.2f} s")

    # stride = workers and buffer = 4 strides: at most that many 1 MiB chunks
    # are in memory at once, however large the file.
    numap = NuMap(
        analyse,
        read_chunks(log),
        worker_type="process",
        worker_num=options.workers,
        stride=options.workers,
        buffer=4 * options.workers,
    )
    numap.start()
    try:
        results = list(numap)
    finally:
        numap.stop()
    mapped = time.perf_counter()

    checksums = out / "chunks.sha256"
    with checksums.open("w") as listing:
        for result in results:
            listing.write(
                f"{result['offset']:>12} {result['length']:>9} {result['sha256']}\n"
            )
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for result in results:
        for sensor, total in result["sums"].items():
            sums[sensor] = sums.get(sensor, 0.0) + total
            counts[sensor] = counts.get(sensor, 0) + result["counts"][sensor]
    records = sum(counts.values())
    low = min(result["low"] for result in results)
    high = max(result["high"] for result in results)
    summary = out / "summary.txt"
    with summary.open("w") as report:
        report.write(f"records {records}\nmin {low:.3f}\nmax {high:.3f}\n")
        for sensor in sorted(sums):
            mean = sums[sensor] / counts[sensor]
            report.write(f"{sensor:<8} n={counts[sensor]:<8} mean={mean:.4f}\n")

    # Check the parallel pass against a serial one over the same chunks.
    serial = [hashlib.sha256(chunk).hexdigest() for _, chunk in read_chunks(log)]
    assert serial == [result["sha256"] for result in results], "checksums differ"
    assert sum(result["length"] for result in results) == size, "bytes missing"

    print(
        f"checksummed and parsed {len(results)} chunks ({records} records) on "
        f"{options.workers} worker processes in {mapped - generated:.2f} s"
    )
    print(f"chunk checksums: {checksums}")
    print(f"per-sensor summary: {summary}")
    print("verified: parallel checksums match a serial pass, no byte missing")


if __name__ == "__main__":
    main()
