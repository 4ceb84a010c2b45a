"""NuMap beside the usual parallel maps: `python bench/run.py [--quick] [--only ...]`.

Each measurement runs in a fresh process (bench/_child.py) under a timeout;
a system that hangs or fails is reported as such, never waited for. The
harness repeats every measurement, interleaving systems within a repeat so
that drift in the machine's speed hits all of them alike (a system whose
first run was shorter than SHORT_SECONDS is repeated SHORT_REPEAT_FACTOR
times as often, except with --quick), and prints the
medians with each system's ratio to `Pool.imap` with a tuned chunksize from
the same run, then checks NuMap against the targets of issue 2.

`--sweep` instead measures NuMap's stride/buffer trade-off (and Pool.imap's
chunksize) on the tiny and the 32 KiB workloads. `--profile WORKLOAD:LABEL`
runs one measurement under cProfile and prints where the time goes.
`--diagnose` measures the parent-side cost of one `next` (bench/_diagnose.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _workloads  # noqa: E402
from _harness import (  # noqa: E402
    REFERENCE,
    Outcome,
    Row,
    System,
    Workload,
    calibrate,
    check,
    make_spec,
    run_child,
    summarise,
    wait_for_quiet,
)


def _process_systems(
    chunk: int, stride: int, buffer: int, pypeln_timeout: float | None = None
) -> tuple[System, ...]:
    return (
        System("numap", "numap"),
        System("numap-tuned", "numap", {"stride": stride, "buffer": buffer}),
        System("pool-c1", "pool", {"chunk": 1}),
        System(REFERENCE, "pool", {"chunk": chunk}),
        System("multiprocess", "multiprocess", {"chunk": chunk}),
        System("futures", "futures", {"chunk": chunk}),
        System("mpire", "mpire", {"chunk": chunk}),
        System("pypeln", "pypeln", timeout=pypeln_timeout, once=True),
    )


def _cpu_bound(
    name: str, what: str, timeout: float, with_map: bool = False
) -> Workload:
    """A CPU-bound workload: 1,000 items (300 with --quick) on 2 processes,
    tuned with chunksize 4 (NuMap stride 8, buffer 32)."""
    systems = _process_systems(chunk=4, stride=8, buffer=32)
    if with_map:
        systems = (System("map", "map"), *systems)
    return Workload(
        name, f"{what}, 2 processes", 1_000, 300, "process", 2, timeout, systems
    )


# Tuned settings: a chunksize that did well for Pool.imap in a sweep on this
# machine, and NuMap's stride/buffer set the way a user sets a chunksize:
# NuMap cuts a stride into batches of stride/workers items, so
# stride = chunksize x workers makes its batches Pool's chunks, and
# buffer = 4 x stride keeps four strides in flight (bench/README.md has the
# sweeps behind these numbers).
WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "tiny",
        "x*2 over ints, 2 processes",
        200_000,
        50_000,
        "process",
        2,
        120,
        _process_systems(chunk=1024, stride=2048, buffer=8192, pypeln_timeout=20),
    ),
    _cpu_bound("cpu", "~2 ms pure-Python CPU per item", 30, with_map=True),
    _cpu_bound(
        "cpu-clock",
        "2 ms of CPU time per item (spins on its CPU clock)",
        30,
        with_map=True,
    ),
    Workload(
        "sleep",
        "sleep(0.01) per item, 32 threads",
        1_000,
        1_000,
        "thread",
        32,
        20,
        (
            System("numap", "numap"),
            System("numap-tuned", "numap", {"stride": 32, "buffer": 128}),
            System("pool-c1", "pool", {"chunk": 1}),
            System(REFERENCE, "pool", {"chunk": 1}),
            System("multiprocess", "multiprocess", {"chunk": 1}),
            System("futures", "futures"),
            System("mpire", "mpire", {"chunk": 1}),
            System("pypeln", "pypeln", once=True),
        ),
    ),
    Workload(
        "gen-len",
        "30,000 x 32 KiB generator, f returns len(item), 2 processes",
        30_000,
        10_000,
        "process",
        2,
        120,
        _process_systems(chunk=8, stride=16, buffer=64),
    ),
    Workload(
        "gen-item",
        "30,000 x 32 KiB generator, f returns the item, consumer 0.1 ms/result",
        30_000,
        10_000,
        "process",
        2,
        150,
        _process_systems(chunk=8, stride=16, buffer=64),
    ),
    _cpu_bound("chain", "two chained ~1 ms CPU tasks (NuMap: one map, two tasks)", 40),
    _cpu_bound(
        "chain-clock", "two chained tasks of 1 ms CPU time each (CPU clock)", 40
    ),
)

Results = dict[tuple[str, str], list[Outcome]]

# A run this short is at the mercy of the VM's speed from one moment to the
# next (tiny items with tuned settings take ~0.1 s, and one system's
# repeats differed by up to 70 %): a system whose first run was shorter
# gets SHORT_REPEAT_FACTOR times the repeats, so that its median means
# something. Not with --quick, where nearly every run is that short.
SHORT_SECONDS = 0.5
SHORT_REPEAT_FACTOR = 3


def run_all(
    workloads: list[Workload],
    systems_filter: set[str] | None,
    repeats: int,
    quick: bool,
    loops: dict[str, int],
    quiet: float | None,
) -> Results:
    results: Results = {}
    rounds = repeats if quick else repeats * SHORT_REPEAT_FACTOR
    for repeat in range(rounds):
        for workload in workloads:
            n = workload.n_quick if quick else workload.n_full
            for system in workload.systems:
                timeout = (system.timeout or workload.timeout_full) / (
                    2 if quick else 1
                )
                if systems_filter and system.label not in systems_filter:
                    continue
                key = (workload.name, system.label)
                past = results.setdefault(key, [])
                if any(o.status == "timeout" for o in past):
                    # One hang is reported; repeating it would only eat time.
                    continue
                if system.once and past:
                    continue
                if repeat >= repeats and not _first_run_short(past):
                    continue
                spec = make_spec(workload, system, quick, loops)
                if quiet is not None:
                    wait_for_quiet(quiet, patience=20)
                outcome = run_child(spec, timeout)
                peers = _reference_checksums(results, workload.name)
                outcome = check(outcome, workload.name, n, peers)
                past.append(outcome)
                _progress(repeat, workload.name, system.label, outcome)
    return results


def _first_run_short(outcomes: list[Outcome]) -> bool:
    first = outcomes[0]
    return first.status == "ok" and first.data["time"] < SHORT_SECONDS


def _reference_checksums(results: Results, workload: str) -> list[int]:
    """Checksums of `map`'s good runs of `workload`, else of `pool-tuned`'s."""
    for label in ("map", REFERENCE):
        outs = results.get((workload, label), [])
        checksums = [o.data["checksum"] for o in outs if o.status == "ok"]
        if checksums:
            return checksums
    return []


def _progress(repeat: int, workload: str, label: str, outcome: Outcome) -> None:
    if outcome.status == "ok":
        note = f"{outcome.data['time']:.3f} s"
    else:
        note = f"{outcome.status.upper()} {outcome.detail}"
    print(f"  [{repeat + 1}] {workload:11} {label:13} {note}", file=sys.stderr)


def _fmt(value: float | None, pattern: str) -> str:
    return "-" if value is None else pattern.format(value)


def print_tables(workloads: list[Workload], results: Results) -> dict:
    summary: dict[tuple[str, str], Row] = {
        key: summarise(outs) for key, outs in results.items()
    }
    header = (
        f"{'system':13} {'median s':>9} {'/pool-tuned':>11} {'first ms':>9} "
        f"{'peak MB':>8} {'base MB':>8} {'others%':>7}  runs"
    )
    for workload in workloads:
        labels = [
            s.label for s in workload.systems if (workload.name, s.label) in summary
        ]
        if not labels:
            continue
        print(f"\n## {workload.name}: {workload.what}")
        print(header)
        ref = summary.get((workload.name, REFERENCE))
        for label in labels:
            row = summary[(workload.name, label)]
            ratio = (
                row.time / ref.time
                if row.time is not None and ref is not None and ref.time
                else None
            )
            print(
                f"{label:13} {_fmt(row.time, '{:.3f}'):>9} {_fmt(ratio, '{:.2f}'):>11} "
                f"{_fmt(row.first and row.first * 1000, '{:.1f}'):>9} "
                f"{_fmt(row.peak_mb, '{:.0f}'):>8} {_fmt(row.base_mb, '{:.0f}'):>8} "
                f"{_fmt(row.others and row.others * 100, '{:.0f}'):>7}  {row.status}"
            )
    return summary


def _time(summary: dict, workload: str, label: str) -> float | None:
    row = summary.get((workload, label))
    return row.time if row else None


def targets(summary: dict, quick: bool) -> list[tuple[str, bool | None, str]]:
    """Issue 2's targets: (description, passed or None if not measured, numbers)."""
    checks: list[tuple[str, bool | None, str]] = []

    def add(name: str, ok: bool | None, numbers: str) -> None:
        checks.append((name, ok, numbers))

    nd, c1 = _time(summary, "tiny", "numap"), _time(summary, "tiny", "pool-c1")
    add(
        "tiny: numap defaults <= Pool.imap chunksize 1",
        None if nd is None or c1 is None else nd <= c1,
        f"{_fmt(nd, '{:.3f}')} s vs {_fmt(c1, '{:.3f}')} s",
    )
    nt, pt = _time(summary, "tiny", "numap-tuned"), _time(summary, "tiny", REFERENCE)
    ratio = None if nt is None or pt is None else nt / pt
    add(
        "tiny: numap tuned / Pool.imap tuned <= 1.0",
        None if ratio is None else ratio <= 1.0,
        f"ratio {_fmt(ratio, '{:.2f}')}",
    )
    for workload in ("cpu", "cpu-clock"):
        serial = _time(summary, workload, "map")
        for label in ("numap", "numap-tuned"):
            par = _time(summary, workload, label)
            speedup = None if serial is None or par is None else serial / par
            add(
                f"{workload}: {label} speedup over map >= 1.85x",
                None if speedup is None else speedup >= 1.85,
                f"{_fmt(speedup, '{:.2f}')}x",
            )
    ideal = 1000 * _workloads.SLEEP_SECONDS / 32
    for label in ("numap", "numap-tuned"):
        t = _time(summary, "sleep", label)
        factor = None if t is None else t / ideal
        add(
            f"sleep: {label} <= 1.1x ideal ({ideal:.4f} s)",
            None if factor is None else factor <= 1.1,
            f"{_fmt(factor, '{:.2f}')}x ideal",
        )
    for workload in ("gen-len", "gen-item"):
        for label in ("numap", "numap-tuned"):
            row = summary.get((workload, label))
            if row is None or row.peak_mb is None or row.first is None:
                add(f"{workload}: {label} peak < 60 MB, first < 50 ms", None, "-")
                continue
            add(
                f"{workload}: {label} peak < 60 MB, first < 50 ms",
                row.peak_mb < 60 and row.first < 0.05,
                f"{row.peak_mb:.0f} MB, {row.first * 1000:.1f} ms",
            )
    for workload in ("chain", "chain-clock"):
        best_pool = [
            x
            for x in (
                _time(summary, workload, "pool-c1"),
                _time(summary, workload, REFERENCE),
            )
            if x is not None
        ]
        pool = min(best_pool) if best_pool else None
        for label in ("numap", "numap-tuned"):
            t = _time(summary, workload, label)
            add(
                f"{workload}: {label} faster than chained Pool.imaps (best c1/tuned)",
                None if t is None or pool is None else t < pool,
                f"{_fmt(t, '{:.3f}')} s vs {_fmt(pool, '{:.3f}')} s",
            )
    if quick:
        checks.append(
            ("(--quick: smaller inputs; targets are for full runs)", None, "")
        )
    return checks


