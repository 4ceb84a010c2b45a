"""Failure paths: each affected item yields an error, the rest goes on."""

import asyncio
import ctypes
import os
import signal
import threading
import time

import pytest
from capped_threads import CAP_THREADS, capped_address_space, run_capped
from numap import NuMap, NuMapError, SerializationError, WorkerLostError
from numap._channel import ProcessChannel
from numap_outcomes import collect, run, run_chain
from python_runs import run_python


def kill_on_three(x):
    if x == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return x * 10


def segfault_on_three(x):
    if x == 3:
        ctypes.string_at(0)
    return x * 10


def exit_on_three(x):
    if x == 3:
        os._exit(7)
    return x * 10


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("func", "cause"),
    [
        (kill_on_three, "killed by SIGKILL"),
        (segfault_on_three, "killed by SIGSEGV"),
        (exit_on_three, "exited with code 7"),
    ],
)
def test_lost_worker_turns_its_items_into_errors_and_is_replaced(func, cause):
    outcomes = run(func, range(8), worker_num=2)
    assert len(outcomes) == 8
    kind, error = outcomes[3]
    assert kind == "error"
    assert isinstance(error, WorkerLostError)
    assert cause in str(error)
    assert "process " in str(error) and "item 3 of task 0" in str(error)
    lost_process = str(error).split(" was ")[0].split(" exited ")[0]
    # Items before 3 were answered before the worker died. The buffer (2 by
    # default) lets one more item be in flight: item 4 may have been queued
    # behind item 3 on the same worker (fast items share a worker, see
    # numap._pool.pick_worker), and is then lost with it, saying so. The
    # replacement runs the rest.
    assert outcomes[:3] == [("ok", 0), ("ok", 10), ("ok", 20)]
    kind, value = outcomes[4]
    if kind == "error":
        assert isinstance(value, WorkerLostError)
        assert str(value).startswith(lost_process)
        assert "item 4 of task 0" in str(value)
    else:
        assert value == 40
    assert outcomes[5:] == [("ok", x * 10) for x in (5, 6, 7)]


