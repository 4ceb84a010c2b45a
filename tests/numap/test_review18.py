"""Regressions found by review 18: each test names the finding it covers."""

import threading
import time

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


# Second look at finding 1: while the feeder let the map's lock go to move
# chained tasks, a result could be delivered; its wake-up found nobody
# waiting, and the feeder then waited for good with the result ready. A
# map that merely held a tracked task with a chained one beside a plain
# read-back stalled so. The delay stands for the feeder being descheduled
# there (legal at any time), which made the race happen at every run.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_feeder_moving_chained_tasks_misses_no_result(worker_type, monkeypatch):
    feed_chained = NuMap._feed_chained

    def descheduled_feed_chained(self):
        if threading.current_thread().name.startswith("numap-feeder"):
            time.sleep(0.02)
        return feed_chained(self)

    monkeypatch.setattr(NuMap, "_feed_chained", descheduled_feed_chained)
    for _ in range(3):
        numap = NuMap(worker_type=worker_type, worker_num=2)
        plain = numap.add_task(plus_one, range(20))
        read_back = numap.add_task(plus_one, through(plain))
        tracked = numap.add_task(plus_one, range(20), track=True)
        chained = numap.add_task(plus_one, tracked)
        results: dict = {"read_back": [], "chained": []}
        readers = [
            threading.Thread(
                target=results[key].extend,
                args=(task,),
                daemon=True,
            )
            for key, task in (("read_back", read_back), ("chained", chained))
        ]
        for reader in readers:
            reader.start()
        for reader in readers:
            reader.join(20)
        assert not any(reader.is_alive() for reader in readers), results
        numap.stop()
        assert results["read_back"] == results["chained"] == [x + 2 for x in range(20)]
