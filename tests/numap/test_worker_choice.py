"""Which worker process gets a batch (numap._pool.pick_worker).

Fast items go to the first worker that will have finished what it holds
before the next batch is due, so that the other workers can sleep; slower
items go to the least loaded worker. The pool learns how fast items go
from the seconds each result frame carries.
"""

import contextlib
import functools
import os
import threading
import time

import numap._pool
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numap import NuMap, _protocol
from numap._channel import ProcessChannel
from numap._pool import KEEP_UP_SHARE, LATE_GAPS, _Worker, pick_worker

NOW = 100.0  # a time.perf_counter() reading


def worker_holding(
    load: int, free_in: float = 0.0, unpaced: int = 0, local: bool = True
) -> _Worker:
    """The pool's bookkeeping for a worker holding ``load`` items that it
    should be done with ``free_in`` seconds after NOW, besides ``unpaced``
    batches of tasks whose pace is unknown. The choice reads nothing else,
    so it carries no channel."""
    worker = _Worker(None)  # type: ignore[arg-type]
    worker.load = load
    worker.free_at = NOW + free_in if load else 0.0
    worker.unpaced = unpaced
    worker.local = local
    return worker


def test_no_worker_no_choice():
    assert pick_worker([], NOW, 0.0) is None
    assert pick_worker([], NOW, 0.01) is None


def test_without_known_paces_the_least_loaded_first_of_equals():
    workers = [worker_holding(n, unpaced=1) for n in (2, 1, 3, 1)]
    assert pick_worker(workers, NOW, 1.0) is workers[1]


def test_fast_items_queue_on_the_first_worker_that_keeps_up():
    # Done in 1 ms, the next batch due in 5 ms: the first worker will be
    # idle most of the time till then, though the second is idle now.
    workers = [worker_holding(1, 0.001), worker_holding(0)]
    assert pick_worker(workers, NOW, 0.005) is workers[0]


def test_a_worker_busy_for_more_than_half_the_gap_is_passed_over():
    # Done in 3 ms, the next batch due in 5 ms: it would be busy most of
    # the time, and may be what the parent waits for.
    workers = [worker_holding(1, 0.003), worker_holding(2, 0.002)]
    assert pick_worker(workers, NOW, 0.005) is workers[1]
    assert KEEP_UP_SHARE == 0.5


def test_a_worker_running_late_is_passed_over():
    # It should have been done 25 ms ago, five gaps: an item slower than
    # its task's average. A gap late is only an answer not read yet.
    late = [worker_holding(1, -0.025), worker_holding(1, 0.001)]
    assert pick_worker(late, NOW, 0.005) is late[1]
    unread = [worker_holding(1, -0.005), worker_holding(1, 0.001)]
    assert pick_worker(unread, NOW, 0.005) is unread[0]


def test_slow_items_go_to_an_idle_worker():
    workers = [worker_holding(1, 0.020), worker_holding(0)]
    assert pick_worker(workers, NOW, 0.010) is workers[1]


def test_a_batch_of_unknown_pace_never_counts_as_done_soon():
    # One batch of a task that has not answered yet: however fast the other
    # one goes, the worker may be busy with it for long.
    workers = [worker_holding(2, 1e-6, unpaced=1), worker_holding(0)]
    assert pick_worker(workers, NOW, 1.0) is workers[1]


def test_before_a_second_batch_no_worker_keeps_up():
    # The gap between batches is 0.0 until a second batch was sent: the
    # least loaded worker, even for the fastest items.
    workers = [worker_holding(1, 1e-9), worker_holding(0)]
    assert pick_worker(workers, NOW, 0.0) is workers[1]


def test_remote_workers_get_the_least_loaded_choice():
    workers = [worker_holding(1, 1e-6, local=False), worker_holding(0, local=False)]
    assert pick_worker(workers, NOW, 1.0) is workers[1]


@given(
    held=st.lists(
        st.tuples(
            st.integers(0, 50),
            st.floats(-1.0, 1.0),
            st.integers(0, 3),
            st.booleans(),
        ),
        min_size=1,
        max_size=8,
    ),
    gap=st.floats(0.0, 1.0),
)
def test_the_first_worker_that_fits_else_the_least_loaded(held, gap):
    # The rule as the docstring states it, checked over arbitrary pools.
    workers = [worker_holding(*args) for args in held]

    def fits(worker):
        if not worker.local:
            return False
        if not worker.load:
            return True
        window = (NOW - LATE_GAPS * gap, NOW + KEEP_UP_SHARE * gap)
        return not worker.unpaced and window[0] <= worker.free_at < window[1]

    fitting = [worker for worker in workers if fits(worker)]
    loads = [worker.load for worker in workers]
    expected = fitting[0] if fitting else workers[loads.index(min(loads))]
    assert pick_worker(workers, NOW, gap) is expected


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
def test_a_consumer_that_speeds_up_gets_every_worker_back():
    # 20 ms items behind a consumer that takes 50 ms per result: one worker
    # keeps up. Then the consumer takes them as fast as they come: a worker
    # running items back to back sets the pace between batches itself, and
    # must not be taken for one that keeps up with it. (20 ms items leave
    # room for a loaded machine: the worker choice needs the remaining work
    # under half the gap, ~10 ms with two workers, ~20 ms with one.)
    with map_of_pids(0.02, 60) as results:
        pids_taken(results, 20, pause=0.05)
        fast_phase = pids_taken(results, 40)
    assert len(set(fast_phase)) == 2, fast_phase
    assert min(fast_phase.count(pid) for pid in set(fast_phase)) >= 15, fast_phase


