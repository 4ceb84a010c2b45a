"""Regressions found by review 17: each test names the finding it covers."""

import concurrent.futures
import os
import time
from pathlib import Path

import pytest
from numap import NuMap, NuMapError, SerializationError, WorkerLostError, imports
from numap._numap import INPUT_ERRORS_IN_A_ROW
from numap._protocol import Terminated
from numap_outcomes import collect, read_in_threads, run
from python_runs import run_python


def stop_iteration_on_two(x):
    if x == 2:
        next(iter([]))  # the StopIteration of an exhausted iterator
    return x * 10


def plus_one(x):
    return x + 1


def _assert_item_two_is_a_runtime_error(outcomes, expected_values):
    """``outcomes`` as numap_outcomes.collect gives them, in input order:
    item 2 is a RuntimeError about StopIteration, the others their values."""
    assert len(outcomes) == len(expected_values)
    kind, error = outcomes[2]
    assert kind == "error"
    assert isinstance(error, RuntimeError)
    assert "raised StopIteration" in str(error)
    assert [value for kind, value in outcomes if kind == "ok"] == [
        value for index, value in enumerate(expected_values) if index != 2
    ]


# Finding 1: map() inside run_batch took a StopIteration from the function as
# the end of the batch: the map waited forever for the rest of the batch.


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
@pytest.mark.parametrize("stride", [1, 6])
def test_stop_iteration_from_the_function_is_that_items_error(worker_type, stride):
    outcomes = run(
        stop_iteration_on_two,
        range(6),
        worker_type=worker_type,
        worker_num=2,
        stride=stride,
        buffer=6,
    )
    _assert_item_two_is_a_runtime_error(outcomes, [0, 10, 20, 30, 40, 50])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_stop_iteration_unordered_gives_every_other_result(worker_type):
    outcomes = run(
        stop_iteration_on_two,
        range(6),
        worker_type=worker_type,
        worker_num=2,
        stride=6,
        ordered=False,
    )
    errors = [value for kind, value in outcomes if kind == "error"]
    assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
    assert sorted(value for kind, value in outcomes if kind == "ok") == [
        0,
        10,
        30,
        40,
        50,
    ]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_stop_iteration_in_a_fused_chain_is_that_items_error(worker_type):
    numap = NuMap(worker_type=worker_type, worker_num=2, stride=6)
    first = numap.add_task(stop_iteration_on_two, range(6))
    second = numap.add_task(plus_one, first)
    numap.start()
    try:
        outcomes = collect(second)
    finally:
        numap.stop()
    _assert_item_two_is_a_runtime_error(outcomes, [1, 11, 21, 31, 41, 51])


# Finding 2: an iterable whose __iter__ raised undid the start, and every
# next() started the map again and raised again, for ever.


class IterRaises:
    def __iter__(self):
        raise ValueError("cannot iterate")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_an_iter_that_raises_is_one_error_item_then_the_end(worker_type):
    numap = NuMap(worker_type=worker_type, worker_num=2)
    bad = numap.add_task(plus_one, IterRaises())
    good = numap.add_task(plus_one, range(3))
    numap.start()
    try:
        bad_outcomes = collect(bad)
        good_outcomes = collect(good)
    finally:
        numap.stop()
    assert len(bad_outcomes) == 1
    kind, error = bad_outcomes[0]
    assert kind == "error" and isinstance(error, ValueError)
    assert str(error) == "cannot iterate"
    assert good_outcomes == [("ok", 1), ("ok", 2), ("ok", 3)]


# Finding 3: an input that keeps raising gave error items for ever.


class RaisesAfterTwo:
    """Gives 0 and 1, then raises RuntimeError on every pull."""

    def __init__(self):
        self.pulls = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.pulls += 1
        if self.pulls > 2:
            raise RuntimeError(f"bad pull {self.pulls}")
        return self.pulls - 1


