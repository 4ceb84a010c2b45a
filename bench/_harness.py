"""The bench scripts' shared parts: a measurement, its run and its summary."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _workloads

HERE = Path(__file__).resolve().parent
REFERENCE = "pool-tuned"


@dataclass(frozen=True)
class System:
    label: str
    system: str
    opts: dict[str, Any] = field(default_factory=dict)
    # Overrides the workload's timeout (for peers known to be far too slow).
    timeout: float | None = None
    # Measured in the first repeat only (peers far off the pace, whose
    # repeats would only lengthen the run).
    once: bool = False


@dataclass(frozen=True)
class Workload:
    name: str
    what: str
    n_full: int
    n_quick: int
    worker_type: str
    workers: int
    timeout_full: float
    systems: tuple[System, ...]


CPU_SECONDS = {"cpu": 0.002, "chain": 0.001}


@dataclass
class Outcome:
    status: str  # "ok", "timeout", "error", "wrong"
    data: dict[str, Any] = field(default_factory=dict)
    detail: str = ""


def _cpu_seconds() -> tuple[float, float, float]:
    """(busy CPU s of the whole machine, all CPU s, CPU s of our reaped children)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    hz = os.sysconf("SC_CLK_TCK")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (
        (sum(fields) - idle) / hz,
        sum(fields) / hz,
        usage.ru_utime + usage.ru_stime,
    )


def others_share(before: tuple, after: tuple) -> float:
    """Share of the machine's CPU that processes other than ours used in between."""
    busy = after[0] - before[0]
    total = after[1] - before[1]
    ours = after[2] - before[2]
    return max(0.0, busy - ours) / total if total > 0 else 0.0


def wait_for_quiet(max_share: float, patience: float) -> float:
    """Wait (at most `patience` s) until other processes use under `max_share`.

    Returns the share seen last. Another job on the machine steals CPU from
    the measurement; this lets a recorded run pick quiet moments.
    """
    deadline = time.monotonic() + patience
    while True:
        before = _cpu_seconds()
        time.sleep(0.5)
        share = others_share(before, _cpu_seconds())
        if share <= max_share or time.monotonic() > deadline:
            return share


def run_child(spec: dict[str, Any], timeout: float) -> Outcome:
    """Run one measurement in a fresh process group; kill the group on timeout.

    Besides the child's own numbers, records ``others``: the share of the
    machine's CPU used by other processes while it ran (0 on a quiet
    machine; timings taken at a high share are not to be trusted).
    """
    before = _cpu_seconds()
    proc = _start_in_group([str(HERE / "_child.py"), json.dumps(spec)])
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid)
        proc.communicate()
        return Outcome("timeout", detail=f"no result within {timeout:.0f} s")
    finally:
        # Workers a system leaves behind must not outlive the measurement.
        kill_group(proc.pid)
    if proc.returncode != 0 or not out.strip():
        last = err.strip().splitlines()[-1:] or ["(no output)"]
        return Outcome("error", detail=f"exit {proc.returncode}: {last[0][:200]}")
    data = json.loads(out.strip().splitlines()[-1])
    data["others"] = others_share(before, _cpu_seconds())
    if spec.get("profile"):
        data["profile"] = err
    return Outcome("ok", data)


def run_json_script(args: list[str], timeout: float) -> Any:
    """Run ``python *args`` in a fresh process group; return its last line as JSON.

    The group is killed when the script ends or times out. Raises
    RuntimeError with the script's stderr if it exits with a non-zero
    status, subprocess.TimeoutExpired if it runs longer than `timeout` s.
    """
    proc = _start_in_group(args)
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        # Workers the script leaves behind must not outlive it.
        kill_group(proc.pid)
        proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)[:200]} failed:\n{err}")
    return json.loads(out.strip().splitlines()[-1])


def _start_in_group(args: list[str]) -> subprocess.Popen[str]:
    """Start ``python *args`` in a new process group, its output piped as text."""
    return subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def kill_group(pgid: int) -> None:
    """SIGKILL every process of group ``pgid``; a group already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)


def calibrate() -> dict[str, int]:
    """Loop counts per CPU workload, from one calibration (so they keep ratio)."""
    per_second = _workloads.calibrate_loops(1.0 / 500) * 500
    return {name: round(per_second * s) for name, s in CPU_SECONDS.items()}


def make_spec(
    workload: Workload, system: System, quick: bool, loops: dict[str, int]
) -> dict[str, Any]:
    return {
        "workload": workload.name,
        "system": system.system,
        "opts": system.opts,
        "worker_type": workload.worker_type,
        "workers": workload.workers,
        "n": workload.n_quick if quick else workload.n_full,
        "loops": loops.get(workload.name, 0),
    }


def expected(workload: str, n: int) -> tuple[int, int | None]:
    """(count, checksum) every system must produce; None = compare to peers."""
    if workload == "tiny":
        return n, n * (n - 1)
    if workload == "sleep":
        return n, n * (n - 1) // 2
    if workload == "gen-len":
        return n, n * _workloads.BLOB_SIZE
    if workload == "gen-item":
        return n, n * _workloads.BLOB_SIZE + sum(i % 256 for i in range(n))
    return n, None


def check(outcome: Outcome, workload: str, n: int, peers: list[int]) -> Outcome:
    if outcome.status != "ok":
        return outcome
    count, checksum = expected(workload, n)
    got = outcome.data
    if got["count"] != count:
        return Outcome("wrong", got, f"{got['count']} results for {count} items")
    if checksum is None and peers:
        checksum = peers[0]
    if checksum is not None and got["checksum"] != checksum:
        return Outcome("wrong", got, "results differ from the expected ones")
    return outcome


@dataclass
class Row:
    time: float | None
    first: float | None
    peak_mb: float | None
    base_mb: float | None
    others: float | None
    status: str


def summarise(outs: list[Outcome]) -> Row:
    """Medians over the good runs; the status names the first failed one."""
    good = [o.data for o in outs if o.status == "ok"]
    bad = [o for o in outs if o.status != "ok"]
    status = "ok" if not bad else f"{bad[0].status}: {bad[0].detail}"
    if not good:
        return Row(None, None, None, None, None, status)
    firsts = [d["first"] for d in good if d["first"] is not None]
    return Row(
        statistics.median(d["time"] for d in good),
        statistics.median(firsts) if firsts else None,
        statistics.median(d["peak_mb"] for d in good),
        statistics.median(d["base_mb"] for d in good),
        statistics.median(d["others"] for d in good),
        status if bad else f"ok x{len(good)}",
    )
