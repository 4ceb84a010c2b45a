"""Starting and stopping NuMaps that several Pipers share.

A NuMap starts once (stage 1: its pool; stage 2: its feeder and collector)
and stops once, but every Piper on it asks to. This module remembers, per
NuMap, which stages were done, so the first request acts and the rest are
no-ops. The record lives here (not on the NuMap) because the NuMap belongs to
another package.

Invariant (under ``_lock``): ``_done[id(numap)]`` is the set of stages
(1, 2, "stopped") already performed on that NuMap, and ``_alive`` keeps the
NuMap itself referenced so its id is not reused while the record exists.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_done: dict[int, set[Any]] = {}
_alive: dict[int, Any] = {}


def _record(numap: Any) -> set[Any]:
    key = id(numap)
    if key not in _done:
        _done[key] = set()
        _alive[key] = numap
    return _done[key]


def start_stage(numap: Any, stage: int) -> None:
    """Perform start stage 1 or 2 of ``numap`` unless already done."""
    with _lock:
        done = _record(numap)
        if stage in done:
            return
        done.add(stage)
    numap.start(stages=(stage,))


def stop(numap: Any, forced: bool = False, **kwargs: Any) -> None:
    """Stop ``numap`` once (``numap.stop(forced=forced, **kwargs)``); later
    calls do nothing."""
    with _lock:
        done = _record(numap)
        if "stopped" in done or 1 not in done:
            return
        done.add("stopped")
    numap.stop(forced=forced, **kwargs)


def forget(numap: Any) -> None:
    """Drop the record of ``numap`` (after it was stopped)."""
    with _lock:
        _done.pop(id(numap), None)
        _alive.pop(id(numap), None)
