"""A consumer never runs the map's input: a result it holds is not kept
waiting for the input's next item.

A consumer that frees buffer space feeds the map itself only from an
in-memory sequence (a list, a range...). Any other input runs on the
feeder thread, as Pool.imap's does on its task thread: an input that
waits, even for what the consumer does with the results, holds back no
result.
"""

import queue
import threading

import pytest
from numap import NuMap
from numap._numap import _IN_MEMORY_ITERATORS


def plus_1000(x):
    return x + 1000


def crawl(numap_options, seeds=20):
    """A crawler-like loop: the input is a generator fed by the consumer
    (every result ending in 0 posts a follow-up item). Returns how many
    results the consumer got within 20 s, and whether it got stuck."""
    follow_ups: queue.Queue = queue.Queue()

    def source():
        yield from range(seeds)
        while True:
            item = follow_ups.get()
            if item is None:
                return
            yield item

    expected = seeds + seeds // 10
    results = []
    numap = NuMap(plus_1000, source(), **numap_options)

    def consume():
        for result in numap:
            results.append(result)
            if result < 2000 and result % 10 == 0:
                follow_ups.put(result)
            if len(results) == expected:
                follow_ups.put(None)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    consumer.join(20)
    stuck = consumer.is_alive()
    follow_ups.put(None)  # let a stuck input end
    numap.stop()
    return len(results), expected, stuck


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_an_input_fed_by_the_consumer_does_not_deadlock(worker_type):
    got, expected, stuck = crawl({"worker_type": worker_type, "worker_num": 2})
    assert not stuck
    assert got == expected


def input_waiting_for(taken):
    yield 0
    yield 1
    # The next item only comes once the consumer has result 0.
    yield 2 if taken.wait(10) else "the consumer waited for this input"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_result_taken_is_handed_out_before_the_next_item_is_pulled(worker_type):
    taken = threading.Event()
    numap = NuMap(
        plus_1000, input_waiting_for(taken), worker_type=worker_type, worker_num=2
    )
    try:
        assert next(numap) == 1000
        taken.set()
        assert list(numap) == [1001, 1002]
    finally:
        taken.set()
        numap.stop()


@pytest.mark.timeout(60)
def test_a_chained_map_hands_out_its_results_without_waiting_for_upstream_input():
    # Two NuMaps chained: the downstream's input is the upstream's results,
    # which wait for the consumer of the downstream.
    taken = threading.Event()
    upstream = NuMap(plus_1000, input_waiting_for(taken), worker_type="thread")
    downstream = NuMap(plus_1000, upstream, worker_type="thread")
    try:
        assert next(downstream) == 2000
        taken.set()
        assert list(downstream) == [2001, 2002]
    finally:
        taken.set()
        downstream.stop()
        upstream.stop()


@pytest.mark.timeout(60)
def test_in_memory_sequences_are_fed_inline_and_give_the_same_results():
    for sequence in ([1, 2, 3], (1, 2, 3), range(1, 4), {1: "a", 2: "b", 3: "c"}):
        with NuMap(plus_1000, sequence, worker_num=2) as numap:
            assert list(numap) == [1001, 1002, 1003]


def test_strings_beyond_ascii_are_in_memory_sequences_too():
    # CPython iterates an ASCII str with an iterator type of its own.
    assert type(iter("abc")) in _IN_MEMORY_ITERATORS
    assert type(iter("\u00e9t\u00e9")) in _IN_MEMORY_ITERATORS
