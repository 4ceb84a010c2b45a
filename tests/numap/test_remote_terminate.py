"""Busy remote workers are terminated together, as local ones are.

Leaving a ``with`` block by an exception, or an interpreter that exits
without ``stop()``, terminates the workers instead of letting them finish:
each busy remote worker is then sent SIGTERM by its host (its function
unwinds, ``finally`` blocks run), all of them at once, instead of each
getting the grace of a polite stop in turn. Real rpyc_classic servers on
127.0.0.1, real processes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from numap import NuMap
from remote_servers import env_with_path, rpyc_server, wait_until

# Fixtures from remote_servers, named here so that pytest finds them.
FIXTURES = (rpyc_server,)

WORKERS = 4

# Says it is in its call (a file PID.busy), sleeps until SIGTERM unwinds
# it, then its ``finally`` leaves a file PID.unwound. Defined in a module
# the host cannot import, so that it travels by value.
UNWINDING_SOURCE = """
import os, signal, time

def sleep_until_terminated(x, folder):
    def unwind(signum, frame):
        raise SystemExit("terminated")
    signal.signal(signal.SIGTERM, unwind)
    open(os.path.join(folder, f"{os.getpid()}.busy"), "w").close()
    try:
        time.sleep(600)
    finally:
        open(os.path.join(folder, f"{os.getpid()}.unwound"), "w").close()
    return x
"""


def unwinding_function() -> Any:
    namespace: dict[str, Any] = {"__name__": "made_in_a_test"}
    exec(UNWINDING_SOURCE, namespace)
    return namespace["sleep_until_terminated"]


class Interrupted(Exception):
    pass


def pids_with(folder: Path, state: str) -> set[int]:
    """Pids of the workers that left a file PID.<state> in ``folder``."""
    return {int(path.stem) for path in folder.glob(f"*.{state}")}


@pytest.mark.timeout(40)
def test_leaving_with_by_exception_terminates_every_busy_worker(rpyc_server, tmp_path):
    markers = tmp_path / "unwound"
    markers.mkdir()
    numap = NuMap(
        unwinding_function(),
        range(100),
        args=(str(markers),),
        worker_num=0,
        worker_remote=[(rpyc_server.spec, WORKERS)],
    )
    with pytest.raises(Interrupted), numap:
        workers = set(rpyc_server.worker_pids())
        assert len(workers) == WORKERS
        assert wait_until(lambda: pids_with(markers, "busy") == workers, 20)
        raise Interrupted
    # Each got SIGTERM; waiting for the polite stop, none would have.
    assert wait_until(lambda: pids_with(markers, "unwound") == workers, 10)
    assert wait_until(lambda: rpyc_server.worker_pids() == [], 10)


@pytest.mark.timeout(40)
def test_exit_without_stop_terminates_every_busy_worker(rpyc_server, tmp_path):
    markers = tmp_path / "unwound"
    markers.mkdir()
    script = textwrap.dedent(
        f"""
        import pathlib, time
        from numap import NuMap
        namespace = {{"__name__": "made_in_a_test"}}
        exec({UNWINDING_SOURCE!r}, namespace)
        numap = NuMap(namespace["sleep_until_terminated"], range(100),
                      args=({str(markers)!r},), worker_num=0,
                      worker_remote=[({rpyc_server.spec!r}, {WORKERS})])
        numap.start()
        folder = pathlib.Path({str(markers)!r})
        while len(list(folder.glob("*.busy"))) < {WORKERS}:
            time.sleep(0.05)
        print("exiting", flush=True)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with_path(),
    )
    try:
        assert parent.stdout.readline().strip() == "exiting"
        # From the workers' own markers: the parent is exiting now, and the
        # host may already be ending workers, so its list can be short.
        workers = pids_with(markers, "busy")
        assert len(workers) == WORKERS
        _, err = parent.communicate(timeout=30)
        assert parent.returncode == 0, err
        assert wait_until(lambda: pids_with(markers, "unwound") == workers, 10)
        assert wait_until(lambda: rpyc_server.worker_pids() == [], 10)
    finally:
        parent.kill()
        parent.wait()
