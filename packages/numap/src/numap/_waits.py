"""Waits of the main thread that a Ctrl-C can end.

Linux delivers a signal sent to the process (Ctrl-C's SIGINT, SIGTERM)
to any one of its threads that does not block it. CPython's C handler
then only notes the signal; the main thread runs the Python handler (that
raises KeyboardInterrupt) when it next wakes up. A main thread blocked
without a timeout in a thread join, an event or a lock wakes up only when
that changes, so a Ctrl-C that landed on another thread would wait for it,
maybe forever. On the main thread these helpers therefore wait in slices
of SLICE_SECONDS; other threads never run Python signal handlers and wait
in one go.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

# The longest a main-thread wait lasts before Python looks for a signal.
SLICE_SECONDS = 0.1


def on_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def join(thread: threading.Thread, timeout: float | None = None) -> None:
    """``thread.join(timeout)``, in slices on the main thread."""
    if not on_main_thread():
        thread.join(timeout)
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    while thread.is_alive():
        wait = SLICE_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                return
        thread.join(wait)


def side_by_side(
    actions: Iterable[tuple[str, Callable[[], object]]], wait: bool = True
) -> None:
    """Run each ``(thread name, action)`` in a thread of its own, and with
    ``wait`` join them all (see :func:`join`). An action for which no
    thread can be started (at interpreter exit) runs here, in turn.

    For actions that may each wait long, such as closing the workers of a
    frozen host: side by side, that wait is paid once, not once each.
    """
    threads = []
    for name, action in actions:
        thread = threading.Thread(target=action, name=name, daemon=True)
        try:
            thread.start()
        except RuntimeError:  # no thread to spare
            action()
        else:
            threads.append(thread)
    if wait:
        for thread in threads:
            join(thread)


def acquire(lock: threading.Lock, timeout: float | None = None) -> bool:
    """``lock.acquire(timeout=...)`` (None: no limit), in slices on the
    main thread; True once acquired."""
    if not on_main_thread():
        return lock.acquire(timeout=-1 if timeout is None else timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = SLICE_SECONDS
        if deadline is not None:
            wait = min(wait, deadline - time.monotonic())
            if wait <= 0:
                return False
        if lock.acquire(timeout=wait):
            return True
