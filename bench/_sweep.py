"""The stride/buffer trade-off, in numbers: `python bench/run.py --sweep`.

NuMap's `stride` and `buffer` play the part of `Pool.imap`'s `chunksize`:
larger values cut per-item overhead and cost memory for the items in flight.
This measures both knobs (and Pool.imap's chunksize beside them) on the tiny
workload, where overhead dominates, and on the 32 KiB generator with a slow
consumer, where the items in flight are what the parent's memory holds.
"""

from __future__ import annotations

import sys
from typing import Any

from _harness import (
    Outcome,
    System,
    Workload,
    check,
    make_spec,
    run_child,
    summarise,
)

TINY = Workload("tiny", "", 200_000, 50_000, "process", 2, 60, ())
GEN_ITEM = Workload("gen-item", "", 30_000, 10_000, "process", 2, 90, ())


def _numap(stride: int | None, buffer: int | None) -> System:
    opts: dict[str, Any] = {}
    if stride is not None:
        opts["stride"] = stride
    if buffer is not None:
        opts["buffer"] = buffer
    return System(f"numap s={stride} b={buffer}", "numap", opts)


def _pool(chunk: int) -> System:
    return System(f"pool chunk={chunk}", "pool", {"chunk": chunk})


PLANS: tuple[tuple[Workload, tuple[System, ...]], ...] = (
    (
        TINY,
        (
            _pool(64),
            _pool(256),
            _pool(1024),
            _pool(4096),
            _numap(None, None),
            _numap(2, 64),
            _numap(64, 256),
            _numap(256, 1024),
            _numap(1024, 1024),
            _numap(1024, 4096),
            _numap(1024, 16384),
            _numap(2048, 8192),
            _numap(4096, 16384),
        ),
    ),
    (
        GEN_ITEM,
        (
            _pool(1),
            _pool(4),
            _pool(8),
            _pool(16),
            _pool(64),
            _numap(None, None),
            _numap(4, 16),
            _numap(8, 32),
            _numap(16, 64),
            _numap(64, 256),
            _numap(256, 1024),
            _numap(1024, 4096),
        ),
    ),
)


def _cell(outs: list[Outcome]) -> str:
    row = summarise(outs)
    if row.time is None:
        return f"{'-':>9} {'-':>9} {'-':>8}  {row.status}"
    first = "-" if row.first is None else f"{row.first * 1000:.1f}"
    return f"{row.time:9.3f} {first:>9} {row.peak_mb:8.0f}  {row.status}"


def main(quick: bool, loops: dict[str, int], repeats: int) -> None:
    for workload, systems in PLANS:
        n = workload.n_quick if quick else workload.n_full
        print(f"\n## sweep: {workload.name}, {n} items, 2 processes")
        print(f"{'setting':24} {'median s':>9} {'first ms':>9} {'peak MB':>8}  runs")
        for system in systems:
            outs = []
            for _ in range(repeats):
                spec = make_spec(workload, system, quick, loops)
                timeout = workload.timeout_full / (2 if quick else 1)
                outs.append(check(run_child(spec, timeout), workload.name, n, []))
                if outs[-1].status == "timeout":
                    break
            print(f"{system.label:24} {_cell(outs)}", flush=True)
            print(f"  {system.label}: {_cell(outs)}", file=sys.stderr)
