"""A map that nobody holds any more is stopped.

A started NuMap runs threads of its own: the feeder, and the pool's
(worker threads, the background receiver, readers of remote workers). If
those held the map, a map abandoned without stop() (a ``for`` loop left by
``break`` or ``return`` in a function called again and again) would never
be collected, and its workers would pile up until the program exits. So
none of them holds it while it waits:

- the pool delivers results through :func:`deliver_while_alive`, which
  holds the map weakly;
- the feeder thread runs :func:`feed_in_background`, which holds the map
  only while it feeds, and waits for buffer space on a
  :class:`FeederWakeup` without it.

A collected map's finalizer, :func:`stop_abandoned`, runs inside a
garbage collection: on any thread, at any allocation, maybe while that
thread holds the map's lock, maybe in a forked child that got a copy of
the map. There nothing may block or start a thread, so it only queues
the map for :func:`end_abandoned_maps`, which ends its feeder and closes
its pool where blocking is safe, and marks the map's FeederWakeup
abandoned with a plain store. The map's feeder, which looks at that mark
at least every ABANDON_CHECK_SECONDS while it waits, then runs
end_abandoned_maps itself and ends; so does the start of any map, and
the program's exit (a map whose feeder had ended, its input all fed,
waits for one of those). The finalizer also gives a
ResourceWarning, as ``multiprocessing.Pool`` does for a pool collected
while it runs.
"""

from __future__ import annotations

import os
import queue
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

# How often a waiting feeder looks whether its map was collected: its
# finalizer cannot wake it (that would take the map's lock).
ABANDON_CHECK_SECONDS = 1.0


class FeederWakeup:
    """Where the feeder thread waits for a change in its map (a free slot,
    a delivery, a stop) without holding the map.

    State, guarded by the map's lock (the one ``condition`` uses):
      count      how many times the feeder was woken; a feeder that decided
                 to wait (holding the lock) waits only while it is
                 unchanged, so that no wake between that decision and the
                 wait is missed
      abandoned  set once, by the map's finalizer (a plain store, without
                 the lock), after the map was queued for end_abandoned_maps
    """

    def __init__(self, lock: threading.Lock) -> None:
        self.condition = threading.Condition(lock)
        self.count = 0
        self.abandoned = False

    def notify(self) -> None:
        """Wake the feeder (the caller holds the map's lock)."""
        self.count += 1
        self.condition.notify_all()

    def wait_past(self, count: int) -> None:
        """Wait (taking the map's lock) until ``count`` has changed or the
        map was abandoned."""
        with self.condition:
            while self.count == count and not self.abandoned:
                self.condition.wait(ABANDON_CHECK_SECONDS)


class FeedProgress:
    """The feeder's place in its loop between two waits (feeder thread only).

    idle_steps       turns in a row that fed nothing (chained tasks whose
                     upstream had nothing ready)
    notifications_seen  the map's notification count (see NuMap.__init__)
                     when the idle turns began
    awaiting         (notifications to see past or None, slots wanted or
                     0) of the wait under way; None when not waiting
    """

    def __init__(self) -> None:
        self.idle_steps = 0
        self.notifications_seen = 0
        self.awaiting: tuple[int | None, int] | None = None


def feed_in_background(numap_ref: weakref.ref, wakeup: FeederWakeup) -> None:
    """The feeder thread's body: feed the map until it must wait, wait
    without it, and go on; end when the feeding ends, or end the map's
    pool when the map was collected meanwhile.

    ``numap_ref()`` must provide ``_feed_until_wait(progress)``, which
    returns the wakeup count to wait past (None once the feeding is over),
    and ``wakeup`` is its FeederWakeup. ``progress`` is the feeder's own
    object, where the map keeps its place between waits.
    """
    progress = FeedProgress()
    numap = numap_ref()
    while numap is not None:
        wait_past = numap._feed_until_wait(progress)
        del numap  # not held while waiting: see the module's docstring
        if wait_past is None:
            return
        wakeup.wait_past(wait_past)
        # A map collected just now is marked abandoned by its finalizer a
        # moment after numap_ref() turns None: wait_past then returns.
        numap = numap_ref()
    wakeup.wait_past(wakeup.count)
    end_abandoned_maps()  # this map's pool among them


def deliver_while_alive(
    numap_ref: weakref.ref, deliver: Callable[[Any, int, int, list, bool], None]
) -> Callable[[int, int, list, bool], None]:
    """A pool's ``deliver``: ``deliver(numap, ...)`` while the map
    ``numap_ref`` refers to exists; results of a collected map go nowhere."""

    def deliver_to_map(task_id: int, start: int, values: list, errors: bool) -> None:
        numap = numap_ref()
        if numap is not None:
            deliver(numap, task_id, start, values, errors)

    return deliver_to_map


# (pid, pool, wakeup) of maps collected while started, for
# end_abandoned_maps. SimpleQueue.put may be called inside a garbage
# collection (it takes no lock a collection could be holding).
_abandoned: queue.SimpleQueue = queue.SimpleQueue()


def stop_abandoned(pid: int, name: str, pool: Any, wakeup: FeederWakeup) -> None:
    """The finalizer of a map started in process ``pid``: it was
    collected without stop(). Queues it for end_abandoned_maps."""
    if os.getpid() != pid:
        return  # a forked child's copy: the parent's map is not ours to end
    _abandoned.put((pid, pool, wakeup))
    wakeup.abandoned = True  # its feeder, if waiting, ends it within seconds
    # Last: under -W error the warning raises, and is only printed.
    warnings.warn(
        f"NuMap {name} was collected while it ran; its workers are ended. "
        "Call stop() (or use `with NuMap(...) as m:`) to end a map you "
        "leave before its end",
        ResourceWarning,
        stacklevel=1,  # a finalizer has no caller to point at
    )


def end_abandoned_maps() -> None:
    """End the feeder and the pool of each map collected while it ran
    (queued by stop_abandoned), without waiting for its workers to finish
    what they hold. Blocks while the pools close: call it where a stop()
    could be called (from a map's own thread too: thread pools take their
    delivery lock reentrantly)."""
    while True:
        try:
            pid, pool, wakeup = _abandoned.get_nowait()
        except queue.Empty:
            return
        if pid != os.getpid():
            continue  # queued in the parent before this process forked
        try:
            with wakeup.condition:
                wakeup.notify()  # a feeder still waiting ends
            pool.close(graceful=False)
        except BaseException:
            # (A Ctrl-C.) Closing again is harmless: the next call ends it.
            _abandoned.put((pid, pool, wakeup))
            raise