def print_targets(checks: list[tuple[str, bool | None, str]]) -> None:
    print("\n## targets (issue 2)")
    for name, ok, numbers in checks:
        mark = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        print(f"{mark}  {name:68} {numbers}")


NUMAP_SRC = "packages/numap/src"


def numap_version() -> str:
    """The commit the numap sources are at, and whether they differ from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "log", "-1", "--format=%h", "--", NUMAP_SRC],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--", NUMAP_SRC],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "numap at unknown commit"
    return f"numap at {head}" + (" + uncommitted changes" if dirty else "")


def machine_line() -> str:
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{os.cpu_count()} cores, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, "
        f"load average at start {os.getloadavg()[0]:.2f}; {numap_version()}"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer repeats, smaller inputs"
    )
    parser.add_argument(
        "--repeats",
        type=int,
        help="repeats per measurement (default 3, quick 1); "
        f"x{SHORT_REPEAT_FACTOR} for runs under {SHORT_SECONDS} s, except quick",
    )
    parser.add_argument(
        "--only",
        help="comma-separated workloads to run ("
        + ",".join(w.name for w in WORKLOADS)
        + ")",
    )
    parser.add_argument("--systems", help="comma-separated system labels to run")
    parser.add_argument("--sweep", action="store_true", help="stride/buffer trade-off")
    parser.add_argument(
        "--diagnose", action="store_true", help="per-result cost of next()"
    )
    parser.add_argument("--profile", metavar="WORKLOAD:LABEL", help="cProfile one run")
    parser.add_argument(
        "--quiet",
        type=float,
        metavar="SHARE",
        help="before each run wait (up to 20 s) until other processes use at "
        "most this share of the CPU, e.g. 0.1",
    )
    parser.add_argument("--json", type=Path, help="write raw results here")
    return parser.parse_args(argv)


def select(args: argparse.Namespace) -> list[Workload]:
    if not args.only:
        return list(WORKLOADS)
    wanted = set(args.only.split(","))
    unknown = wanted - {w.name for w in WORKLOADS}
    if unknown:
        raise SystemExit(f"--only: unknown workload(s) {sorted(unknown)}")
    return [w for w in WORKLOADS if w.name in wanted]


def profile_one(target: str, quick: bool, loops: dict[str, int]) -> None:
    name, _, label = target.partition(":")
    workload = next((w for w in WORKLOADS if w.name == name), None)
    if workload is None:
        raise SystemExit(f"--profile: unknown workload {name!r}")
    system = next((s for s in workload.systems if s.label == label), None)
    if system is None:
        raise SystemExit(f"--profile: {name} has no system {label!r}")
    spec = make_spec(workload, system, quick, loops) | {"profile": True}
    outcome = run_child(spec, workload.timeout_full * 3)
    print(outcome.data.pop("profile", outcome.detail))
    print(json.dumps(outcome.data))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    loops = calibrate()
    if args.profile:
        profile_one(args.profile, args.quick, loops)
        return
    if args.diagnose:
        import _diagnose

        _diagnose.main()
        return
    if args.sweep:
        import _sweep

        print(f"# NuMap stride/buffer sweep — {machine_line()}")
        _sweep.main(args.quick, loops, args.repeats or 1)
        return
    repeats = args.repeats or (1 if args.quick else 3)
    workloads = select(args)
    systems = set(args.systems.split(",")) if args.systems else None
    print(f"# NuMap benchmark — {machine_line()}")
    if args.quick:
        repeat_note = f"{repeats} repeat(s) (quick sizes)"
    else:
        repeat_note = (
            f"{repeats} repeat(s), x{SHORT_REPEAT_FACTOR} for systems whose "
            f"first run took under {SHORT_SECONDS} s"
        )
    print(
        f"# {repeat_note}; "
        f"CPU loops per 2 ms: {loops['cpu']}, per 1 ms: {loops['chain']}"
    )
    results = run_all(workloads, systems, repeats, args.quick, loops, args.quiet)
    summary = print_tables(workloads, results)
    print_targets(targets(summary, args.quick))
    print(f"\n# total wall time {time.perf_counter() - started:.0f} s")
    if args.json:
        raw = {
            f"{name}:{label}": [o.__dict__ for o in outs]
            for (name, label), outs in results.items()
        }
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
