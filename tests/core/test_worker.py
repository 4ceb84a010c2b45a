"""Worker: construction forms, composition, errors returned not raised."""

import pickle
import sys

import pytest
from papy.core import Worker, WorkerError


def add(inbox, n=1):
    return inbox[0] + n


def mul(inbox, n=2, extra=0):
    return inbox[0] * n + extra


def boom(inbox):
    raise ValueError(f"bad {inbox[0]}")


def exit_three(inbox):
    sys.exit(3)


@pytest.mark.timeout(5)
def test_functions_with_per_function_arguments():
    worker = Worker((add, mul), ((10,), ()), ({}, {"n": 3, "extra": 1}))
    assert worker((1,)) == (1 + 10) * 3 + 1
    assert worker.task == (add, mul)
    assert worker.args == ((10,), ())
    assert worker.kwargs == ({}, {"n": 3, "extra": 1})


@pytest.mark.timeout(5)
def test_single_function_with_argument_tuple():
    worker = Worker(add, (5,))
    assert worker((1,)) == 6
    assert worker.task == (add,)
    assert worker.args == ((5,),)
    assert Worker(mul, (), {"n": 4})((2,)) == 8


@pytest.mark.timeout(5)
def test_copy_and_combination_of_workers():
    first = Worker(add, (5,))
    second = Worker(mul, (), {"n": 3})
    copy = Worker(first)
    assert copy.task == first.task and copy.args == first.args
    joined = Worker((first, second))
    assert joined.task == first.task + second.task
    assert joined.args == first.args + second.args
    assert joined.kwargs == first.kwargs + second.kwargs
    assert joined((1,)) == (1 + 5) * 3


@pytest.mark.timeout(5)
def test_left_to_right_composition_order():
    assert Worker((add, mul))((1,)) == 4
    assert Worker((mul, add))((1,)) == 3


@pytest.mark.timeout(5)
def test_each_later_function_gets_a_one_item_inbox_with_the_previous_result():
    # PaPy 1.x: every function of a Worker takes an inbox; the inbox of the
    # second and later functions is a 1-tuple holding the previous result,
    # and the last function's result is returned as it is.
    seen = []

    def record(inbox):
        seen.append(inbox)
        return [len(seen), inbox]

    result = Worker((record, record, record))(("a", "b"))
    assert seen == [
        ("a", "b"),
        ([1, ("a", "b")],),
        ([2, ([1, ("a", "b")],)],),
    ]
    assert result == [3, ([2, ([1, ("a", "b")],)],)]


def words(inbox, separator=" "):
    return inbox[0].split(separator)


def count(inbox, plus=0):
    return len(inbox[0]) + plus


@pytest.mark.timeout(5)
def test_user_functions_compose_by_reading_inbox_0():
    worker = Worker((words, count), ((",",), ()), ({}, {"plus": 100}))
    assert worker(("a,b,c",)) == 103
    assert Worker((words, count))(("one two",)) == 2


@pytest.mark.timeout(5)
def test_exception_is_returned_with_original_and_traceback():
    result = Worker((add, boom, mul))((1,))
    assert isinstance(result, WorkerError)
    assert isinstance(result.exception, ValueError)
    assert str(result.exception) == "bad 2"
    assert "ValueError: bad 2" in result.traceback
    assert result.function == "boom"


@pytest.mark.timeout(5)
def test_sys_exit_in_a_function_is_returned_as_the_items_error():
    result = Worker((add, exit_three))((1,))
    assert isinstance(result, WorkerError)
    assert isinstance(result.exception, SystemExit)
    assert result.exception.code == 3
    assert result.function == "exit_three"


@pytest.mark.timeout(5)
def test_error_in_inbox_calls_no_function():
    calls = []

    def record(inbox):
        calls.append(inbox)
        return inbox

    worker = Worker(record)
    upstream = KeyError("upstream")
    for inbox in [(upstream,), (1, upstream), ((1, upstream),), upstream]:
        result = worker(inbox)
        assert isinstance(result, WorkerError)
        assert result.exception is upstream
    assert calls == []


@pytest.mark.timeout(5)
def test_worker_and_error_pickle():
    worker = Worker((add, mul), ((10,), ()))
    clone = pickle.loads(pickle.dumps(worker))
    assert clone((1,)) == worker((1,)) == 22
    error = pickle.loads(pickle.dumps(Worker(boom)((3,))))
    assert isinstance(error.exception, ValueError)
    assert "bad 3" in error.traceback


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    "build",
    [
        lambda: Worker(42),
        lambda: Worker(()),
        lambda: Worker((add, mul), ((1,),)),
        lambda: Worker((add, 3)),
        lambda: Worker((Worker(add),), ((1,),)),
    ],
)
def test_invalid_construction_raises_worker_error(build):
    with pytest.raises(WorkerError):
        build()
