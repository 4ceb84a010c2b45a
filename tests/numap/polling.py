"""Waiting, in a test, for something another thread or process does."""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], object], seconds: float = 10.0, interval: float = 0.01
) -> bool:
    """Poll ``condition`` every ``interval`` seconds until it is true or
    ``seconds`` have passed; whether it became true."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return bool(condition())
