"""Hypothesis properties of NuMap over thread and process workers."""

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numap import NuMap
from polling import wait_until

# Starting worker processes is slow: fewer examples for them.
FEW = settings(max_examples=8)


def double(x):
    return 2 * x


def plus_three(x):
    return x + 3


def square(x):
    return x * x


items = st.lists(st.integers(-1000, 1000), max_size=40)
worker_nums = st.integers(1, 4)
strides = st.integers(1, 5)
extra_buffer = st.none() | st.integers(0, 6)


def make(worker_type, worker_num, stride, extra, ntasks=1, **options):
    buffer = None if extra is None else stride * ntasks + extra
    return NuMap(
        worker_type=worker_type,
        worker_num=worker_num,
        stride=stride,
        buffer=buffer,
        **options,
    )


def check_ordered(worker_type, xs, worker_num, stride, extra):
    numap = make(worker_type, worker_num, stride, extra)
    results = numap.add_task(double, xs)
    numap.start()
    try:
        assert list(results) == list(map(double, xs))
        assert numap._stopped  # read to its end, the map stopped itself
    finally:
        numap.stop()


def check_unordered(worker_type, xs, worker_num, stride, extra):
    numap = make(worker_type, worker_num, stride, extra, ordered=False)
    results = numap.add_task(double, xs)
    numap.start()
    try:
        assert sorted(results) == sorted(map(double, xs))
    finally:
        numap.stop()


def check_chain(worker_type, xs, worker_num, stride, extra):
    numap = make(worker_type, worker_num, stride, extra, ntasks=3)
    first = numap.add_task(double, xs)
    second = numap.add_task(plus_three, first)
    third = numap.add_task(square, second)
    numap.start()
    try:
        assert list(third) == [square(plus_three(double(x))) for x in xs]
        assert numap._stopped
    finally:
        numap.stop()


def check_interleaved(worker_type, streams, worker_num, stride, extra):
    # Results are taken in the order the feeder weaves the tasks (stride
    # of task 0, stride of task 1, ...), as the contract requires.
    funcs = [double, plus_three, square]
    numap = make(worker_type, worker_num, stride, extra, ntasks=len(streams))
    iterators = [numap.add_task(funcs[i % 3], xs) for i, xs in enumerate(streams)]
    numap.start()
    got = [[] for _ in streams]
    try:
        active = list(range(len(streams)))
        while active:
            for task in list(active):
                for _ in range(stride):
                    try:
                        got[task].append(next(iterators[task]))
                    except StopIteration:
                        active.remove(task)
                        break
        assert numap._stopped  # every task read to its end
    finally:
        numap.stop()
    assert got == [list(map(funcs[i % 3], xs)) for i, xs in enumerate(streams)]


class CountingInput:
    """An input that counts how many items were pulled from it."""

    def __init__(self, n):
        self.n = n
        self.pulled = 0
        self.lock = threading.Lock()

    def __iter__(self):
        for i in range(self.n):
            with self.lock:
                self.pulled += 1
            yield i


def check_buffer_bound(worker_type, n, worker_num, stride, extra, ntasks):
    inputs = [CountingInput(n) for _ in range(ntasks)]
    numap = make(worker_type, worker_num, stride, extra, ntasks=ntasks)
    iterators = [numap.add_task(double, source) for source in inputs]
    numap.start()
    try:
        buffer = numap.buffer
        expected = min(buffer, n * ntasks)

        def pulled():
            return sum(source.pulled for source in inputs)

        # Before any result is taken exactly min(buffer, all) items enter...
        assert wait_until(lambda: pulled() >= expected)
        time.sleep(0.02)
        # ... and not one more.
        assert pulled() == expected
        if ntasks == 1:
            assert list(iterators[0]) == [double(i) for i in range(n)]
    finally:
        numap.stop()


@pytest.mark.timeout(60)
@given(xs=items, worker_num=worker_nums, stride=strides, extra=extra_buffer)
def test_ordered_threads_equal_map(xs, worker_num, stride, extra):
    check_ordered("thread", xs, worker_num, stride, extra)


