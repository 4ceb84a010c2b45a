"""Regressions found by review 18: each test names the finding it covers."""

import threading

import pytest
from numap import NuMap


def plus_one(x):
    return x + 1


def through(iterator):
    """The items of ``iterator``, from a generator of the user's own."""
    yield from iterator


# Finding 1: a task chained to a tracked task is not fused with it, and only
# the holder of the feed role moves it. When the feeder itself read that
# task (an input of the same map reading it through a generator), it waited
# for itself: 0 results, for good.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_chain_with_a_tracked_link_read_back_by_its_own_map(worker_type):
    numap = NuMap(worker_type=worker_type, worker_num=2)
    first = numap.add_task(plus_one, range(5), track=True)
    second = numap.add_task(plus_one, first)
    third = numap.add_task(plus_one, through(second))
    results: list = []
    reader = threading.Thread(target=lambda: results.extend(third), daemon=True)
    reader.start()
    reader.join(30)
    assert not reader.is_alive(), f"stalled after {results}"
    numap.stop()
    assert results == [x + 3 for x in range(5)]
    assert numap._tasks_tracked[0] == {x: x + 1 for x in range(5)}


# Finding 4: a thread map given worker_num=0 was told to use remote
# workers, which a thread map refuses.
@pytest.mark.timeout(10)
def test_worker_num_zero_on_threads_gives_advice_that_applies():
    with pytest.raises(ValueError, match="thread map runs on threads") as refused:
        NuMap(worker_type="thread", worker_num=0)
    assert "worker_remote" not in str(refused.value)
    with pytest.raises(ValueError, match=r"worker_remote=\[\(host, n\)\]"):
        NuMap(worker_type="process", worker_num=0)
