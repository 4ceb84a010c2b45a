"""Adapters: run one (possibly chained) map on each system under test.

Every adapter is a context manager `open_<system>(opts, worker_type, workers,
funcs, items)` that yields an iterator over the results of
``funcs[-1](...funcs[0](item))`` and shuts its pool(s) down on exit. A chain
of two functions is two pools, one per function, fed one from the other —
except for NuMap, which runs both tasks in one NuMap (that is the point of
the chain workload).

Imports are local to each adapter so a measurement process loads only the
system it measures (the parent's memory is part of what is measured).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Opts = dict[str, Any]
Funcs = list[Callable[[Any], Any]]


@contextlib.contextmanager
def open_map(
    opts: Opts, worker_type: str, workers: int, funcs: Funcs, items: Iterable
) -> Iterator[Iterator]:
    """Serial baseline: the built-in map."""
    results: Iterable = items
    for func in funcs:
        results = map(func, results)
    yield iter(results)


@contextlib.contextmanager
def open_numap(
    opts: Opts, worker_type: str, workers: int, funcs: Funcs, items: Iterable
) -> Iterator[Iterator]:
    from numap import NuMap

    numap = NuMap(
        worker_type=worker_type,
        worker_num=workers,
        stride=opts.get("stride"),
        buffer=opts.get("buffer"),
    )
    upstream: Iterable = items
    for func in funcs:
        upstream = numap.add_task(func, upstream)
    numap.start()
    try:
        yield iter(upstream)
    finally:
        numap.stop(ends=[len(funcs) - 1])


def _std_pool(module: Any, worker_type: str, workers: int) -> Any:
    if worker_type == "thread":
        return module.pool.ThreadPool(workers)
    return module.Pool(workers)


@contextlib.contextmanager
def _open_stdlib_like(
    module: Any,
    opts: Opts,
    worker_type: str,
    workers: int,
    funcs: Funcs,
    items: Iterable,
) -> Iterator[Iterator]:
    chunk = opts.get("chunk", 1)
    pools = [_std_pool(module, worker_type, workers) for _ in funcs]
    try:
        results: Iterable = items
        for pool, func in zip(pools, funcs, strict=True):
            results = pool.imap(func, results, chunk)
        yield iter(results)
    finally:
        for pool in pools:
            pool.terminate()
            pool.join()


def open_pool(
    opts: Opts, worker_type: str, workers: int, funcs: Funcs, items: Iterable
) -> Any:
    import multiprocessing
    import multiprocessing.pool

    return _open_stdlib_like(multiprocessing, opts, worker_type, workers, funcs, items)


def open_multiprocess(
    opts: Opts, worker_type: str, workers: int, funcs: Funcs, items: Iterable
) -> Any:
    import multiprocess  # type: ignore[import-untyped]
    import multiprocess.pool  # type: ignore[import-untyped]

    return _open_stdlib_like(multiprocess, opts, worker_type, workers, funcs, items)


@contextlib.contextmanager
def open_futures(
    opts: Opts, worker_type: str, workers: int, funcs: Funcs, items: Iterable
) -> Iterator[Iterator]:
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    chunk = opts.get("chunk", 1)
    if worker_type == "thread":
        executors: list = [ThreadPoolExecutor(workers) for _ in funcs]
    else:
        executors = [ProcessPoolExecutor(workers) for _ in funcs]
    try:
        results: Iterable = items
        for executor, func in zip(executors, funcs, strict=True):
            results = executor.map(func, results, chunksize=chunk)
        yield iter(results)
    finally:
        for executor in executors:
            executor.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def open_mpire(
    opts: Opts, worker_type: str, workers: int, funcs: Funcs, items: Iterable
) -> Iterator[Iterator]:
    from mpire import WorkerPool

    start_method = "threading" if worker_type == "thread" else "fork"
    chunk = opts.get("chunk", 1)
    pools = [WorkerPool(n_jobs=workers, start_method=start_method) for _ in funcs]
    try:
        results: Iterable = items
        for pool, func in zip(pools, funcs, strict=True):
            results = pool.imap(func, results, chunk_size=chunk)
        yield iter(results)
    finally:
        for pool in pools:
            pool.terminate()


@contextlib.contextmanager
def open_pypeln(
    opts: Opts, worker_type: str, workers: int, funcs: Funcs, items: Iterable
) -> Iterator[Iterator]:
    import pypeln

    flavour = pypeln.thread if worker_type == "thread" else pypeln.process
    maxsize = opts.get("maxsize", 0)
    stage: Any = items
    for func in funcs:
        stage = flavour.map(func, stage, workers=workers, maxsize=maxsize)
    yield iter(stage)


SYSTEMS: dict[str, Callable[..., Any]] = {
    "map": open_map,
    "numap": open_numap,
    "pool": open_pool,
    "multiprocess": open_multiprocess,
    "futures": open_futures,
    "mpire": open_mpire,
    "pypeln": open_pypeln,
}