class RaisesEveryOtherPull:
    """Raises on every other pull, 300 times, then ends: never twice in a
    row, so the input is never ended early."""

    def __init__(self):
        self.pulls = 0

    def __iter__(self):
        return self

    def __next__(self):
        self.pulls += 1
        if self.pulls > 600:
            raise StopIteration
        if self.pulls % 2:
            raise RuntimeError(f"bad pull {self.pulls}")
        return self.pulls


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
@pytest.mark.parametrize("stride", [1, 8])
def test_an_input_raising_100_times_in_a_row_is_ended(worker_type, stride):
    source = RaisesAfterTwo()
    outcomes = run(
        plus_one, source, worker_type=worker_type, worker_num=2, stride=stride
    )
    assert outcomes[:2] == [("ok", 1), ("ok", 2)]
    errors = [value for _, value in outcomes[2:]]
    assert len(errors) == INPUT_ERRORS_IN_A_ROW
    assert all(type(error) is RuntimeError for error in errors[:-1])
    last = errors[-1]
    assert isinstance(last, NuMapError)
    assert f"{INPUT_ERRORS_IN_A_ROW} errors in a row" in str(last)
    assert "ended that input" in str(last)
    assert isinstance(last.__cause__, RuntimeError)
    assert source.pulls == 2 + INPUT_ERRORS_IN_A_ROW  # no pull after the end


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stride", [1, 8])
def test_input_errors_with_items_between_never_end_the_input(stride):
    outcomes = run(
        plus_one,
        RaisesEveryOtherPull(),
        worker_type="thread",
        worker_num=2,
        stride=stride,
    )
    assert len(outcomes) == 600
    assert [value for kind, value in outcomes if kind == "ok"] == [
        pull + 1 for pull in range(2, 601, 2)
    ]
    errors = [value for kind, value in outcomes if kind == "error"]
    assert all(type(error) is RuntimeError for error in errors)


# Finding 4: an input raising a BaseException that is not an Exception
# killed the feeder; every later next() raised NuMapError, for ever.


def input_ending_with(error_type):
    yield 0
    yield 1
    raise error_type("bad input")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
