"""Waits that a Ctrl-C (or SIGTERM) can always interrupt.

Linux delivers a signal sent to the process (``kill -INT``, Ctrl-C) to any
one of its threads that does not block it, not necessarily the main one.
CPython's C handler then only records the signal; the Python handler (the
one raising KeyboardInterrupt) runs in the main thread the next time that
thread executes Python code. A main thread blocked in an untimed wait
(``Event.wait()``, ``Thread.join()``, ``Condition.wait()``) is not woken by
a signal that another thread received, so it would never act on it: the
process ignores Ctrl-C until the wait ends, which may be never.

So every wait the main thread can make is cut into slices of at most
``WAKE_INTERVAL`` seconds: between two slices the main thread runs Python
code, and with it any pending signal handler. Waits made only by background
threads do not need this (signal handlers never run there).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

# Longest time, in seconds, a wait made through this module sleeps before
# the thread runs Python code again (and so any pending signal handler).
WAKE_INTERVAL = 0.1


def _deadline(timeout: float | None) -> float | None:
    """The deadline (``time.monotonic()``) for ``timeout``, None for none."""
    return None if timeout is None else time.monotonic() + timeout


def _next_slice(deadline: float | None) -> float:
    """Seconds to sleep next: WAKE_INTERVAL, or less up to ``deadline``
    (0 or less once the deadline has passed)."""
    if deadline is None:
        return WAKE_INTERVAL
    return min(WAKE_INTERVAL, deadline - time.monotonic())


def wait_event(event: threading.Event, timeout: float | None = None) -> bool:
    """``event.wait(timeout)``, waking every WAKE_INTERVAL s.

    Returns True once ``event`` is set, False if ``timeout`` seconds (None:
    no limit) passed first. A signal handler's exception (KeyboardInterrupt)
    propagates out of it.
    """
    deadline = _deadline(timeout)
    while True:
        pause = _next_slice(deadline)
        if pause <= 0:
            return event.is_set()
        if event.wait(pause):
            return True


def join_thread(thread: threading.Thread, timeout: float | None = None) -> bool:
    """``thread.join(timeout)``, waking every WAKE_INTERVAL s.

    Returns True once ``thread`` has ended, False if ``timeout`` seconds
    (None: no limit) passed first.
    """
    deadline = _deadline(timeout)
    while True:
        pause = _next_slice(deadline)
        if pause <= 0:
            return not thread.is_alive()
        thread.join(pause)
        if not thread.is_alive():
            return True


def wait_condition(condition: threading.Condition) -> None:
    """``condition.wait()`` (the caller holds its lock), waking every
    WAKE_INTERVAL s; like any Condition wait it may return without a
    notify, so the caller checks its predicate in a loop."""
    condition.wait(WAKE_INTERVAL)


def timeout_seconds(what: str, value: Any) -> float | None:
    """``value`` checked as a timeout in seconds for ``what`` (a name for
    the messages, e.g. "Piper 'p': 'timeout'").

    Returns None for None (no timeout), and also for ``inf`` or any timeout
    longer than ``threading.TIMEOUT_MAX`` (about 292 years on Linux): the
    waits cannot take such a value (OverflowError), and it means "wait as
    long as it takes" anyway. Otherwise returns ``value``.

    Raises TypeError unless ``value`` is None or a number (not a bool), and
    ValueError for nan or a negative number: a nan deadline would never
    pass, or always be past, depending on the comparison.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{what} must be None or a number of seconds, got {value!r}")
    if math.isnan(value):
        raise ValueError(f"{what} must be a number of seconds, got nan")
    if value < 0:
        raise ValueError(f"{what} must be 0 or more seconds, got {value!r}")
    if value > threading.TIMEOUT_MAX:
        return None
    return value