def tiny_but_every_thousandth(x):
    if x % 1000 == 500:
        time.sleep(0.2)
    return x


@pytest.mark.timeout(60)
def test_in_an_unordered_map_a_slow_item_holds_back_no_other():
    # Results come out as they are ready: the items after a slow one must
    # not queue behind it on its worker (the default buffer would then be
    # full of it and its follower, and the other worker idle).
    mapper = NuMap(worker_type="process", worker_num=2, ordered=False)
    results = mapper.add_task(tiny_but_every_thousandth, range(3000))
    mapper.start()
    try:
        order = list(results)
    finally:
        mapper.stop()
    assert sorted(order) == list(range(3000))
    # While item 500 sleeps, the other worker hands out the next ones (about
    # a thousand on a quiet machine; queued behind it, none would be).
    overtaking = [x for x in order[: order.index(500)] if x > 500]
    assert len(overtaking) >= 20


def pid_after_a_slow_hundredth(x):
    if x == 100:
        time.sleep(0.3)
    return os.getpid()


@pytest.mark.timeout(60)
def test_items_sent_while_a_worker_runs_late_go_to_another():
    # Fast items, room for 64 in flight, a consumer taking 1 ms a result:
    # one worker keeps up and gets them. Item 100 then runs 0.3 s; the 63
    # items sent meanwhile (as the consumer takes 37..99) must soon go to
    # the other worker, once the first is a few gaps past its expected end.
    # When each batch sent moved that end forward, all of them queued
    # behind item 100.
    mapper = NuMap(
        pid_after_a_slow_hundredth,
        range(200),
        worker_type="process",
        worker_num=2,
        buffer=64,
    )
    mapper.start()
    try:
        pids = pids_taken(mapper, 200, pause=0.001)
    finally:
        mapper.stop()
    behind_the_slow_one = [pid for pid in pids[101:164] if pid == pids[100]]
    assert len(behind_the_slow_one) < 20, len(behind_the_slow_one)


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
    assert min(after_pause.count(pid) for pid in set(after_pause)) >= 3, after_pause


@pytest.mark.timeout(60)
def test_the_gap_ceiling_is_what_keeps_them_apart(monkeypatch):
    # The test above, with the ceiling lifted: it must fail, or it would not
    # be testing the ceiling.
    monkeypatch.setattr(numap._pool, "GAP_CEILING", float("inf"))
    with pytest.raises(AssertionError):
        test_a_pause_of_the_consumer_does_not_pile_slow_items_on_one_worker()


class Deliveries:
    """A pool's deliver callback: the values of each delivered batch, by
    (task id, start), and a way to wait for them."""

    def __init__(self) -> None:
        self.values: dict[tuple[int, int], list] = {}
        self.arrived = threading.Condition()

    def __call__(self, task_id: int, start: int, values: list, errors: bool) -> None:
        with self.arrived:
            self.values[(task_id, start)] = values
            self.arrived.notify_all()

    def wait_for(self, task_id: int, start: int) -> list:
        with self.arrived:
            assert self.arrived.wait_for(
                lambda: (task_id, start) in self.values, timeout=10
            )
            return self.values[(task_id, start)]


@pytest.mark.timeout(60)
def test_a_task_is_judged_by_its_own_pace_not_another_tasks():
    # A fast task sets the pace: batches 5 ms apart, answered in
    # microseconds. Then a slow task's batches, two at a time, twice: the
    # first worker holds the first of each pair, and the second of the pair
    # must go to the idle worker, not queue behind it. In the first pair the
    # slow task has no pace yet (a batch of unknown pace never counts as
    # done soon); in the second, its own pace (0.2 s an item) says so, after
    # the fast task ran again. A pace shared by all tasks judged the first
    # worker by the fast task's items, and queued both pairs there.
    deliveries = Deliveries()
    pool = numap._pool.ProcessPool(2, deliveries)
    pool.set_tasks(
        [
            numap._pool.TaskSpec(functools.partial(pid_after, 0.0), (), {}),
            numap._pool.TaskSpec(functools.partial(pid_after, 0.2), (), {}),
        ]
    )
    pool.start()
    pairs = []
    try:
        for first in (0, 2):
            for start in range(first * 10, first * 10 + 20):
                pool.submit(0, start, [start])
                deliveries.wait_for(0, start)
                time.sleep(0.005)
            pool.submit(1, first, [first])
            time.sleep(0.005)
            pool.submit(1, first + 1, [first + 1])
            pairs.append(
                {deliveries.wait_for(1, first)[0], deliveries.wait_for(1, first + 1)[0]}
            )
    finally:
        pool.close()
    assert [len(pids) for pids in pairs] == [2, 2]
