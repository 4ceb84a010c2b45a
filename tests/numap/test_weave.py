"""The weave keeps every task's turn, even while the buffer is full.

A task may read another task of the same NuMap through the parent (its
iterable is a plain generator over that task's results, as a papy Piper's
inbox is), while a third task is chained natively. The feeder must not let
the first task feed again while the reading task waits for space: the
buffer would fill with results that only the reading task's input takes.
"""

import time

import pytest
from numap import NuMap


def double(x):
    return 2 * x


def plus_one(x):
    return x + 1


def read_through_parent(results):
    # A generator, not the task iterator itself: NuMap cannot see that it
    # reads its own task, as with a Piper's inbox.
    yield from results


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_slow_reader_of_a_chain_behind_a_parent_read_task(worker_type, stride):
    nm = NuMap(worker_type=worker_type, worker_num=2, stride=stride)
    first = nm.add_task(double, range(40))
    second = nm.add_task(plus_one, read_through_parent(first))
    third = nm.add_task(double, second)
    nm.start()
    try:
        # The consumer comes late, so the feeder fills the buffer and
        # waits; then the results are taken one by one.
        time.sleep(0.3)
        assert list(third) == [2 * (2 * x + 1) for x in range(40)]
    finally:
        nm.stop()
