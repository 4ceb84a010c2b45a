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
0.1; 0 turns watching off; 0.001 by default). Watching pays only when the
waits are short: a :class:`Watcher` watches again only if its last wait
got data within the watch time. Slow items (waits of milliseconds), and
waits that time out empty, therefore make it block at once, and burn no
CPU, until a wait is short again.

Yielding is harmless while nothing else wants the core, and poison when
something does. Linux's scheduler (EEVDF, since 6.6) pushes a task's
deadline back by a whole time slice at each yield that finds another task
on its core; a process that keeps yielding beside busy processes then
gets little CPU: beside two busy loops on two cores, 20,000 tiny items at
buffer 2 took 19-30 s instead of 2-3 s (batches and results sat in the
pipes while their readers waited for the core; bench/bench_under_load.py).
Such a core hands the CPU over on a yield and gets it back only after
the other task's slice, so a yield that took longer than
CONTENDED_YIELD_SECONDS ends the watch, if another task ran in this
thread's place since the watch began (the thread's involuntary context
switches went up: a yield that lets another task run counts as one). A
slow yield with no other task run in its place is time the virtual CPU
lost outside the guest's scheduler, which no pause helps: pausing for
those on a noisy VM left the one worker running tiny items at the
default buffer to be woken by every item for a second at a time, and
such runs took 10-50 % longer. The map's own processes make such yields
now and then too (a worker yields to its parent while the parent runs a
long stretch of Python), and then the watch is worth resuming soon: a
first contended yield pauses watching for FIRST_PAUSE_SECONDS only.
Another one within PAUSE_SECONDS after that pause ended says the core is
shared with other work, and pauses watching for PAUSE_SECONDS.
"""

from __future__ import annotations

import itertools
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


# The watch time when WATCH_VARIABLE is not set. The parent's work per
# item at the default buffer is tens of microseconds, so one millisecond
# covers a round trip with room for a busy parent.
DEFAULT_WATCH_SECONDS = 0.001
# A yield this long means another task ran on the core meanwhile: a slice
# of another process is a millisecond or more, while a yield to a map's
# own process that is itself watching comes back within microseconds.
CONTENDED_YIELD_SECONDS = 0.0003
# How long a Watcher blocks at once after contended yields that come one
# after the other: long enough that the few yields it then makes cost
# nothing, short enough to watch again soon after the other load is gone.
PAUSE_SECONDS = 1.0
# The pause after a contended yield that follows none: a single one is
# usually the map's own parent busy for a moment. Pausing a whole second
# for it made 30,000 tiny items at the default buffer 3-10 % slower here
# (a worker whose pipe is not watched has to be woken by each write).
FIRST_PAUSE_SECONDS = 0.01


def _watch_seconds_from(environ: Mapping[str, str]) -> float:
    """The watch time: DEFAULT_WATCH_SECONDS unless ``environ`` sets
    WATCH_VARIABLE.

    Raises NuMapError when the variable is not a number of seconds from 0
    to MAX_WATCH_SECONDS.
    """
    text = environ.get(WATCH_VARIABLE)
    if text is None:
        return DEFAULT_WATCH_SECONDS
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

try:
    import resource

    _RUSAGE_THREAD = resource.RUSAGE_THREAD  # Linux
except (ImportError, AttributeError):
    # Unknown: every call says another switch happened, so that every
    # slow yield counts as contention.
    _switch_counter = itertools.count()

    def _switches_away() -> int:
        return next(_switch_counter)

else:

    def _switches_away() -> int:
        """How many times the scheduler ran another task in this thread's
        place (involuntary context switches)."""
        return resource.getrusage(_RUSAGE_THREAD).ru_nivcsw


# Watchers need select.poll, which Windows lacks; there, callers wait as
# they otherwise would.
HAVE_POLL = hasattr(select, "poll")


class Watcher:
    """Wait for any of some file descriptors to become readable, watching
    them briefly first.

    Not thread-safe: one thread at a time waits with a Watcher (the owner
    of the descriptors' reading side). Needs HAVE_POLL.
    """

    # _watch_next: whether the next wait that finds nothing at once
    #   watches (the last wait was short);
    # _paused_until: time.perf_counter() before which no wait watches
    #   (after a contended yield); the last pause ended then, which decides
    #   the length of the next one.
    __slots__ = ("_poll", "_watch_seconds", "_watch_next", "_paused_until")

    def __init__(self, fds: Iterable[int], watch_seconds: float = WATCH_SECONDS):
        self._poll = select.poll()
        for fd in fds:
            self._poll.register(fd, select.POLLIN)
        self._watch_seconds = watch_seconds
        self._watch_next = watch_seconds > 0
        self._paused_until = -math.inf  # never paused yet

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
        if self._watch_next and started >= self._paused_until:
            watch = (
                self._watch_seconds
                if timeout is None
                else min(self._watch_seconds, timeout)
            )
            ready = self._watch(started, started + watch)
            if ready:
                return ready
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

    def _watch(self, started: float, deadline: float) -> list[tuple[int, int]]:
        """Poll without blocking, yielding the CPU between polls, until
        something is ready (returned), the deadline, or contention for the
        core (both return [])."""
        poll = self._poll.poll
        before = started
        # One syscall per watch: a slow yield is contention only if another
        # task ran in this thread's place since the watch began.
        switches = _switches_away()
        while True:
            _yield_cpu()
            ready = poll(0)
            if ready:
                return ready
            now = time.perf_counter()
            if now - before > CONTENDED_YIELD_SECONDS and _switches_away() > switches:
                self._pause(now)
                return ready
            if now >= deadline:
                return ready
            before = now

    def _pause(self, now: float) -> None:
        # Contention soon after the last pause ended is lasting contention.
        if now - self._paused_until < PAUSE_SECONDS:
            self._paused_until = now + PAUSE_SECONDS
        else:
            self._paused_until = now + FIRST_PAUSE_SECONDS