@pytest.mark.parametrize("error_type", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_a_base_exception_from_the_input_is_that_items_error(worker_type, error_type):
    numap = NuMap(
        plus_one,
        input_ending_with(error_type),
        worker_type=worker_type,
        worker_num=2,
    )
    outcomes = []
    iterator = iter(numap)
    for _ in range(6):
        try:
            outcomes.append(("ok", next(iterator)))
        except StopIteration:
            break
        except BaseException as error:  # noqa: BLE001 - the input's own
            outcomes.append(("error", error))
    numap.stop()
    assert outcomes[:2] == [("ok", 1), ("ok", 2)]
    assert len(outcomes) == 3
    kind, error = outcomes[2]
    assert kind == "error" and type(error) is error_type


class EndsTheFeeder:
    """An item whose pickling raises the one exception numap lets through
    pickling (a worker's SIGTERM): it ends the feeder thread."""

    def __reduce__(self):
        raise Terminated


@pytest.mark.timeout(60)
def test_after_a_feeding_failure_each_task_raises_once_then_ends():
    numap = NuMap(worker_num=1)
    first = numap.add_task(plus_one, [EndsTheFeeder()])
    second = numap.add_task(plus_one, range(10**6))
    numap.start()
    try:
        for task in (first, second):
            outcomes = collect(task)
            assert outcomes, "the task said nothing of the failure"
            kind, error = outcomes[-1]
            assert kind == "error" and isinstance(error, NuMapError)
            assert "feeding the map failed" in str(error)
            assert [kind for kind, _ in outcomes[:-1]] == ["ok"] * (len(outcomes) - 1)
    finally:
        numap.stop()


# Finding 5: an item whose pickling raised a BaseException that is not an
# Exception hung the map; a result doing so in the worker killed the worker.


class PicklingRaises:
    """Raises ``error_type`` when pickled in the process ``where`` names
    (the parent, whose pid it knows, or a worker), only for value 2."""

    def __init__(self, value, error_type, where, parent_pid):
        self.value = value
        self.error_type = error_type
        self.where = where
        self.parent_pid = parent_pid

    def __reduce__(self):
        here = "parent" if os.getpid() == self.parent_pid else "worker"
        if self.value == 2 and here == self.where:
            raise self.error_type(f"cannot pickle {self.value} in the {here}")
        return (
            PicklingRaises,
            (self.value, self.error_type, self.where, self.parent_pid),
        )


def value_of(item):
    return item.value


def make_result(arguments):
    value, error_type, parent_pid = arguments
    return PicklingRaises(value, error_type, "worker", parent_pid)


def pid_and_value(item):
    return os.getpid(), item.value


@pytest.mark.timeout(60)
@pytest.mark.parametrize("error_type", [SystemExit, GeneratorExit])
def test_an_item_whose_pickling_raises_a_base_exception_is_that_items_error(
    error_type,
):
    items = [PicklingRaises(i, error_type, "parent", os.getpid()) for i in range(5)]
    outcomes = run(value_of, items, worker_num=2)
    assert len(outcomes) == 5
    kind, error = outcomes[2]
    assert kind == "error" and isinstance(error, SerializationError)
    assert "cannot pickle 2 in the parent" in str(error)
    assert [value for kind, value in outcomes if kind == "ok"] == [0, 1, 3, 4]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("error_type", [SystemExit, KeyboardInterrupt])
@pytest.mark.parametrize("stride", [1, 5])
def test_a_result_whose_pickling_raises_a_base_exception_is_that_items_error(
    error_type, stride
):
    items = [(i, error_type, os.getpid()) for i in range(5)]
    outcomes = run(make_result, items, worker_num=1, stride=stride, buffer=5)
    assert len(outcomes) == 5
    kind, error = outcomes[2]
    assert kind == "error" and isinstance(error, SerializationError)
    assert not isinstance(error, WorkerLostError)
    assert "cannot pickle 2 in the worker" in str(error)
    assert [value.value for kind, value in outcomes if kind == "ok"] == [0, 1, 3, 4]


# Finding 6 (reverted by the second look): a worker ends as a Python
# program does, after the non-daemon threads its function left, so the
# work a function hands to a ThreadPoolExecutor is done.


def write_later(path):
    executor = concurrent.futures.ThreadPoolExecutor(1)
    executor.submit(_write_slowly, path)
    return path


def _write_slowly(path):
    time.sleep(0.3)
    with open(path, "w") as file:
        file.write("done")


@pytest.mark.timeout(60)
def test_work_a_function_hands_to_an_executor_is_done(tmp_path):
    paths = [str(tmp_path / f"{n}.txt") for n in range(4)]
    assert list(NuMap(write_later, paths, worker_num=2)) == paths
    assert all(Path(path).read_text() == "done" for path in paths)


# Finding 7: after the map stopped itself, a task added then read as []
# without an error.


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_task_added_after_the_map_stopped_asks_for_start(worker_type):
    numap = NuMap(plus_one, range(3), worker_type=worker_type, worker_num=2)
    assert list(numap) == [1, 2, 3]  # started by next(), stopped at the end
    numap.pop_task(True)
    task = numap.add_task(plus_one, [7, 8])
    with pytest.raises(NuMapError, match=r"call start\(\)"):
        next(task)
    with pytest.raises(NuMapError, match=r"call start\(\)"):
        numap.next(task=0)
    numap.start()
    try:
        assert list(task) == [8, 9]
    finally:
        numap.stop()


# Finding 9: a timeout beyond threading.TIMEOUT_MAX raised OverflowError
# where the consumer waits on a condition (threads other than the main one).


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
@pytest.mark.parametrize("timeout", [float("inf"), 1e10])
def test_a_timeout_beyond_timeout_max_is_no_limit(worker_type, timeout):
    numap = NuMap(slow_identity, range(6), worker_type=worker_type, worker_num=2)
    numap.start()
    results = []
    failures = []

    def read():
        while True:
            try:
                results.append(numap.next(timeout=timeout))
            except StopIteration:
                return
            except Exception as error:  # noqa: BLE001 - reported below
                failures.append(error)
                return

    read_in_threads(numap, [read, read])
    assert failures == []
    assert sorted(results) == list(range(6))


@pytest.mark.timeout(10)
def test_a_nan_timeout_is_refused():
    numap = NuMap(plus_one, range(3), worker_type="thread")
    with pytest.raises(ValueError, match="timeout=nan"):
        numap.next(timeout=float("nan"))
    with pytest.raises(ValueError, match="timeout=nan"):
        numap.add_task(plus_one, range(3), timeout=float("nan"))


def slow_identity(x):
    time.sleep(0.1)
    return x


# Finding 10: with worker processes, one exception object raised for several
# items gathered the traceback note of every one of them.

SHARED_ERROR = ValueError("shared")


def raise_the_shared_error(x):
    raise SHARED_ERROR


@pytest.mark.timeout(60)
def test_each_items_error_carries_its_own_traceback_note_only():
    outcomes = run(raise_the_shared_error, range(6), worker_num=2)
    assert len(outcomes) == 6
    for kind, error in outcomes:
        assert kind == "error" and isinstance(error, ValueError)
        assert len(error.__notes__) == 1
        assert error.__notes__[0].startswith("Traceback in worker pid")


# Finding 11: the iterator of a popped task took the results of the task
# added since with the same id.


@pytest.mark.timeout(60)
def test_the_iterator_of_a_popped_task_refuses_to_read():
    numap = NuMap(worker_type="thread", worker_num=2)
    old = numap.add_task(plus_one, range(5))
    assert list(old) == [1, 2, 3, 4, 5]
    numap.stop()
    numap.pop_task(True)
    new = numap.add_task(plus_one, range(100, 103))
    numap.start()
    try:
        with pytest.raises(NuMapError, match="task 0 of this iterator was popped"):
            next(old)
        with pytest.raises(NuMapError, match="was popped"):
            iter(old)
        assert list(new) == [101, 102, 103]
    finally:
        numap.stop()


@pytest.mark.timeout(60)
def test_an_iteration_begun_before_the_pop_refuses_to_read_after_it():
    numap = NuMap(worker_type="thread", worker_num=2)
    old = numap.add_task(plus_one, range(5))
    begun = iter(old)
    assert next(begun) == 1  # not at its end: an ended iterator stays ended
    numap.stop()
    numap.pop_task(True)
    numap.add_task(plus_one, range(100, 103))
    numap.start()
    try:
        with pytest.raises(NuMapError, match="was popped"):
            next(begun)
    finally:
        numap.stop()


# Finding 12: after start(stages=(1,)), start() said to stop() first, and a
# with block never started the feeding.


@pytest.mark.timeout(60)
def test_after_stage_1_start_says_to_start_stage_2_and_with_does_it():
    numap = NuMap(plus_one, range(3), worker_type="thread", worker_num=2)
    numap.start(stages=(1,))
    try:
        with pytest.raises(NuMapError, match=r"start\(stages=\(2,\)\)"):
            numap.start()
    except BaseException:
        numap.stop()
        raise
    with numap:
        assert list(numap) == [1, 2, 3]


# Finding 13: validation.


def echo(x, *args, **kwargs):
    return x, args, kwargs


@pytest.mark.timeout(10)
def test_a_mapping_as_args_is_refused_pointing_to_kwargs():
    with pytest.raises(TypeError, match=r"args=\{'n': 5\}.*kwargs"):
        NuMap(echo, range(1), args={"n": 5}, worker_type="thread")
    numap = NuMap(worker_type="thread")
    with pytest.raises(TypeError, match=r"NuMap.add_task\(args="):
        numap.add_task(echo, range(1), args={"n": 5})


@pytest.mark.timeout(10)
def test_get_task_refuses_task_and_task_id_together():
    numap = NuMap(worker_type="thread")
    numap.add_task(echo, [1])
    numap.add_task(echo, [2])
    with pytest.raises(TypeError, match="give the task id once"):
        numap.get_task(task=0, task_id=1)
    with pytest.raises(TypeError, match="give the task id once"):
        numap.get_task(0, task_id=1)
    assert numap.get_task(task_id=1).task == 1
    assert numap.get_task().task == 0
    assert repr(numap.get_task().task) == "0"


@pytest.mark.timeout(10)
def test_imports_refuses_what_is_not_a_list_of_names_naming_the_argument():
    with pytest.raises(TypeError, match=r"imports\(modules\).*not None"):
        imports(None)
    with pytest.raises(TypeError, match=r"imports\(modules\).*not 1"):
        imports([1])


# Second look: what the fixes above broke.


@pytest.mark.timeout(60)
def test_a_ctrl_c_while_the_main_thread_unpickles_reaches_the_program():
    # Regression: loads() made any BaseException a PayloadError, so a
    # Ctrl-C landing while the consumer unpickled a result became that
    # item's SerializationError and the loop went on.
    result = run_python(
        """
        import os, signal, threading, time
        from numap import NuMap

        PARENT = os.getpid()

        def rebuild(x):
            if os.getpid() == PARENT:
                time.sleep(1.0)  # the Ctrl-C lands here
            return x

        class SlowToRebuild:
            def __init__(self, x):
                self.x = x

            def __reduce__(self):
                return (rebuild, (self.x,))

        def make(x):
            return SlowToRebuild(x)

        def interrupt(signum, frame):
            raise KeyboardInterrupt("the program's handler")

        if __name__ == "__main__":
            signal.signal(signal.SIGINT, interrupt)
            numap = NuMap(make, range(3), worker_num=1)
            threading.Timer(1.5, os.kill, (os.getpid(), signal.SIGINT)).start()
            try:
                for result in numap:
                    pass
                print("no Ctrl-C")
            except KeyboardInterrupt as error:
                print("interrupted:", error)
            finally:
                numap.stop()
        """
    )
    assert "interrupted: the program's handler" in result.stdout, result.stderr


def slow_item(x):
    time.sleep(1.5)
    return x


@pytest.mark.timeout(60)
def test_an_upstream_task_read_with_a_timeout_is_not_ended_by_its_timeouts():
    # Regression: each TimeoutError of the upstream task counted as an input
    # error in a row; after 100 of them the downstream input was ended and
    # every result lost.
    upstream = NuMap(worker_type="thread", worker_num=2)
    upstream.add_task(slow_item, range(4))
    downstream = NuMap(worker_type="thread", worker_num=1)
    downstream.add_task(plus_one, upstream.get_task(0, timeout=0.01))
    upstream.start()
    results, timeouts = [], 0
    try:
        for outcome in collect(iter(downstream)):
            kind, value = outcome
            if kind == "ok":
                results.append(value)
            else:
                assert isinstance(value, TimeoutError), value
                timeouts += 1
    finally:
        upstream.stop()
        downstream.stop()
    assert results == [1, 2, 3, 4]
    assert timeouts > INPUT_ERRORS_IN_A_ROW
