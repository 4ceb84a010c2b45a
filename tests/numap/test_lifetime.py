"""A map nobody holds any more is stopped; one somebody holds never is."""

import atexit
import gc
import itertools
import json
import os
import threading
import time
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numap import NuMap
from polling import wait_until
from processes import alive
from python_runs import run_python


def worker_pid(_):
    return os.getpid()


def slow_worker_pid(_):
    # Slower than the parent's pace, so that both workers get items
    # (fast ones queue on one worker: see numap._pool.pick_worker).
    time.sleep(0.01)
    return os.getpid()


def identity(x):
    return x


def double(x):
    return 2 * x


def new_threads(before):
    return [t for t in threading.enumerate() if t not in before]


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
    before = threading.enumerate()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pids = set()
        for round_number in range(3):
            pids |= set(first_results("process", f"left-{round_number}", 20))
        # Inside the block: a map's last reference may be dropped a moment
        # later by one of its threads, which then gives the warning.
        assert pids, "the workers' pids"
        assert wait_until(lambda: not alive(pids), seconds=20), alive(pids)
        assert wait_until(lambda: not new_threads(before), seconds=20), new_threads(
            before
        )
    messages = [str(w.message) for w in caught if w.category is ResourceWarning]
    assert len(messages) == 3, messages
    assert all("collected while it ran" in message for message in messages)


@pytest.mark.timeout(60)
def test_an_abandoned_thread_map_ends_its_threads():
    before = threading.enumerate()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        first_results("thread", "thread-left", 5)
    assert wait_until(lambda: not new_threads(before), seconds=20), new_threads(before)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_an_abandoned_map_chained_within_itself_ends_without_a_gc_run(worker_type):
    # A task reading a task of its own map: the map must not sit in a
    # reference cycle that only the cyclic collector would free.
    before = threading.enumerate()
    gc.disable()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            numap = NuMap(worker_type=worker_type, worker_num=2, stride=2)
            first = numap.add_task(double, itertools.count(), track=True)
            second = numap.add_task(worker_pid, first)
            pids = set(itertools.islice(second, 10))
            del numap, first, second
        assert wait_until(lambda: not new_threads(before), seconds=20)
    finally:
        gc.enable()
    assert alive(pids if worker_type == "process" else ()) == []


@pytest.mark.timeout(60)
def test_a_map_collected_while_its_lock_is_held_does_not_deadlock():
    # Its finalizer may run inside any garbage collection, also one in a
    # thread that holds the map's lock (the feeder inside its wait): it
    # must take no lock and start no thread there.
    before = threading.enumerate()
    numap = NuMap(worker_pid, itertools.count(), worker_num=2)
    pids = {numap.next() for _ in range(4)}
    lock = numap._lock
    with warnings.catch_warnings(), lock:
        warnings.simplefilter("ignore", ResourceWarning)
        del numap  # the finalizer runs here, with the lock held
    assert wait_until(lambda: not alive(pids), seconds=20), alive(pids)
    assert wait_until(lambda: not new_threads(before), seconds=20), new_threads(before)


class SlowDelivery(NuMap):
    """Holds each delivery back, so that the test can drop the map while
    a worker thread delivers (and holds the last reference)."""

    delivering = threading.Event()

    def _deliver(self, task_id, start, values, errors):
        self.delivering.set()
        time.sleep(0.3)
        super()._deliver(task_id, start, values, errors)


@pytest.mark.timeout(60)
def test_a_thread_map_freed_on_its_own_worker_thread_does_not_deadlock():
    # The worker thread frees the map inside its delivery; the map's input
    # generator then closes, and its cleanup starts another map, which
    # ends the abandoned maps: this one's pool among them, on its own
    # worker thread.
    cleaned_up = threading.Event()

    def numbers():
        try:
            yield from itertools.count()
        finally:
            assert list(NuMap(double, range(3), worker_num=1)) == [0, 2, 4]
            cleaned_up.set()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        numap = SlowDelivery(
            identity, numbers(), worker_type="thread", worker_num=1, buffer=4
        )
        results = iter(numap)
        assert next(results) == 0
        SlowDelivery.delivering.clear()
        assert SlowDelivery.delivering.wait(10)
        del results, numap  # the worker thread holds the last reference now
        assert cleaned_up.wait(20)


