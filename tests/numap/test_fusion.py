"""Tasks chained inside one NuMap run in one worker call per item.

A task chained to another task of the same NuMap, when it is that task's
only reader and that task's results are not tracked, is fused into it: the
worker applies both functions to an item in one go and only the last
result crosses back to the parent. The observable contract is unchanged
(results, errors, ordering, tracking); these tests check it, and that the
intermediate result indeed stays in the worker.
"""

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numap import NuMap, SerializationError
from numap_outcomes import collect, run_chain
from polling import wait_until
from test_properties import CountingInput

FUNCTIONS = {
    "double": lambda x: 2 * x,
    "plus_three": lambda x: x + 3,
    "negate": lambda x: -x,
}


def fail_on_seven(x):
    if x == 7:
        raise ValueError("seven")
    return x


def make_generator(x):
    return (x for _ in range(3))


def drain(generator):
    return sum(generator)


def tenfold(x):
    return 10 * x


def check_chain(worker_type, names, tracked, xs, stride):
    numap = NuMap(worker_type=worker_type, worker_num=2, stride=stride)
    results = xs
    for name, track in zip(names, tracked, strict=True):
        results = numap.add_task(FUNCTIONS[name], results, track=track)
    numap.start()
    try:
        got = list(results)
    finally:
        numap.stop()
    expected = list(xs)
    for task_id, name in enumerate(names):
        expected = [FUNCTIONS[name](x) for x in expected]
        if tracked[task_id]:
            assert numap._tasks_tracked[task_id] == dict(enumerate(expected))
    assert got == expected


chain_examples = given(
    names=st.lists(st.sampled_from(sorted(FUNCTIONS)), min_size=1, max_size=4),
    tracks=st.lists(st.booleans(), min_size=4, max_size=4),
    xs=st.lists(st.integers(-100, 100), max_size=30),
    stride=st.integers(1, 4),
)


@pytest.mark.timeout(60)
@chain_examples
def test_thread_chains_with_any_tracked_links_equal_composition(
    names, tracks, xs, stride
):
    check_chain("thread", names, tracks[: len(names)], xs, stride)


@pytest.mark.timeout(90)
@settings(max_examples=8)
@chain_examples
def test_process_chains_with_any_tracked_links_equal_composition(
    names, tracks, xs, stride
):
    check_chain("process", names, tracks[: len(names)], xs, stride)


@pytest.mark.timeout(30)
def test_intermediate_result_stays_in_the_worker():
    # Neither pickle nor dill can send a generator: unfused, it could not
    # come back from the worker; fused, only the final sum does.
    outcomes = run_chain(
        [make_generator, drain], range(4), worker_type="process", worker_num=2
    )
    assert outcomes == [("ok", 0), ("ok", 3), ("ok", 6), ("ok", 9)]


@pytest.mark.timeout(30)
def test_tracked_intermediate_is_not_fused_and_its_results_are_kept():
    numap = NuMap(worker_type="process", worker_num=2)
    generators = numap.add_task(make_generator, range(2), track=True)
    sums = numap.add_task(drain, generators)
    numap.start()
    try:
        outcomes = collect(sums)
    finally:
        numap.stop()
    # Tracked, the generator must come back to the parent, which it cannot.
    assert [kind for kind, _ in outcomes] == ["error", "error"]
    assert all(isinstance(error, SerializationError) for _, error in outcomes)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_error_in_a_fused_stage_is_that_items_error(worker_type):
    outcomes = run_chain(
        [fail_on_seven, tenfold], range(10), worker_type=worker_type, worker_num=2
    )
    assert [value for kind, value in outcomes if kind == "ok"] == [
        10 * x for x in range(10) if x != 7
    ]
    (failure,) = [value for kind, value in outcomes if kind == "error"]
    assert isinstance(failure, ValueError) and str(failure) == "seven"
    assert outcomes[7][0] == "error"


@pytest.mark.timeout(30)
def test_the_fused_upstream_task_gives_no_results_of_its_own():
    numap = NuMap(worker_type="thread", worker_num=2)
    first = numap.add_task(tenfold, range(3))
    second = numap.add_task(tenfold, first)
    numap.start()
    try:
        assert list(numap.get_task(0)) == []
        assert list(second) == [0, 100, 200]
    finally:
        numap.stop()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
@pytest.mark.parametrize("buffer", [2, 5])
def test_a_fused_chain_keeps_the_buffer_bound(worker_type, buffer):
    source = CountingInput(50)
    numap = NuMap(worker_type=worker_type, worker_num=2, stride=2, buffer=buffer)
    first = numap.add_task(tenfold, source)
    results = numap.add_task(tenfold, first)
    numap.start()
    try:
        # Before any result is taken exactly `buffer` items enter...
        assert wait_until(lambda: source.pulled >= buffer)
        time.sleep(0.05)
        # ... and not one more: an item holds one slot through the chain.
        assert source.pulled == buffer
        assert list(results) == [100 * x for x in range(50)]
    finally:
        numap.stop()
