"""Worker processes started by two threads at once.

The program runs in its own interpreter: its fork hook is process-wide.
"""

import subprocess
import sys
import textwrap

import pytest
from numap import NuMap

# The first fork of map A's worker waits (in a fork hook, when A's pipes
# exist and the child's ends are still open) for another thread to start
# map B, at most 2 s. A worker of B forked then would hold A's worker's
# result pipe open, and A would never see that worker die.
START_B_DURING_AS_FORK = """
    import os, signal, threading
    from numap import NuMap, WorkerLostError

    def die_on_2(x):
        if x == 2:
            os.kill(os.getpid(), signal.SIGKILL)
        return x

    a = NuMap(die_on_2, range(4), worker_num=1)
    b = NuMap(abs, range(4), worker_num=2)
    hooked = []

    def start_b_meanwhile():
        if not hooked:
            hooked.append(threading.Thread(target=b.start))
            hooked[0].start()
            hooked[0].join(2.0)

    os.register_at_fork(before=start_b_meanwhile)
    a.start()
    hooked[0].join()
    results = []
    for _ in range(4):
        try:
            results.append(a.next(timeout=20))
        except WorkerLostError:
            results.append("lost")
        except TimeoutError:
            results.append("no answer in 20 s")
    print(results)
    print(list(b))
    a.stop()
    b.stop()
"""


@pytest.mark.timeout(90)
def test_a_map_started_by_another_thread_meanwhile_does_not_hide_a_worker_death():
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(START_B_DURING_AS_FORK)],
        capture_output=True,
        text=True,
        timeout=80,
    )
    assert done.stdout.splitlines() == ["[0, 1, 'lost', 3]", "[0, 1, 2, 3]"], (
        done.stdout,
        done.stderr,
    )


def sum_with_an_inner_map(worker_type):
    inner = NuMap(abs, [-1, -2], worker_type=worker_type, worker_num=1)
    try:
        return sum(inner)
    finally:
        inner.stop()


@pytest.mark.timeout(60)
def test_maps_inside_a_process_worker_start_or_fail_as_documented():
    # A worker is forked while its starter holds numap's worker-start lock:
    # its inner map must find that lock free, not wait for it forever. A
    # thread map works there; a process map fails for daemonic workers
    # (as with multiprocessing.Pool), as the README says.
    outer = NuMap(
        sum_with_an_inner_map,
        ["thread", "process"],
        worker_type="process",
        worker_num=1,
    )
    try:
        assert outer.next(timeout=30) == 3
        with pytest.raises(AssertionError, match="daemonic"):
            outer.next(timeout=30)
    finally:
        outer.stop()