@pytest.mark.timeout(60)
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_an_abandoned_map_ends_even_when_its_warning_is_an_error():
    # The finalizer's warning raises, and Python only prints that.
    before = threading.enumerate()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        pids = set(first_results("process", "erring", 10))
    assert wait_until(lambda: not alive(pids), seconds=20), alive(pids)
    assert wait_until(lambda: not new_threads(before), seconds=20), new_threads(before)


def results_around_a_fork(in_the_child):
    """The 40 results of a process map read in this process, which forks
    after the first 4; the child runs ``in_the_child(held)`` (``held``:
    the child's references to its copy of the map) and leaves."""
    held = {"numap": NuMap(slow_worker_pid, range(40), worker_num=2)}
    held["results"] = iter(held["numap"])
    taken = [next(held["results"]) for _ in range(4)]
    child = os.fork()
    if child == 0:
        try:
            in_the_child(held)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    return taken + list(held["results"])


def drop_the_copy(held):
    # The child's copy is its to drop: its finalizer must not end the
    # parent's workers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        held.clear()
        gc.collect()
        time.sleep(0.5)


def exit_normally(held):
    # A normal exit runs the exit handlers: numap's must leave the
    # parent's maps alone. (multiprocess's own ends the daemon processes
    # it knows, the parent's workers too, whatever numap does: a forked
    # child should leave with os._exit.)
    import multiprocess.util

    atexit.unregister(multiprocess.util._exit_function)
    atexit._run_exitfuncs()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("in_the_child", [drop_the_copy, exit_normally])
def test_a_forked_child_leaves_the_parents_map_alone(in_the_child):
    results = results_around_a_fork(in_the_child)
    assert len(results) == 40
    assert len(set(results)) == 2, "no worker was lost and replaced"


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
def test_an_abandoned_map_without_a_waiting_feeder_ends_at_the_next_start():
    # All of its input entered (the buffer holds it): its feeder has
    # ended, so the next start of any map ends its workers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        numap = NuMap(worker_pid, range(3), worker_num=2, stride=2, buffer=8)
        pids = {numap.next()}
        feeder = numap._feeder
        del numap
        assert wait_until(lambda: not feeder.is_alive(), seconds=10)
    assert list(NuMap(double, range(3), worker_num=1)) == [0, 2, 4]
    assert wait_until(lambda: not alive(pids), seconds=20), alive(pids)


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
        # (Every fifth result: a full collection here takes ~25 ms.)
        if len(taken) % 5 == 1:
            gc.collect()
    assert taken == [2 * x for x in range(size)]


@pytest.mark.timeout(90)
def test_a_forked_child_starting_a_map_leaves_the_parents_abandoned_map_alone():
    # The abandoned map's feeder had ended (all its input entered), so its
    # pool waits in this process's queue of maps to end. A child forked
    # then gets a copy of that queue; starting a map there ends the queued
    # maps of the child's own process only. The parent's exit ends them.
    result = run_python(
        """
        import gc, json, os, warnings
        import psutil
        from numap import NuMap

        warnings.simplefilter("ignore", ResourceWarning)
        numap = NuMap(abs, range(3), worker_num=2, stride=2, buffer=8)
        numap.next()
        feeder = numap._feeder
        workers = sorted(child.pid for child in psutil.Process().children())
        del numap
        gc.collect()
        feeder.join(10)
        assert not feeder.is_alive(), "the feeder ended"
        child = os.fork()
        if child == 0:
            ran = False
            try:
                ran = list(NuMap(abs, range(-3, 0), worker_type="thread")) == [3, 2, 1]
            finally:
                os._exit(0 if ran else 1)
        _, status = os.waitpid(child, 0)
        running = [
            pid for pid in workers
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        print(json.dumps([workers, os.waitstatus_to_exitcode(status), running]))
        """
    )
    assert result.returncode == 0, result.stderr
    workers, child_code, running = json.loads(result.stdout)
    assert len(workers) == 2
    assert child_code == 0, "the child's own map ran"
    assert running == workers, "the child ended none of the parent's workers"
    assert wait_until(lambda: not alive(workers), seconds=20), alive(workers)
