"""Threads of a pipeline, for tests that stop one and look for leftovers."""

import threading
import time

# Threads that papy.core and numap start; none may be left after stop().
THREAD_PREFIXES = ("papy-", "numap-")


def left_threads(seconds=5.0):
    """Names of papy and numap threads still alive after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        names = [
            t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIXES)
        ]
        if not names or time.monotonic() > deadline:
            return names
        time.sleep(0.05)


def stop_within(plumber, seconds):
    """Call plumber.stop() in a helper thread; True if it returned in time."""
    stopper = threading.Thread(target=plumber.stop, daemon=True)
    stopper.start()
    stopper.join(seconds)
    return not stopper.is_alive()
