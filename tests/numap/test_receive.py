"""Who receives the results of local worker processes.

A consumer waiting in next() reads the workers' pipes itself; a background
receiver takes over when no consumer waits. These tests cover the cases in
which the waiting consumer must be woken by something other than a frame on
a pipe, or in which nobody but the background receiver can read.
"""

import functools
import threading
import time

import numap._pool
import pytest
from numap import NuMap
from numap_outcomes import read_in_threads


def double(x):
    return x * 2


def big(x):
    return bytes([x % 256]) * (1 << 20)


def slow_double(x):
    time.sleep(0.05)
    return x * 2


def failing_input(count, bad):
    for x in range(count):
        if x == bad:
            raise ValueError(f"input item {x} is broken")
        yield x


@pytest.mark.timeout(60)
def test_two_threads_consume_two_tasks_at_once():
    # One consumer receives from the pipes; the other waits for deliveries.
    numap = NuMap(worker_num=2, stride=4, buffer=64, worker_type="process")
    first = numap.add_task(double, range(300))
    second = numap.add_task(double, range(1000, 1300))
    numap.start()
    results = {}

    def consume(name, iterator):
        results[name] = list(iterator)

    read_in_threads(
        numap,
        [
            functools.partial(consume, "first", first),
            functools.partial(consume, "second", second),
        ],
    )
    assert results["first"] == [x * 2 for x in range(300)]
    assert results["second"] == [x * 2 for x in range(1000, 1300)]


@pytest.mark.timeout(30)
def test_input_error_wakes_a_consumer_waiting_on_the_pipes():
    # The error is delivered by the feeder, not by a worker: the consumer
    # blocked on the pipes must still see it.
    numap = NuMap(slow_double, failing_input(6, bad=3), worker_num=2)
    numap.start()
    outcomes = []
    try:
        while True:
            try:
                outcomes.append(next(numap))
            except StopIteration:
                break
            except ValueError as error:
                outcomes.append(str(error))
    finally:
        numap.stop()
    assert outcomes == [0, 2, 4, "input item 3 is broken"]


@pytest.mark.timeout(30)
def test_stop_from_another_thread_ends_a_consumer_waiting_on_the_pipes():
    numap = NuMap(time.sleep, [3.0, 3.0], worker_num=2)
    numap.start()
    outcome = []

    def consume():
        try:
            outcome.append(next(numap))
        except StopIteration:
            outcome.append("stopped")

    consumer = threading.Thread(target=consume)
    consumer.start()
    time.sleep(0.3)  # let it wait in next()
    numap.stop()
    consumer.join(20)
    assert not consumer.is_alive()
    assert outcome in (["stopped"], [None])


@pytest.mark.timeout(60)
def test_large_results_to_a_consumer_that_is_away_do_not_deadlock():
    # 1 MiB results fill the pipes while the consumer is busy elsewhere;
    # the background receiver drains them so that sending can go on.
    numap = NuMap(big, range(40), worker_num=2, stride=4, buffer=16)
    numap.start()
    try:
        sizes = []
        for result in numap:
            time.sleep(0.02)
            sizes.append((len(result), result[0]))
    finally:
        numap.stop()
    assert sizes == [(1 << 20, x % 256) for x in range(40)]


@pytest.mark.timeout(30)
def test_non_blocking_next_polls_until_every_result_came():
    numap = NuMap(slow_double, range(20), worker_num=2, stride=2, buffer=4)
    numap.start()
    taken = []
    try:
        while len(taken) < 20:
            try:
                taken.append(numap.next(block=False))
            except TimeoutError:
                time.sleep(0.001)
    finally:
        numap.stop()
    assert taken == [x * 2 for x in range(20)]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stride, buffer", [(None, None), (64, 256)])
def test_results_arrive_where_select_poll_is_missing(monkeypatch, stride, buffer):
    # Without select.poll (numap._watch.HAVE_POLL false) the receiver waits
    # with multiprocess's wait() on the pipes instead of a Watcher.
    monkeypatch.setattr(numap._pool, "HAVE_POLL", False)
    with NuMap(double, range(2000), worker_num=2, stride=stride, buffer=buffer) as m:
        assert list(m) == [x * 2 for x in range(2000)]


def slow_first_fail_on_five(x):
    if x == 0:
        time.sleep(0.5)
    if x == 5:
        raise ValueError("five")
    return x


@pytest.mark.timeout(60)
def test_an_error_among_results_read_together_is_raised_in_its_place():
    # Results of consecutive batches that one read brings are delivered
    # together; that one delivery must say that it holds an error, or the
    # error is lent out as a value. Six batches of two items (the error in
    # the third) are all sent while the worker sleeps on item 0; then this
    # thread keeps the GIL (a loop in C) while the worker answers them
    # all, so no thread here reads the pipe until all six answers wait
    # there, and one read takes them.
    numap = NuMap(slow_first_fail_on_five, range(12), worker_num=1, stride=2, buffer=12)
    numap.start()
    time.sleep(0.2)
    sum(range(60_000_000))  # ~1 s here, without releasing the GIL
    outcomes = []
    for _ in range(12):
        try:
            outcomes.append(numap.next(timeout=10))
        except ValueError as error:
            outcomes.append(str(error))
    with pytest.raises(StopIteration):
        numap.next(timeout=10)
    numap.stop()
    assert outcomes == [0, 1, 2, 3, 4, "five", 6, 7, 8, 9, 10, 11]
