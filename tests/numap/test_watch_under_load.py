"""A process map beside busy processes, with the pipe watch on.

With one busy loop per core, a worker or consumer that kept yielding the
CPU while it watched its pipe got little of it (Linux's EEVDF scheduler
pushes a yielding task back a whole slice per yield): 20,000 tiny items
at buffer 2 took ten times as long. The watch now stops yielding when a
yield shows that the core is shared (the logic has unit tests in
test_watch.py; the speed is measured by bench/bench_under_load.py, as
timings do not belong in tests). Here, with the real scheduler, such a
map must deliver every result, in order, none stalled for STALL_SECONDS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

STALL_SECONDS = 10  # a tiny item's round trip takes well under a millisecond

PROGRAM = textwrap.dedent(
    f"""
    from numap import NuMap

    def inc(x):
        return x + 1

    for trial in range(4):
        numap = NuMap(inc, range(5000), worker_num=2, stride=1, buffer=2)
        numap.start()
        got = [numap.next(timeout={STALL_SECONDS}) for _ in range(5000)]
        numap.stop()
        assert got == list(range(1, 5001)), trial
    print("done", flush=True)
    """
)


@pytest.fixture
def busy_cores():
    """One busy loop per core, for the length of the test."""
    loops = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    yield
    for loop in loops:
        loop.kill()
        loop.wait()


@pytest.mark.timeout(120)
def test_a_map_at_buffer_2_does_not_stall_beside_busy_processes(busy_cores):
    env = {**os.environ, "NUMAP_WATCH_SECONDS": "0.001"}
    # (run() kills and reaps the program if it times out.)
    program = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert program.returncode == 0, program.stderr[-3000:]
    assert program.stdout.strip() == "done"
