"""Collecting every result or error of a NuMap, for tests that check both;
reading one map from several threads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from numap import NuMap


def collect(iterator: Any) -> list[tuple[str, Any]]:
    """Every result or error of an iterator, in order, as (kind, value)."""
    outcomes: list[tuple[str, Any]] = []
    while True:
        try:
            outcomes.append(("ok", next(iterator)))
        except StopIteration:
            return outcomes
        except Exception as error:
            outcomes.append(("error", error))


def run(func: Any, items: Any, **options: Any) -> list[tuple[str, Any]]:
    """Start a NuMap(func, items, **options), collect it, stop it."""
    numap = NuMap(func, items, **options)
    numap.start()
    try:
        return collect(numap)
    finally:
        numap.stop()


def run_chain(funcs: Any, items: Any, **options: Any) -> list[tuple[str, Any]]:
    """Chain ``funcs`` as tasks of one NuMap(**options), the first reading
    ``items`` and each next one its predecessor's results; start it, collect
    the last task, stop it."""
    numap = NuMap(**options)
    results = items
    for func in funcs:
        results = numap.add_task(func, results)
    numap.start()
    try:
        return collect(results)
    finally:
        numap.stop()


def read_in_threads(numap: NuMap, readers: list[Callable[[], None]]) -> None:
    """Run each reader in a thread of its own, wait for them all (up to 50 s
    each), then stop the map."""
    threads = [threading.Thread(target=reader) for reader in readers]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(50)
    finally:
        numap.stop()
