"""A Ctrl-C that the kernel hands to another thread than the main one.

Linux delivers a process-directed SIGINT to any thread that does not block
it; CPython then raises KeyboardInterrupt in the main thread only when
that thread wakes up. These programs send SIGINT to one of their own
helper threads (``pthread_kill``) while the main thread waits inside the
map, in ``next()`` or in ``stop()``: the Ctrl-C must still end the wait
soon, and no worker may outlive the program.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import psutil
import pytest

HEADER = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import psutil
    from numap import NuMap

    def stall_on_one(x):
        if x == 1:
            time.sleep(float(os.environ.get("STALL_SECONDS", 600)))
        return x

    def ctrl_c_to_a_helper_thread(after):
        def send():
            time.sleep(after)
            print("sending", flush=True)
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            time.sleep(600)  # the signal must not end with this thread
        threading.Thread(target=send, daemon=True).start()

    def own_handler(signum, frame):
        raise KeyboardInterrupt

    def children():
        return [c.pid for c in psutil.Process().children(recursive=True)]
    """
)

WAIT_IN_NEXT = HEADER + textwrap.dedent(
    """
    if sys.argv[2] == "own":
        signal.signal(signal.SIGINT, own_handler)
    numap = NuMap(stall_on_one, range(3), worker_type=sys.argv[1], worker_num=1,
                  stride=1, buffer=2)
    results = iter(numap)
    assert next(results) == 0
    print("children", *children(), flush=True)
    ctrl_c_to_a_helper_thread(0.5)
    try:
        next(results)  # waits for item 1, which never comes
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    """
)

WAIT_IN_STOP = HEADER + textwrap.dedent(
    """
    numap = NuMap(stall_on_one, range(3), worker_type=sys.argv[1], worker_num=1,
                  stride=1, buffer=2)
    results = iter(numap)
    assert next(results) == 0
    print("children", *children(), flush=True)
    ctrl_c_to_a_helper_thread(1.0)
    try:
        numap.stop()  # lets the worker finish item 1, which never ends
    except KeyboardInterrupt:
        print("interrupted", flush=True)
    if sys.argv[2] == "again":
        numap.stop()  # the worker ends item 1 meanwhile; this one closes it
        print("left after the second stop:", len(children()), flush=True)
    """
)


def run_program(
    source: str, *args: str, stall_seconds: float = 600
) -> tuple[str, list[int]]:
    """Run ``source`` and return its output and the worker pids it printed."""
    child = subprocess.Popen(
        [sys.executable, "-c", source, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={
            **os.environ,
            "PYTHONFAULTHANDLER": "1",
            "STALL_SECONDS": str(stall_seconds),
        },
    )
    try:
        output, _ = child.communicate(timeout=20)
    finally:
        child.kill()
        child.wait()
    pids = [
        int(pid)
        for line in output.splitlines()
        if line.startswith("children")
        for pid in line.split()[1:]
    ]
    return output, pids


def assert_gone(pids: list[int]) -> None:
    alive = [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]
    _, still_alive = psutil.wait_procs(alive, timeout=10)
    assert not still_alive


@pytest.mark.timeout(40)
@pytest.mark.parametrize("handler", ["default", "own"])
@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_ctrl_c_on_another_thread_ends_a_wait_in_next(worker_type, handler):
    output, pids = run_program(WAIT_IN_NEXT, worker_type, handler)
    assert "sending" in output and "interrupted" in output, output
    assert_gone(pids)


@pytest.mark.timeout(40)
@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_ctrl_c_on_another_thread_ends_a_wait_in_stop(worker_type):
    output, pids = run_program(WAIT_IN_STOP, worker_type, "once")
    assert "sending" in output and "interrupted" in output, output
    assert_gone(pids)


@pytest.mark.timeout(40)
def test_stop_again_after_an_interrupted_stop_ends_the_workers():
    output, pids = run_program(WAIT_IN_STOP, "process", "again", stall_seconds=3)
    assert "interrupted" in output, output
    assert "left after the second stop: 0" in output, output
    assert_gone(pids)
