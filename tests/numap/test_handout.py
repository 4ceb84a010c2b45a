"""Iterating a NuMap: results lent to ``handed`` come out in C, in order, once.

Iterating a NuMap (or a task's iterator) gives a C-level iterator over the
results (numap._handout); ``next()`` takes from the same results. These
tests mix the two, raise errors among lent results, interrupt with
Ctrl-C and read from several threads, and check that every result (or
its error) still comes exactly once and in order.
"""

import functools
import operator
import os
import signal
import sys
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numap import NuMap, SerializationError, _interrupts
from numap_outcomes import collect, read_in_threads


def double(x):
    return 2 * x


def fail_on_sevens(x):
    if x % 7 == 3:
        raise ValueError(f"item {x}")
    return 2 * x


def expected_outcomes(items):
    return [("error", f"item {x}") if x % 7 == 3 else ("ok", 2 * x) for x in items]


def ready_numap(func, items, stride, worker_type="thread"):
    """A started NuMap whose whole input is in its buffer."""
    numap = NuMap(
        func,
        items,
        worker_type=worker_type,
        worker_num=2,
        stride=stride,
        buffer=max(len(items), stride),
    )
    numap.start()
    return numap


def take_steps(numap, steps):
    """Take results as a consumer mixing for loops and next() would: each
    step is ("for", n) (a fresh for loop over the map, left after n
    results) or ("next", 1). Goes on after errors. Returns the outcomes."""
    outcomes = []
    while True:
        for kind, count in steps:
            try:
                if kind == "next":
                    outcomes.append(("ok", next(numap)))
                    continue
                for taken, value in enumerate(numap, 1):
                    outcomes.append(("ok", value))
                    if taken == count:
                        break
                else:
                    return outcomes
            except ValueError as error:
                outcomes.append(("error", str(error)))
            except StopIteration:
                return outcomes


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_errors_among_lent_results_are_raised_in_place_and_iteration_goes_on(
    worker_type,
):
    items = list(range(100))
    numap = ready_numap(fail_on_sevens, items, stride=16, worker_type=worker_type)
    try:
        outcomes = [
            (kind, str(value) if isinstance(value, ValueError) else value)
            for kind, value in collect(iter(numap))
        ]
    finally:
        numap.stop()
    assert outcomes == expected_outcomes(items)


@pytest.mark.timeout(30)
def test_a_for_loop_left_mid_batch_leaves_the_rest_to_next_and_to_the_next_loop():
    items = list(range(60))
    numap = ready_numap(double, items, stride=32)
    try:
        first = []
        for value in numap:
            first.append(value)
            if len(first) == 5:
                break
        middle = [next(numap), numap.next(timeout=5)]
        task = numap.get_task(0)
        after = [next(task)]
        rest = list(numap)
    finally:
        numap.stop()
    assert first + middle + after + rest == [2 * x for x in items]


@settings(max_examples=30, deadline=None)
@given(
    count=st.integers(0, 80),
    stride=st.integers(1, 24),
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("for"), st.integers(1, 30)),
            st.tuples(st.just("next"), st.just(1)),
        ),
        min_size=1,
        max_size=6,
    ),
)
@pytest.mark.timeout(120)
def test_mixed_consumers_get_every_result_or_error_once_in_order(count, stride, steps):
    items = list(range(count))
    numap = ready_numap(fail_on_sevens, items, stride)
    try:
        outcomes = take_steps(numap, steps)
    finally:
        numap.stop()
    assert outcomes == expected_outcomes(items)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_threads_reading_one_map_share_its_results_each_once(worker_type):
    items = list(range(3000))
    numap = NuMap(
        double, items, worker_type=worker_type, worker_num=2, stride=64, buffer=256
    )
    numap.start()
    taken: dict[str, list] = {}

    def by_for(name):
        taken[name] = [value for value in numap]

    def by_next(name):
        taken[name] = got = []
        while True:
            try:
                got.append(numap.next(timeout=20))
            except StopIteration:
                return

    read_in_threads(
        numap,
        [
            functools.partial(by_for, "for 1"),
            functools.partial(by_for, "for 2"),
            functools.partial(by_next, "next"),
        ],
    )
    assert sorted(value for got in taken.values() for value in got) == [
        2 * x for x in items
    ]
    for got in taken.values():  # each reader sees the map's order
        assert got == sorted(got)


def interrupt_at_fifty(x):
    if x == 50:
        os.kill(os.getpid(), signal.SIGINT)
    return 2 * x


