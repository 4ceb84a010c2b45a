"""A map nobody holds any more is stopped; one somebody holds never is."""

import gc
import itertools
import os
import threading
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numap import NuMap
from polling import wait_until
from processes import alive


def worker_pid(_):
    return os.getpid()


def identity(x):
    return x


def double(x):
    return 2 * x


def threads_named(name):
    return [t for t in threading.enumerate() if name in t.name]


def first_results(worker_type, name, count):
    """Read ``count`` results of an endless map, then leave it: the map is
    never stopped, and nothing holds it once this returns."""
    results = []
    for result in NuMap(
        worker_pid, itertools.count(), worker_type=worker_type, worker_num=2, name=name
    ):
        results.append(result)
        if len(results) == count:
            break
    return results


@pytest.mark.timeout(60)
def test_an_abandoned_process_map_ends_its_workers():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pids = set()
        for round_number in range(3):
            pids |= set(first_results("process", f"left-{round_number}", 20))
    assert pids, "the workers' pids"
    assert wait_until(lambda: not alive(pids), seconds=20), alive(pids)
    assert wait_until(lambda: not threads_named("left-"), seconds=20)
    messages = [str(w.message) for w in caught if w.category is ResourceWarning]
    assert len(messages) == 3, messages
    assert all("collected while it ran" in message for message in messages)


@pytest.mark.timeout(60)
def test_an_abandoned_thread_map_ends_its_threads():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        first_results("thread", "thread-left", 5)
    assert wait_until(lambda: not threads_named("thread-left"), seconds=20), (
        threads_named("thread-left")
    )


@pytest.mark.timeout(60)
def test_a_stopped_or_finished_map_gives_no_warning_when_collected():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stopped = NuMap(identity, itertools.count(), worker_num=2)
        assert stopped.next() == 0
        stopped.stop()
        del stopped
        assert list(NuMap(double, range(10), worker_num=2)) == list(range(0, 20, 2))
        gc.collect()
    assert [w for w in caught if w.category is ResourceWarning] == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_an_iterator_keeps_its_map_running(worker_type):
    results = iter(NuMap(double, range(200), worker_type=worker_type, worker_num=2))
    gc.collect()
    taken = []
    for value in results:
        taken.append(value)
        if len(taken) % 50 == 0:
            gc.collect()
    assert taken == [2 * x for x in range(200)]


@pytest.mark.timeout(60)
def test_a_task_keeps_its_map_running():
    numap = NuMap(worker_num=2)
    numap.add_task(double, range(100))
    task = numap.get_task(0)
    numap.start()
    del numap
    gc.collect()
    assert list(task) == [2 * x for x in range(100)]


@pytest.mark.timeout(120)
@settings(max_examples=15, deadline=None)
@given(
    worker_type=st.sampled_from(["thread", "process"]),
    worker_num=st.integers(1, 3),
    stride=st.integers(1, 4),
    extra_buffer=st.integers(0, 4),
    size=st.integers(0, 60),
)
def test_maps_chained_across_maps_run_on_when_only_the_last_is_held(
    worker_type, worker_num, stride, extra_buffer, size
):
    # The second map reads the first through its task iterator: the user
    # holds only the second map's iterator, and collections in between
    # must not stop either map.
    def chain_to(func, iterable):
        return NuMap(
            func,
            iterable,
            worker_type=worker_type,
            worker_num=worker_num,
            stride=stride,
            buffer=stride + extra_buffer,
        )

    first = chain_to(double, range(size))
    second = chain_to(identity, iter(first))
    results = iter(second)
    del first, second
    taken = []
    for value in results:
        taken.append(value)
        gc.collect()
    assert taken == [2 * x for x in range(size)]