def reasons_for_a_killed_worker(askers: int) -> tuple[int, list[str]]:
    """(pid, what each of ``askers`` threads asking at once was told)."""
    channel = ProcessChannel()
    start = threading.Barrier(askers)
    reasons: list[str] = []

    def ask():
        start.wait()
        reasons.append(channel.loss_reason())

    try:
        os.kill(channel.pid, signal.SIGKILL)
        threads = [threading.Thread(target=ask) for _ in range(askers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        channel.close()
    return channel.pid, reasons


@pytest.mark.timeout(60)
def test_threads_that_find_a_worker_dead_at_once_all_say_how_it_died():
    # The submitter (a write fails) and the receiver (a read ends) may both
    # ask why a worker is gone. Both reap the process then; they used to
    # race, and the loser said "stopped answering".
    for _ in range(30):
        pid, reasons = reasons_for_a_killed_worker(askers=4)
        assert reasons == [f"process {pid} was killed by SIGKILL"] * 4


@pytest.mark.timeout(30)
def test_lost_worker_errors_every_item_of_its_batch_and_stream_goes_on():
    # One worker, batches of 4, one batch in flight: the whole batch held
    # by the dying worker is lost; the replacement runs the next batches.
    outcomes = run(kill_on_three, range(12), worker_num=1, stride=4, buffer=4)
    kinds = [kind for kind, _ in outcomes]
    assert kinds == ["error"] * 4 + ["ok"] * 8
    assert [value for _, value in outcomes[4:]] == [x * 10 for x in range(4, 12)]


def always_dies(x):
    os._exit(1)


@pytest.mark.timeout(60)
def test_function_that_always_kills_its_worker_does_not_hang():
    outcomes = run(always_dies, range(6), worker_num=2)
    assert len(outcomes) == 6
    assert all(isinstance(error, WorkerLostError) for _, error in outcomes)


class HoldsAGenerator:
    """A callable that neither pickle nor dill can serialise."""

    def __init__(self):
        self.state = (i for i in range(3))

    def __call__(self, x):
        return x


@pytest.mark.timeout(30)
def test_unpicklable_function_makes_every_item_an_error():
    outcomes = run(HoldsAGenerator(), range(5), worker_num=2)
    assert len(outcomes) == 5
    for kind, error in outcomes:
        assert kind == "error"
        assert isinstance(error, SerializationError)
        assert "function" in str(error) and "task 0" in str(error)


@pytest.mark.timeout(30)
def test_unpicklable_function_runs_on_threads():
    outcomes = run(HoldsAGenerator(), range(5), worker_type="thread")
    assert outcomes == [("ok", x) for x in range(5)]


def identity(x):
    return x


@pytest.mark.timeout(30)
def test_unpicklable_argument_is_an_error_for_that_item_only():
    items = [1, 2, (i for i in range(2)), 4, 5, 6]
    outcomes = run(identity, items, worker_num=2, stride=6)
    assert outcomes[:2] == [("ok", 1), ("ok", 2)]
    kind, error = outcomes[2]
    assert kind == "error" and isinstance(error, SerializationError)
    assert "item 2 of task 0" in str(error)
    assert outcomes[3:] == [("ok", 4), ("ok", 5), ("ok", 6)]


def generator_for_two(x):
    if x == 2:
        return (i for i in range(3))
    return x


@pytest.mark.timeout(30)
def test_unpicklable_result_is_an_error_for_that_item_only():
    outcomes = run(generator_for_two, range(5), worker_num=2, stride=5)
    assert [kind for kind, _ in outcomes] == ["ok", "ok", "error", "ok", "ok"]
    assert isinstance(outcomes[2][1], SerializationError)
    assert "result for item 2 of task 0" in str(outcomes[2][1])


def fail_on_odd(x):
    if x % 2:
        raise ValueError(f"odd item {x}")
    return x


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_exception_in_function_is_raised_for_its_item_and_map_goes_on(worker_type):
    outcomes = run(fail_on_odd, range(6), worker_type=worker_type, worker_num=2)
    assert [kind for kind, _ in outcomes] == ["ok", "error"] * 3
    error = outcomes[1][1]
    assert isinstance(error, ValueError) and str(error) == "odd item 1"
    if worker_type == "process":
        assert "raise ValueError" in error.__notes__[0]
    else:
        assert error.__traceback__ is not None


def raise_base_exception(kind):
    raise kind("from the function")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_base_exception_from_the_function_is_its_items_error(worker_type):
    # Not Exceptions, but raised by the user's function, never by a signal
    # (workers get none): each is its item's error, as in
    # concurrent.futures. A thread worker used to die of it, and the map
    # waited forever for the item.
    kinds = [KeyboardInterrupt, GeneratorExit, asyncio.CancelledError, SystemExit]
    numap = NuMap(raise_base_exception, kinds, worker_type=worker_type, worker_num=2)
    raised = []
    for _ in kinds:
        try:
            numap.next(timeout=10)
        except BaseException as error:
            raised.append(type(error))
    assert raised == kinds
    with pytest.raises(StopIteration):
        numap.next(timeout=10)
    numap.stop()


def failing_input():
    yield 1
    raise RuntimeError("input broke")


@pytest.mark.timeout(30)
def test_exception_from_the_input_is_that_items_error():
    outcomes = run(identity, failing_input(), worker_type="thread")
    assert outcomes[0] == ("ok", 1)
    assert outcomes[1][0] == "error" and "input broke" in str(outcomes[1][1])
    assert len(outcomes) == 2


class FailsOnMultiplesOfThree:
    """An input iterator that raises on some items and goes on after them."""

    def __init__(self, count):
        self.next_item = 0
        self.count = count

    def __iter__(self):
        return self

    def __next__(self):
        item = self.next_item
        if item == self.count:
            raise StopIteration
        self.next_item += 1
        if item % 3 == 0:
            raise RuntimeError(f"input broke at {item}")
        return item


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
@pytest.mark.parametrize("stride", [2, 6])  # batches of one item, of three
def test_each_failing_input_item_is_an_error_and_the_input_goes_on(worker_type, stride):
    outcomes = run(
        identity,
        FailsOnMultiplesOfThree(10),
        worker_type=worker_type,
        worker_num=2,
        stride=stride,
    )
    assert len(outcomes) == 10
    for item, (kind, value) in enumerate(outcomes):
        if item % 3 == 0:
            assert kind == "error" and str(value) == f"input broke at {item}"
        else:
            assert (kind, value) == ("ok", item)


@pytest.mark.timeout(30)
def test_errors_pass_through_chained_tasks():
    outcomes = run_chain(
        [fail_on_odd, identity], range(6), worker_type="process", worker_num=2
    )
    assert [kind for kind, _ in outcomes] == ["ok", "error"] * 3
    assert str(outcomes[3][1]) == "odd item 3"


def slow_first(x):
    if x == 0:
        time.sleep(0.5)
    return x


@pytest.mark.timeout(30)
def test_timeout_without_skip_returns_the_late_result_later():
    numap = NuMap(slow_first, range(3), worker_type="thread", worker_num=2)
    numap.start()
    try:
        with pytest.raises(TimeoutError):
            numap.next(timeout=0.01)
        assert [numap.next(), numap.next(), numap.next()] == [0, 1, 2]
        with pytest.raises(StopIteration):
            numap.next()
    finally:
        numap.stop()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("ordered", [True, False])
def test_timeout_with_skip_drops_the_late_result(ordered):
    numap = NuMap(
        slow_first,
        range(3),
        worker_type="thread",
        worker_num=2,
        skip=True,
        ordered=ordered,
    )
    numap.start()
    try:
        if ordered:
            with pytest.raises(TimeoutError):
                numap.next(timeout=0.01)
            assert list(numap) == [1, 2]
        else:
            assert numap.next() in (1, 2)
            assert numap.next() in (1, 2)
            with pytest.raises(TimeoutError):
                numap.next(timeout=0.01)
            with pytest.raises(StopIteration):
                numap.next()
    finally:
        numap.stop()


@pytest.mark.timeout(30)
def test_non_blocking_next_raises_timeout_when_nothing_is_ready():
    numap = NuMap(slow_first, [0], worker_type="thread", worker_num=1)
    numap.start()
    try:
        with pytest.raises(TimeoutError):
            numap.next(block=False)
        assert numap.next() == 0
    finally:
        numap.stop()


@pytest.mark.timeout(30)
def test_no_worker_left_is_an_error_not_a_hang():
    # A process NuMap whose every worker is lost and cannot be replaced:
    # simulated by closing the pool's workers before feeding.
    numap = NuMap(identity, range(4), worker_num=1)
    numap.start(stages=(1,))
    pool = numap._pool
    pool._closing = True  # lost workers will not be replaced
    for worker in list(pool._workers):
        os.kill(worker.channel.pid, signal.SIGKILL)
        pool._lose(worker, "killed by the test")
    numap.start(stages=(2,))
    try:
        outcomes = collect(numap)
    finally:
        numap.stop()
    assert len(outcomes) == 4
    assert all(isinstance(error, NuMapError) for _, error in outcomes)
    assert "no worker is left" in str(outcomes[0][1])
    assert "start it again" in str(outcomes[0][1])  # says what to do


class Abort(BaseException):
    """Not an Exception: still an item's error when the input raises it."""


class InterruptingInput:
    """An input that raises a BaseException (not an Exception) after 2 items."""

    def __init__(self):
        self.count = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.count += 1
        if self.count > 2:
            raise Abort("input interrupted")
        return self.count


@pytest.mark.timeout(30)
def test_a_base_exception_from_the_input_is_an_items_error_not_a_hang():
    # On the feeder thread no real Ctrl-C arrives: whatever the input raises
    # is that item's error (an input raising for ever is ended after
    # INPUT_ERRORS_IN_A_ROW of them, see test_review17.py).
    numap = NuMap(identity, InterruptingInput(), worker_type="thread", stride=1)
    numap.start()
    try:
        assert [numap.next(), numap.next()] == [1, 2]
        with pytest.raises(Abort, match="input interrupted"):
            numap.next()
        with pytest.raises(Abort, match="input interrupted"):
            numap.next()
    finally:
        numap.stop()


SHORT_OF_WORKER_THREADS = (
    CAP_THREADS
    + """
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    numap = NuMap(lambda x: x * 2, range(100), worker_type="thread", worker_num=8)
    cap(room_for_stacks=2)
    numap.start(stages=(1,))  # the first worker, and the starter of the rest
    deadline = time.monotonic() + 20
    while not caught and time.monotonic() < deadline:
        time.sleep(0.01)
    lift()
    numap.start(stages=(2,))
    results = list(numap)
    numap.stop()
assert results == [x * 2 for x in range(100)], results
print([str(w.message) for w in caught if w.category is RuntimeWarning])
"""
)

NO_ROOM_FOR_THE_FEEDER = (
    CAP_THREADS
    + """
numap = NuMap(lambda x: x, range(10), worker_type="process", worker_num=1)
numap.start(stages=(1,))
outcome = []

def consume():
    try:
        outcome.append(list(numap))
    except NuMapError as error:
        outcome.append(str(error))

waiting = threading.Thread(target=consume)
waiting.start()
time.sleep(0.2)  # it waits in next(): stage 2 has not run
cap(room_for_stacks=0)
try:
    numap.start(stages=(2,))
except NuMapError as error:
    print("refused:", error)
lift()
waiting.join(10)
print("other consumer:", outcome)
try:
    print("later next:", next(numap))
except NuMapError as error:
    print("later next:", error)
numap.stop()
"""
)

NO_ROOM_FOR_THE_STARTER = (
    CAP_THREADS
    + """
numap = NuMap(lambda x: x, range(10), worker_type="thread", worker_num=4)
cap(room_for_stacks=1)  # the first worker, not the starter of the others
try:
    numap.start()
except NuMapError as error:
    print("refused:", error)
lift()
deadline = time.monotonic() + 10
def left():
    return [t.name for t in threading.enumerate() if t.name.startswith("numap")]
while left() and time.monotonic() < deadline:
    time.sleep(0.01)
print("threads left:", left())
"""
)

NO_ROOM_FOR_THE_RECEIVER = (
    CAP_THREADS
    + """
import psutil
numap = NuMap(lambda x: x, range(10), worker_type="process", worker_num=2)
cap(room_for_stacks=0)
try:
    numap.start()
except NuMapError as error:
    print("refused:", error)
lift()
print("children left:", len(psutil.Process().children()))
"""
)


@pytest.mark.timeout(60)
@capped_address_space
def test_thread_pool_short_of_threads_warns_and_finishes_with_those_it_has():
    out = run_capped(SHORT_OF_WORKER_THREADS)
    assert "of 8 worker threads; cannot start worker thread" in out


@pytest.mark.timeout(60)
@capped_address_space
def test_feeder_that_cannot_start_is_an_error_and_stops_the_map():
    out = run_capped(NO_ROOM_FOR_THE_FEEDER)
    assert "refused:" in out and "cannot start the feeder thread" in out
    assert "the start was undone" in out
    # Nobody waits for results that will never come.
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert "failed and was undone" in lines["other consumer"]
    # The undone map starts afresh, now that threads can start again.
    assert lines["later next"] == "0"


@pytest.mark.timeout(60)
@capped_address_space
def test_process_pool_that_cannot_start_its_receiver_leaves_no_worker():
    out = run_capped(NO_ROOM_FOR_THE_RECEIVER)
    assert "refused: cannot start the thread that receives results" in out
    assert "children left: 0" in out


@pytest.mark.timeout(60)
@capped_address_space
def test_thread_pool_whose_starter_cannot_start_ends_its_first_worker():
    out = run_capped(NO_ROOM_FOR_THE_STARTER)
    assert "refused: cannot start the starter of the worker threads" in out
    assert "threads left: []" in out


LAMBDA_OVER_A_GENERATOR = """
from numap import NuMap

def make():
    numbers = (i for i in range(3))
    return lambda x: (x, numbers)

numap = NuMap(make(), range(2), worker_num=1)
try:
    next(numap)
except Exception as error:
    print(type(error).__name__, error)
numap.stop()
"""


@pytest.mark.timeout(30)
def test_an_unpicklable_lambda_is_told_dills_reason_not_that_it_is_a_lambda():
    # A script's functions go by value, with dill first. Plain pickle
    # refuses every local lambda; dill refuses this one for the generator
    # it holds: that is the reason to give.
    done = run_python(LAMBDA_OVER_A_GENERATOR, timeout=25)
    assert done.stdout.startswith("SerializationError"), done.stderr
    assert "generator" in done.stdout, done.stdout
    assert "local object" not in done.stdout, done.stdout


def stopping_input(numaps):
    yield 1
    yield 2
    numaps[0].stop()
    yield 3


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
@pytest.mark.parametrize("stride", [1, 4])
def test_stop_called_by_the_input_iterator_is_an_error_not_a_hang(worker_type, stride):
    # The input iterator runs while the map feeds itself (in the feeder
    # thread, or in a consumer that feeds a step): stop() there waited
    # for the feeding its own thread was doing.
    numaps: list = []
    numap = NuMap(
        identity,
        stopping_input(numaps),
        worker_type=worker_type,
        worker_num=2,
        stride=stride,
    )
    numaps.append(numap)
    outcomes = collect(numap)
    assert [value for kind, value in outcomes if kind == "ok"] == [1, 2]
    kind, error = outcomes[-1]
    assert kind == "error" and isinstance(error, NuMapError)
    # The input's error is its item's error, as for any input that raises.
    assert "stop() was called by the map's own input iterator" in str(error)
    numap.stop()


def stop_my_map(numaps):
    numaps[0].stop()


@pytest.mark.timeout(30)
def test_stop_called_by_a_thread_workers_function_is_that_items_error():
    numaps: list = []
    numap = NuMap(stop_my_map, [numaps], worker_type="thread", worker_num=1)
    numaps.append(numap)
    with pytest.raises(NuMapError, match="called by the map's own function"):
        numap.next(timeout=10)
    numap.stop()