@pytest.mark.timeout(60)
@FEW
@given(xs=items, worker_num=worker_nums, stride=strides, extra=extra_buffer)
def test_ordered_processes_equal_map(xs, worker_num, stride, extra):
    check_ordered("process", xs, worker_num, stride, extra)


@pytest.mark.timeout(60)
@given(xs=items, worker_num=worker_nums, stride=strides, extra=extra_buffer)
def test_unordered_threads_are_a_permutation(xs, worker_num, stride, extra):
    check_unordered("thread", xs, worker_num, stride, extra)


@pytest.mark.timeout(60)
@FEW
@given(xs=items, worker_num=worker_nums, stride=strides, extra=extra_buffer)
def test_unordered_processes_are_a_permutation(xs, worker_num, stride, extra):
    check_unordered("process", xs, worker_num, stride, extra)


@pytest.mark.timeout(60)
@given(xs=items, worker_num=worker_nums, stride=strides, extra=extra_buffer)
def test_chained_threads_equal_composition(xs, worker_num, stride, extra):
    check_chain("thread", xs, worker_num, stride, extra)


@pytest.mark.timeout(60)
@FEW
@given(xs=items, worker_num=worker_nums, stride=strides, extra=extra_buffer)
def test_chained_processes_equal_composition(xs, worker_num, stride, extra):
    check_chain("process", xs, worker_num, stride, extra)


streams = st.lists(items, min_size=1, max_size=4)


@pytest.mark.timeout(60)
@given(streams=streams, worker_num=worker_nums, stride=strides, extra=extra_buffer)
def test_interleaved_thread_tasks_keep_their_streams(
    streams, worker_num, stride, extra
):
    check_interleaved("thread", streams, worker_num, stride, extra)


@pytest.mark.timeout(60)
@FEW
@given(streams=streams, worker_num=worker_nums, stride=strides, extra=extra_buffer)
def test_interleaved_process_tasks_keep_their_streams(
    streams, worker_num, stride, extra
):
    check_interleaved("process", streams, worker_num, stride, extra)


bound_cases = {
    "n": st.integers(0, 60),
    "worker_num": worker_nums,
    "stride": strides,
    "extra": extra_buffer,
    "ntasks": st.integers(1, 3),
}


@pytest.mark.timeout(60)
@settings(max_examples=15)
@given(**bound_cases)
def test_thread_input_pulled_never_exceeds_buffer(n, worker_num, stride, extra, ntasks):
    check_buffer_bound("thread", n, worker_num, stride, extra, ntasks)


@pytest.mark.timeout(60)
@FEW
@given(**bound_cases)
def test_process_input_pulled_never_exceeds_buffer(
    n, worker_num, stride, extra, ntasks
):
    check_buffer_bound("process", n, worker_num, stride, extra, ntasks)


def fail_on_multiples_of_three(x):
    if x % 3 == 0:
        raise ValueError(x)
    return -x


def outcomes_of(iterator):
    outcomes = []
    while True:
        try:
            outcomes.append(next(iterator))
        except StopIteration:
            return outcomes
        except ValueError as error:
            outcomes.append(("error", error.args[0]))


def check_one_outcome_per_item(worker_type, xs, worker_num, stride, extra):
    numap = make(worker_type, worker_num, stride, extra)
    results = numap.add_task(fail_on_multiples_of_three, xs)
    numap.start()
    try:
        outcomes = outcomes_of(results)
    finally:
        numap.stop()
    assert outcomes == [("error", x) if x % 3 == 0 else -x for x in xs]


@pytest.mark.timeout(60)
@given(xs=items, worker_num=worker_nums, stride=strides, extra=extra_buffer)
def test_threads_yield_one_result_or_error_per_item(xs, worker_num, stride, extra):
    check_one_outcome_per_item("thread", xs, worker_num, stride, extra)


@pytest.mark.timeout(60)
@FEW
@given(xs=items, worker_num=worker_nums, stride=strides, extra=extra_buffer)
def test_processes_yield_one_result_or_error_per_item(xs, worker_num, stride, extra):
    check_one_outcome_per_item("process", xs, worker_num, stride, extra)
