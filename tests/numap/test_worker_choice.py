"""Which worker process gets a batch (numap._pool.pick_worker).

Fast items go to the first worker that will have finished what it holds
before the next batch is due, so that the other workers can sleep; slower
items go to the least loaded worker. The pool learns how fast items go
from the seconds each result frame carries.
"""

import contextlib
import functools
import os
import time

import numap._pool
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numap import NuMap, _protocol
from numap._channel import ProcessChannel
from numap._pool import _Worker, pick_worker


def workers_with(*loads: int) -> list[_Worker]:
    # _Worker is the pool's bookkeeping for a channel; the choice reads
    # only its load, so these carry no channel.
    workers = []
    for load in loads:
        worker = _Worker(None)  # type: ignore[arg-type]
        worker.load = load
        workers.append(worker)
    return workers


def test_no_worker_no_choice():
    assert pick_worker([], None, 0.0) is None
    assert pick_worker([], 0.001, 0.01) is None


def test_an_unknown_pace_picks_the_least_loaded_first_of_equals():
    workers = workers_with(2, 1, 3, 1)
    assert pick_worker(workers, None, 1.0) is workers[1]


def test_fast_items_queue_on_the_first_worker_that_keeps_up():
    # 1 item of 1 ms queued, the next batch due in 5 ms: the first worker
    # will be free by then, though the second is idle now.
    workers = workers_with(1, 0)
    assert pick_worker(workers, 0.001, 0.005) is workers[0]


def test_a_worker_that_would_not_keep_up_is_passed_over():
    # 5 items of 1 ms would end after the next batch is due (in 5 ms).
    workers = workers_with(5, 2, 0)
    assert pick_worker(workers, 0.001, 0.005) is workers[1]


def test_slow_items_go_to_an_idle_worker():
    workers = workers_with(1, 0)
    assert pick_worker(workers, 0.020, 0.010) is workers[1]


def test_before_a_second_batch_no_worker_keeps_up():
    # The gap between batches is 0.0 until a second batch was sent: the
    # least loaded worker, even for the fastest items.
    workers = workers_with(1, 0)
    assert pick_worker(workers, 1e-9, 0.0) is workers[1]


@given(
    loads=st.lists(st.integers(0, 50), min_size=1, max_size=8),
    item_seconds=st.none() | st.floats(1e-7, 1.0),
    gap=st.floats(0.0, 1.0),
)
def test_the_choice_is_the_first_that_keeps_up_or_else_the_least_loaded(
    loads, item_seconds, gap
):
    workers = workers_with(*loads)
    chosen = pick_worker(workers, item_seconds, gap)
    keeping_up = [
        worker
        for worker in workers
        if item_seconds is not None and worker.load * item_seconds < gap
    ]
    if keeping_up:
        assert chosen is keeping_up[0]
    else:
        least = min(loads)
        assert chosen is workers[loads.index(least)]


# -- the seconds a result frame carries ---------------------------------


def sleep_then_square(seconds, x):
    time.sleep(seconds)
    return x * x


@pytest.mark.timeout(20)
def test_a_result_frame_says_how_long_the_worker_spent_on_its_batch():
    channel = ProcessChannel()
    try:
        task = _protocol.dumps_task(
            [(functools.partial(sleep_then_square, 0.05), (), {})]
        )
        channel.send(_protocol.encode_task(0, task))
        channel.send(_protocol.encode_batch(7, 0, 0, 3, _protocol.dumps([1, 2, 3])))
        batch_id, seconds, payload = _protocol.decode_result(channel.recv())
    finally:
        channel.close()
    assert batch_id == 7
    assert _protocol.loads(payload) == ([1, 4, 9], {})
    # Three sleeps of 50 ms; the upper bound only says it is this batch's
    # time, not the worker's whole life.
    assert 0.15 <= seconds < 10


# -- with worker processes ------------------------------------------------


def pid_after(seconds, x):
    if seconds:
        time.sleep(seconds)
    return os.getpid()


@contextlib.contextmanager
def map_of_pids(seconds, count):
    """A running map of ``pid_after(seconds, x)`` over ``range(count)`` on two
    worker processes (the defaults otherwise); its results, and stop() at
    the end."""
    mapper = NuMap(worker_type="process", worker_num=2)
    results = mapper.add_task(functools.partial(pid_after, seconds), range(count))
    mapper.start()
    try:
        yield results
    finally:
        mapper.stop()


def pids_taken(results, count, pause=0.0):
    pids = []
    for _ in range(count):
        pids.append(next(results))
        if pause:
            time.sleep(pause)
    return pids


@pytest.mark.timeout(60)
def test_a_slow_consumer_keeps_fast_items_on_one_worker():
    # The consumer takes 2 ms per result; a worker needs microseconds per
    # item. Once the pool knows both, the first worker runs every item and
    # the second sleeps.
    with map_of_pids(0.0, 300) as results:
        pids = pids_taken(results, 300, pause=0.002)
    assert len(set(pids[100:])) == 1


@pytest.mark.timeout(60)
def test_slow_items_run_on_every_worker():
    # 30 ms items, a consumer that waits for them: each item goes to the
    # idle worker, as before the pool knew their pace.
    with map_of_pids(0.03, 40) as results:
        pids = pids_taken(results, 40)
    assert len(set(pids)) == 2
    assert min(pids.count(pid) for pid in set(pids)) >= 15


@pytest.mark.timeout(60)
def test_a_pause_of_the_consumer_does_not_pile_slow_items_on_one_worker():
    # After a 1 s pause the gap between batches jumps; without a ceiling on
    # how far one gap lifts the average, the next 20 ms items would all
    # queue on the first worker while the second idled.
    with map_of_pids(0.02, 60) as results:
        pids_taken(results, 20)
        time.sleep(1.0)
        # The two items in flight during the pause were sent before it.
        pids_taken(results, 2)
        after_pause = pids_taken(results, 10)
    assert len(set(after_pause)) == 2, after_pause


@pytest.mark.timeout(60)
def test_the_gap_ceiling_is_what_keeps_them_apart(monkeypatch):
    # The test above, with the ceiling lifted: it must fail, or it would not
    # be testing the ceiling.
    monkeypatch.setattr(numap._pool, "GAP_CEILING", float("inf"))
    with pytest.raises(AssertionError):
        test_a_pause_of_the_consumer_does_not_pile_slow_items_on_one_worker()
