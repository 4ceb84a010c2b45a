"""Waiting for a pipe to become readable: watch it briefly, then block.

A process blocked on a pipe has to be woken by the writer's kernel call.
On a virtual machine that costs tens of microseconds on both sides (the
idle virtual CPU must be interrupted), which is more than a tiny item's
whole round trip. When the next frame usually comes within a fraction of
a millisecond (tiny items at the default buffer, where every item is a
round trip), watching the pipe for that long without sleeping avoids the
wake-up. Each turn of the watch yields the CPU to any other process
waiting for the same core.

The environment variable NUMAP_WATCH_SECONDS sets the watch time (at most
0.1; 0 turns watching off). Off by default: under heavy CPU load, process
maps at small buffers were seen to hang with a watch of 0.001 (a batch
never answered; not found yet), and never without one. Watching pays only when the
waits are short: a :class:`Watcher` watches again only if its last wait
got data within the watch time. Slow items (waits of milliseconds), and
waits that time out empty, therefore make it block at once, and burn no
CPU, until a wait is short again.
"""

from __future__ import annotations

import math
import os
import select
import time
from collections.abc import Iterable, Mapping

from numap._errors import NuMapError

# The environment variable that sets WATCH_SECONDS (0 turns watching off,
# e.g. on a machine shared with other jobs, where no process should burn
# CPU while it waits).
WATCH_VARIABLE = "NUMAP_WATCH_SECONDS"
# Longer watches would let every idle worker burn a core for that long on
# each wait.
MAX_WATCH_SECONDS = 0.1


def _watch_seconds_from(environ: Mapping[str, str]) -> float:
    """The watch time: 0 (off) unless ``environ`` sets WATCH_VARIABLE.

    Raises NuMapError when the variable is not a number of seconds from 0
    to MAX_WATCH_SECONDS.
    """
    # The parent's work per item at the default buffer is tens of
    # microseconds, so one millisecond covers a round trip with room for a
    # busy parent.
    text = environ.get(WATCH_VARIABLE)
    if text is None:
        return 0.0
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_WATCH_SECONDS:  # also refuses nan
        raise NuMapError(
            f"{WATCH_VARIABLE}={text!r}: must be a number of seconds from 0 "
            f"to {MAX_WATCH_SECONDS} (e.g. 0.001; 0 turns watching off)"
        )
    return seconds


# How long a waiting worker or consumer watches its pipes before it blocks.
WATCH_SECONDS = _watch_seconds_from(os.environ)

_yield_cpu = getattr(os, "sched_yield", lambda: time.sleep(0))

# Watchers need select.poll, which Windows lacks; there, callers wait as
# they otherwise would.
HAVE_POLL = hasattr(select, "poll")


class Watcher:
    """Wait for any of some file descriptors to become readable, watching
    them briefly first.

    Not thread-safe: one thread at a time waits with a Watcher (the owner
    of the descriptors' reading side). Needs HAVE_POLL.
    """

    __slots__ = ("_poll", "_watch_seconds", "_watch_next")

    def __init__(self, fds: Iterable[int], watch_seconds: float = WATCH_SECONDS):
        self._poll = select.poll()
        for fd in fds:
            self._poll.register(fd, select.POLLIN)
        self._watch_seconds = watch_seconds
        self._watch_next = watch_seconds > 0

    def wait(self, timeout: float | None) -> list[tuple[int, int]]:
        """The (fd, events) pairs ready within ``timeout`` seconds (None: no
        limit, 0: do not wait)."""
        poll = self._poll.poll
        ready = poll(0)
        if ready:
            self._watch_next = self._watch_seconds > 0
            return ready
        if timeout == 0:
            return ready
        started = time.perf_counter()
        if self._watch_next:
            watch = (
                self._watch_seconds
                if timeout is None
                else min(self._watch_seconds, timeout)
            )
            deadline = started + watch
            while True:
                _yield_cpu()
                ready = poll(0)
                if ready:
                    return ready
                if time.perf_counter() >= deadline:
                    break
        waited = time.perf_counter() - started
        if timeout is None:
            ready = poll(None)
        else:
            remaining = max(0.0, timeout - waited)
            ready = poll(math.ceil(remaining * 1000))
        # A watch that ran out says waits are long now; an unwatched wait
        # that got data within the watch time says watching would have
        # caught it. A wait that timed out empty says nothing came: as
        # long as nothing comes, watching would only burn CPU.
        self._watch_next = (
            bool(ready) and time.perf_counter() - started < self._watch_seconds
        )
        return ready
