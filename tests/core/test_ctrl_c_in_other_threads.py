"""A Ctrl-C that Linux delivers to a thread other than the main one still
interrupts a main thread waiting in Plumber.wait() or Plumber.stop().

CPython runs the Python signal handler (KeyboardInterrupt) only in the main
thread, and only when that thread runs Python code; a main thread blocked in
an untimed wait never does, so before the waits were sliced (papy.core._waits)
these scripts hung. Each runs in its own process, so a hang fails the test
(communicate's timeout) without wedging pytest. The signal is sent with
``signal.pthread_kill`` to a helper thread, which is what Linux may do with a
Ctrl-C sent to the process.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest
from papy.core import _waits

# What every script shares: a function stuck on item 1 (until the process
# ends; ``entered`` is set then), and a helper that waits until the main
# thread sleeps inside ``blocked`` (the scenario's own function) with the
# top frame in threading.py's ``top`` (Condition.wait's "wait" for an
# Event, or "_wait_for_tstate_lock" for a join), then sends SIGINT to
# itself, not to the main thread.
PRELUDE = """
import signal, sys, threading, time
from papy.core import Piper, Plumber

never = threading.Event()
entered = threading.Event()

def stuck_on_one(inbox):
    if inbox[0] == 1:
        entered.set()
        never.wait()
    return inbox[0]

def first(inbox):
    return inbox[0]

def main_thread_sleeps_in_blocked(top):
    frame = sys._current_frames().get(threading.main_thread().ident)
    first = frame
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return (
        "blocked" in names
        and first.f_code.co_filename.endswith("threading.py")
        and first.f_code.co_name == top
    )

def interrupt_from_a_helper_thread_once_main_sleeps_in_blocked(top):
    def helper():
        while not main_thread_sleeps_in_blocked(top):
            time.sleep(0.01)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
    threading.Thread(target=helper, daemon=True).start()
"""

SCENARIOS = {
    # The main thread waits without a timeout for a run that never ends.
    "wait": """
plumber = Plumber(pipes=[(Piper(stuck_on_one, name="stuck"),)])
plumber.start([range(3)])
plumber.run()
def blocked():
    plumber.wait()

interrupt_from_a_helper_thread_once_main_sleeps_in_blocked("wait")
try:
    blocked()
except KeyboardInterrupt:
    print("interrupted", flush=True)
""",
    # stop() waits for the item in flight, which never finishes.
    "stop": """
plumber = Plumber(pipes=[(Piper(stuck_on_one, name="stuck"),)])
plumber.start([range(3)])
plumber.run()
def blocked():
    plumber.stop()

interrupt_from_a_helper_thread_once_main_sleeps_in_blocked("wait")
try:
    blocked()
except KeyboardInterrupt:
    print("interrupted", flush=True)
""",
    # stop() of a pipeline never run pulls its outputs itself: the main
    # thread pulls the first output, then joins the thread pulling the
    # second, whose NuMap read the items before stop() closed the input
    # and is stuck on item 1.
    "stop_without_run": """
from numap import NuMap

source = Piper(first, name="source")
numap = NuMap(worker_type="thread", worker_num=1, stride=1, buffer=3)
stuck = Piper(stuck_on_one, parallel=numap, name="stuck")
plumber = Plumber(pipes=[(source, Piper(first, name="free")), (source, stuck)])
plumber.start([range(3)])
assert [p.name for p in plumber.get_outputs()] == ["free", "stuck"]
entered.wait()
def blocked():
    plumber.stop()

interrupt_from_a_helper_thread_once_main_sleeps_in_blocked("_wait_for_tstate_lock")
try:
    blocked()
except KeyboardInterrupt:
    print("interrupted", flush=True)
""",
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_ctrl_c_received_by_another_thread_interrupts_the_main_thread(
    tmp_path, scenario
):
    script = tmp_path / f"{scenario}.py"
    script.write_text(PRELUDE + SCENARIOS[scenario])
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()
    assert out == "interrupted\n", err
    assert process.returncode == 0, err


# --- the sliced waits themselves ----------------------------------------------


@pytest.mark.timeout(10)
def test_wait_event_returns_as_event_wait_does():
    event = threading.Event()
    assert _waits.wait_event(event, 0) is False
    assert _waits.wait_event(event, -1) is False
    assert _waits.wait_event(event, 3 * _waits.WAKE_INTERVAL) is False
    threading.Timer(2 * _waits.WAKE_INTERVAL, event.set).start()
    assert _waits.wait_event(event) is True
    assert _waits.wait_event(event, 0) is True


@pytest.mark.timeout(10)
def test_join_thread_returns_whether_the_thread_ended():
    release = threading.Event()
    thread = threading.Thread(target=release.wait)
    thread.start()
    try:
        assert _waits.join_thread(thread, 0) is False
        assert _waits.join_thread(thread, 3 * _waits.WAKE_INTERVAL) is False
    finally:
        threading.Timer(2 * _waits.WAKE_INTERVAL, release.set).start()
    assert _waits.join_thread(thread) is True
    assert not thread.is_alive()


@pytest.mark.timeout(10)
def test_wait_condition_returns_on_notify_and_without_one():
    condition = threading.Condition()
    with condition:
        _waits.wait_condition(condition)  # no notify: returns after a slice
    ready = []

    def notify():
        time.sleep(_waits.WAKE_INTERVAL / 4)
        with condition:
            ready.append(True)
            condition.notify_all()

    threading.Thread(target=notify).start()
    with condition:
        while not ready:
            _waits.wait_condition(condition)
    assert ready == [True]
