"""skip=True gives up exactly the result a timed-out next() waited for.

The contract: "results, which are not calculated on time will be omitted".
A timeout gives up one result, the next in line; the results behind it
come as soon as they are ready, and the late one is dropped when it comes.
"""

import threading
import time

import pytest
from numap import NuMap

RELEASE = threading.Event()


def late_one(x):
    """Item 1 waits for RELEASE (thread workers only); the others return at once."""
    if x == 1:
        RELEASE.wait(30)
    return x * 10


def sleepy_one(x):
    """Item 1 takes 6 s (any worker type), the others 0.2 s."""
    time.sleep(6 if x == 1 else 0.2)
    return x * 10


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("worker_type", "func", "count"),
    [
        ("thread", late_one, 5),
        # Three process workers and four items: item 3 goes to a worker
        # other than item 1's (a process worker keeps what it was given, so
        # an item queued behind the slow one would wait for it).
        ("process", sleepy_one, 4),
    ],
)
def test_results_behind_a_given_up_one_come_when_ready(worker_type, func, count):
    RELEASE.clear()
    numap = NuMap(
        func,
        range(count),
        worker_type=worker_type,
        worker_num=3,
        buffer=count,
        skip=True,
    )
    numap.start()
    try:
        assert numap.next() == 0
        with pytest.raises(TimeoutError):
            numap.next(timeout=0.3)  # gives up item 1
        # The items after it were computed long ago: each comes at once
        # (well within 2 s, while item 1 still runs), not after a timeout
        # of its own, which gave up one ready result after another.
        behind = [10 * item for item in range(2, count)]
        assert [numap.next(timeout=2) for _ in behind] == behind
        RELEASE.set()  # item 1's result now comes, and is dropped
        with pytest.raises(StopIteration):
            numap.next(timeout=10)
    finally:
        RELEASE.set()
        numap.stop()


@pytest.mark.timeout(60)
def test_each_timeout_gives_up_one_result_only():
    # Items 1 and 2 are both late (item 2 queued behind item 1 on the one
    # worker): two timeouts give up exactly those two, nothing more.
    RELEASE.clear()
    numap = NuMap(
        late_one, range(6), worker_type="thread", worker_num=1, buffer=6, skip=True
    )
    numap.start()
    try:
        assert numap.next() == 0
        for _ in range(2):
            with pytest.raises(TimeoutError):
                numap.next(timeout=0.1)
        RELEASE.set()
        assert list(numap) == [30, 40, 50]
    finally:
        RELEASE.set()
        numap.stop()


def waiting_input(gate, items_after_the_gate):
    yield 0
    gate.wait(30)
    yield from items_after_the_gate


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ordered", [True, False])
@pytest.mark.parametrize(
    ("after_the_gate", "timeouts", "left"),
    [
        # As 1.x: a timeout stands for the result the take waited for, even
        # when its item is still in the slow input. It is dropped when it
        # comes, so each timeout takes one result's place and the others
        # keep theirs: item 1 is given up, item 2's result is left.
        ([1, 2], 1, 1),
        # The input ends without the items the timeouts gave up: nothing
        # will come for them, and the map stops itself all the same.
        ([], 2, 0),
    ],
    ids=["item-not-entered-yet", "past-the-end"],
)
def test_a_timeout_before_the_item_entered_gives_it_up(
    ordered, after_the_gate, timeouts, left
):
    gate = threading.Event()
    numap = NuMap(
        late_one,
        waiting_input(gate, after_the_gate),
        worker_type="thread",
        worker_num=2,
        skip=True,
        ordered=ordered,
    )
    RELEASE.set()
    numap.start()
    try:
        assert numap.next() == 0
        for _ in range(timeouts):
            with pytest.raises(TimeoutError):
                numap.next(timeout=0.1)
        gate.set()
        assert len(list(numap)) == left
        assert not numap._started.is_set()  # stopped itself at its end
    finally:
        gate.set()
        numap.stop()


@pytest.mark.timeout(60)
def test_a_timeout_on_a_task_chained_to_a_tracked_one_gives_up_its_late_item():
    # A tracked task is not fused with the task it feeds, whose own count of
    # items only grows as it takes the upstream's results: the late item is
    # inside the map all the same (in the upstream's function), so the
    # timeout gives it up.
    RELEASE.clear()
    numap = NuMap(worker_type="thread", worker_num=2, buffer=8, skip=True)
    upstream = numap.add_task(late_one, range(4), track=True)
    chained = numap.add_task(late_one, upstream)
    numap.start()
    try:
        assert next(chained) == 0
        with pytest.raises(TimeoutError):
            numap.next(timeout=0.3, task=1)  # gives up item 1
        # Items 2 and 3 wait for item 1 in the ordered upstream task: they
        # come once it is done, and its own result is dropped.
        RELEASE.set()
        assert list(chained) == [200, 300]
    finally:
        RELEASE.set()
        numap.stop()


def stuck_one(x):
    """Item 3 takes a minute, the others return at once."""
    if x == 3:
        time.sleep(60)
    return x


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["range", "generator"])
def test_fast_items_do_not_queue_behind_a_stuck_one(kind):
    # Regression: an ordered process map queued fast items behind a busy
    # worker (for tiny items, to keep the others asleep); with skip=True the
    # items queued behind the stuck one were given up with it, and with
    # them the buffer: every later next() timed out, for ever.
    items = range(10) if kind == "range" else (x for x in range(10))
    numap = NuMap(stuck_one, items, worker_type="process", worker_num=2, skip=True)
    results = []
    try:
        while len(results) < 10:
            try:
                results.append(numap.next(timeout=1))
            except TimeoutError:
                results.append("timeout")
    finally:
        numap.stop(forced=True)
    assert results == [0, 1, 2, "timeout", 4, 5, 6, 7, 8, 9]
