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

When the map is collected, :func:`stop_abandoned` (its finalizer) ends the
feeder and closes the pool, as ``multiprocessing.Pool`` does for a pool
collected while it runs, with a ResourceWarning.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any


class FeederWakeup:
    """Where the feeder thread waits for a change in its map (a free slot,
    a delivery, a stop) without holding the map.

    State, guarded by the map's lock (the one ``condition`` uses):
      count      how many times the feeder was woken; a feeder that decided
                 to wait (holding the lock) waits only while it is
                 unchanged, so that no wake between that decision and the
                 wait is missed
      abandoned  set once, when the map was collected: the feeder ends
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
                self.condition.wait()

    def abandon(self) -> None:
        with self.condition:
            self.abandoned = True
            self.condition.notify_all()


class FeedProgress:
    """The feeder's place in its loop between two waits (feeder thread only).

    idle_steps       turns in a row that fed nothing (chained tasks whose
                     upstream had nothing ready)
    deliveries_seen  the map's delivery count when the idle turns began
    awaiting         (deliveries to see past or None, slots wanted or 0)
                     of the wait under way; None when not waiting
    """

    def __init__(self) -> None:
        self.idle_steps = 0
        self.deliveries_seen = 0
        self.awaiting: tuple[int | None, int] | None = None


def feed_in_background(numap_ref: weakref.ref) -> None:
    """The feeder thread's body: feed the map until it must wait, wait
    without it, and go on; end when the feeding ends or the map is gone.

    ``numap_ref()`` must provide ``_feed_until_wait(progress)``, which
    returns the wakeup count to wait past (None once the feeding is over),
    and ``_feeder_wakeup``, a FeederWakeup. ``progress`` is the feeder's
    own object, where the map keeps its place between waits.
    """
    progress = FeedProgress()
    while True:
        numap = numap_ref()
        if numap is None:
            return
        wait_past = numap._feed_until_wait(progress)
        wakeup = numap._feeder_wakeup
        del numap  # not held while waiting: see the module's docstring
        if wait_past is None:
            return
        wakeup.wait_past(wait_past)


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


def stop_abandoned(name: str, pool: Any, wakeup: FeederWakeup) -> None:
    """The finalizer of a started map: it was collected without stop().

    Ends its feeder and closes its pool without waiting for the workers
    (as after a Ctrl-C), on a thread of its own: a collection may happen
    on one of the pool's threads, which closing the pool joins.
    """
    warnings.warn(
        f"NuMap {name} was collected while it ran; its workers are ended. "
        "Call stop() (or use `with NuMap(...) as m:`) to end a map you "
        "leave before its end",
        ResourceWarning,
        stacklevel=1,  # a finalizer has no caller to point at
    )
    wakeup.abandon()
    closer = threading.Thread(
        target=pool.close,
        kwargs={"graceful": False},
        name=f"numap-closer {name}",
        daemon=True,
    )
    closer.start()
