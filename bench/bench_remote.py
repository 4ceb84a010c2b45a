"""Remote workers beside local ones: NuMap on 2 workers behind a local
rpyc_classic server (127.0.0.1) against NuMap on 2 local processes.

    /work/venv/bin/python bench/bench_remote.py [--repeats 5] [--quick]

Workloads (from _workloads.py, shared with run.py), with the stride and
buffer settings run.py gives NuMap (the same for local and remote):
- tiny: ``double`` over 200,000 ints, stride 2048 and buffer 8192 (batches
  of 1024 items, four strides in flight), as a user would tune a chunksize;
- cpu: a ~2 ms pure-Python function over 1,000 items with default settings
  (stride = buffer = 2: one item per worker in flight);
- cpu-tuned: the same with stride 8 and buffer 32.
Each measurement runs in a fresh process; the table shows medians over the
repeats, run interleaved. "stream" is the time from the first ``next`` to
the last result (the workers are up); "start" is ``NuMap.start`` (remote:
connecting and starting the remote processes). Ratios:
- tiny: remote items/s over local items/s on the stream (target >= 0.5);
- cpu: speedup over a plain ``map`` in the same kind of fresh process, for
  each system (target: remote's equal to local's).
On a machine shared with other jobs wall times say little; the "cpu s"
column (CPU seconds spent by this process, its workers and, for remote
workers, the server and its workers, during the stream) does not depend on
the load: the ratios marked "load-proof" compare those.

The server is started here, once per run, on 127.0.0.1 and a free port,
with this folder on its PYTHONPATH (a real host needs the functions'
module installed), without --register; it is killed at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import _workloads as w
from _harness import CPU_SECONDS, kill_group, run_json_script

HERE = Path(__file__).resolve().parent
RPYC_CLASSIC = str(Path(sys.executable).with_name("rpyc_classic"))
TINY_N = 200_000
SETTINGS = {
    "tiny": {"stride": 2048, "buffer": 8192},
    "cpu": {},
    "cpu-tuned": {"stride": 8, "buffer": 32},
}
CPU_N = 1_000
WORKERS = 2
MEASURE_TIMEOUT = 300.0


# ----------------------------------------------------------------------------
# One measurement (child process)


def _measure(spec: dict[str, Any]) -> dict[str, Any]:
    if spec["workload"] == "tiny":
        func: Any = w.double
    else:
        func = w.cpu_function(spec["loops"])
    settings = SETTINGS[spec["workload"]]
    items = range(spec["n"])
    if spec["system"] == "serial":
        cpu_before = time.process_time()
        start = time.perf_counter()
        checksum = sum(map(func, items))
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu_before
        return {"start": 0.0, "stream": elapsed, "cpu": cpu, "checksum": checksum}

    from numap import NuMap

    if spec["system"] == "local":
        where: dict[str, Any] = {"worker_num": WORKERS}
    else:
        where = {"worker_num": 0, "worker_remote": [(spec["host"], WORKERS)]}
    numap = NuMap(func, items, worker_type="process", **where, **settings)
    began = time.perf_counter()
    numap.start()
    started = time.perf_counter()
    processes = _involved(spec.get("server_pid"))
    cpu_before = _cpu_seconds(processes)
    checksum = 0
    for value in numap:
        checksum += value
    finished = time.perf_counter()
    cpu = _cpu_seconds(processes) - cpu_before
    numap.stop()
    return {
        "start": started - began,
        "stream": finished - started,
        "cpu": cpu,
        "checksum": checksum,
    }


def _involved(server_pid: int | None) -> list[Any]:
    # This process and its worker processes; for remote workers the server
    # and its worker processes too (all on this machine here).
    import psutil

    me = psutil.Process()
    involved = [me, *me.children(recursive=True)]
    if server_pid is not None:
        server = psutil.Process(server_pid)
        involved += [server, *server.children(recursive=True)]
    return involved


def _cpu_seconds(processes: list[Any]) -> float:
    total = 0.0
    for process in processes:
        times = process.cpu_times()
        total += times.user + times.system
    return total


# ----------------------------------------------------------------------------
# The run (parent process)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _classic_server():
    port = _free_port()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), *[p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]]
    )
    command = [RPYC_CLASSIC, "--host", "127.0.0.1", "--port", str(port), "--quiet"]
    server = subprocess.Popen(
        command,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("rpyc_classic did not start") from None
                time.sleep(0.05)
        yield f"127.0.0.1:{port}", server.pid
    finally:
        kill_group(server.pid)
        server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="a tenth of the items")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        print(json.dumps(_measure(json.loads(options.child))))
        return

    scale = 10 if options.quick else 1
    loops = w.calibrate_loops(CPU_SECONDS["cpu"])
    plan = [("tiny", system, TINY_N // scale) for system in ("local", "remote")]
    plan += [
        ("cpu", system, CPU_N // scale) for system in ("serial", "local", "remote")
    ]
    plan += [("cpu-tuned", system, CPU_N // scale) for system in ("local", "remote")]
    samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with _classic_server() as (host, server_pid):
        for _ in range(options.repeats):
            for workload, system, n in plan:
                spec = {
                    "workload": workload,
                    "system": system,
                    "n": n,
                    "host": host,
                    "server_pid": server_pid if system == "remote" else None,
                    "loops": loops,
                }
                run = run_json_script(
                    [__file__, "--child", json.dumps(spec)], MEASURE_TIMEOUT
                )
                samples.setdefault((workload, system), []).append(run)
    _report(samples, plan, options.repeats)


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def _report(samples, plan, repeats: int) -> None:
    print(
        f"NuMap, {WORKERS} workers: local processes vs. behind rpyc_classic on "
        f"127.0.0.1; medians of {repeats} fresh-process runs; "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'workload':9} {'system':7} {'items':>7} {'start s':>8} "
          f"{'stream s':>9} {'items/s':>10} {'cpu s':>7}")  # fmt: skip
    for workload, system, n in plan:
        runs = samples[(workload, system)]
        checksums = {run["checksum"] for run in runs}
        assert len(checksums) == 1, f"{workload}/{system}: results differ"
        stream = _median(runs, "stream")
        print(
            f"{workload:9} {system:7} {n:>7} {_median(runs, 'start'):>8.3f} "
            f"{stream:>9.3f} {n / stream:>10.0f} {_median(runs, 'cpu'):>7.3f}"
        )
    for workload in ("tiny", "cpu", "cpu-tuned"):
        sums = {samples[(workload, s)][0]["checksum"] for s in ("local", "remote")}
        assert len(sums) == 1, f"{workload}: local and remote results differ"
    tiny = _median(samples[("tiny", "local")], "stream") / _median(
        samples[("tiny", "remote")], "stream"
    )
    print(f"tiny:      remote/local throughput = {tiny:.2f}  (target >= 0.50)")
    local_cpu = _median(samples[("tiny", "local")], "cpu")
    if local_cpu > 0:
        cost = _median(samples[("tiny", "remote")], "cpu") / local_cpu
        print(f"tiny:      remote/local CPU seconds spent = {cost:.2f}  (load-proof)")
    else:
        # CPU times come in clock ticks: --quick's tiny stream can be too short.
        print("tiny:      remote/local CPU seconds spent = n/a (no tick measured)")
    serial = _median(samples[("cpu", "serial")], "stream")
    for workload in ("cpu", "cpu-tuned"):
        local = serial / _median(samples[(workload, "local")], "stream")
        remote = serial / _median(samples[(workload, "remote")], "stream")
        print(
            f"{workload + ':':10} speedup over map: local {local:.2f}x, remote "
            f"{remote:.2f}x, remote/local = {remote / local:.2f}  "
            "(target: same speedup)"
        )
    serial_cpu = _median(samples[("cpu", "serial")], "cpu")
    for workload in ("cpu", "cpu-tuned"):
        extra = [
            _median(samples[(workload, system)], "cpu") / serial_cpu - 1
            for system in ("local", "remote")
        ]
        print(
            f"{workload + ':':10} CPU spent beyond map's: local {extra[0]:+.0%}, "
            f"remote {extra[1]:+.0%}  (load-proof)"
        )


if __name__ == "__main__":
    main()