@pytest.mark.timeout(30)
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_ctrl_c_while_iterating_in_c_loses_nothing():
    items = list(range(400))
    numap = NuMap(
        interrupt_at_fifty, items, worker_type="thread", worker_num=2, stride=32
    )
    results = iter(numap)
    got: list = []
    interrupts = 0
    try:
        while True:
            try:
                got.extend(results)  # list.extend keeps what came before a raise
                break
            except KeyboardInterrupt:
                interrupts += 1
    finally:
        numap.stop()
    assert interrupts == 1
    assert got == [2 * x for x in items]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("func", [double, fail_on_sevens])
@pytest.mark.parametrize("way", ["next", "for"])
def test_a_held_back_ctrl_c_puts_the_taken_result_back_first_in_line(func, way):
    # A Ctrl-C that numap's handler held back (``pending``) while a result
    # was being taken is raised with that result put back; the lent
    # results are a plain list iterator (double) or WithErrors.
    items = list(range(60))
    numap = ready_numap(func, items, stride=32)
    try:
        outcomes = [("ok", next(numap))]  # lends the rest of a batch
        _interrupts.STATE.pending = True
        with pytest.raises(KeyboardInterrupt):
            if way == "next":
                next(numap)
            else:
                for _ in numap:
                    pass
        assert not _interrupts.STATE.pending
        outcomes += take_steps(numap, [("for", 1000)])
    finally:
        _interrupts.STATE.pending = False
        numap.stop()
    if func is double:
        assert outcomes == [("ok", 2 * x) for x in items]
    else:
        assert outcomes == expected_outcomes(items)


def _handed_whose_length_sends_sigint(steps):
    """A stand-in for ``handed`` that steps through ``steps``; its steps and
    its length run in C, and asking its length sends SIGINT (from C, so
    the signal lands in the frame that asked)."""
    sigint = map(os.kill, [os.getpid()], [signal.SIGINT])
    return type(
        "Handed",
        (),
        {
            "__iter__": lambda self: self,
            "__next__": functools.partial(next, steps),
            # sum(filter(None, ...)) runs os.kill, then adds nothing.
            "__length_hint__": functools.partial(
                sum, filter(None, sigint), operator.length_hint(steps)
            ),
        },
    )()


@pytest.mark.timeout(30)
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_a_ctrl_c_as_iteration_finds_lent_results_is_raised_before_them():
    # Held back in the step that hands the lent results to the iterator:
    # it must be raised there, not after the consumer went through them
    # (or never, if the consumer stopped reading).
    numap = ready_numap(double, list(range(40)), stride=40)
    try:
        got = [next(numap)]  # lends the other 39
        output = numap._first_output
        lent = output.handed
        output.handed = _handed_whose_length_sends_sigint(lent)
        results = iter(numap)
        with pytest.raises(KeyboardInterrupt):
            got.append(next(results))
        assert not _interrupts.STATE.pending
        output.handed = lent  # nothing of it was taken
        got.extend(results)
    finally:
        _interrupts.STATE.pending = False
        numap.stop()
    assert got == [2 * x for x in range(40)]


def sleep_then_double(x):
    time.sleep(0.3 if x == 0 else 0)
    return 2 * x


@pytest.mark.timeout(30)
def test_a_task_iterator_goes_on_after_a_timeout():
    numap = NuMap(sleep_then_double, range(5), worker_type="thread", worker_num=1)
    results = iter(numap.get_task(0, timeout=0.05))
    try:
        with pytest.raises(TimeoutError):
            next(results)
        # Without skip the late result is the next one: nothing is lost.
        assert list(wait_out(results)) == [0, 2, 4, 6, 8]
    finally:
        numap.stop()


def wait_out(results):
    """The rest of ``results``, waiting through the timeouts."""
    while True:
        try:
            yield next(results)
        except TimeoutError:
            continue
        except StopIteration:
            return


def unpicklable_on_fives(x):
    # Not even dill pickles a generator.
    return (i for i in range(x)) if x % 10 == 5 else 2 * x


@pytest.mark.timeout(30)
def test_results_that_do_not_pickle_come_as_errors_among_lent_results():
    # Their errors are made in the parent, from the worker's report.
    items = list(range(60))
    numap = ready_numap(unpicklable_on_fives, items, stride=16, worker_type="process")
    try:
        outcomes = [
            "unpicklable" if isinstance(value, SerializationError) else value
            for _, value in collect(iter(numap))
        ]
    finally:
        numap.stop()
    assert outcomes == ["unpicklable" if x % 10 == 5 else 2 * x for x in items]
