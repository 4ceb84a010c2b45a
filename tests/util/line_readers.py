"""Reading a make_lines iterator on a thread of its own, for the follow tests."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable


def wait_for(condition: Callable[[], object], seconds: float = 10) -> object:
    """Poll ``condition`` until it is true or ``seconds`` have passed; its
    last value."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    return condition()


def read_in_thread(lines: Iterable) -> tuple[threading.Thread, list]:
    """Start a daemon thread that reads ``lines`` into a list; the thread
    and the list (filled as lines come)."""
    read: list = []
    reader = threading.Thread(target=lambda: read.extend(lines), daemon=True)
    reader.start()
    return reader, read
