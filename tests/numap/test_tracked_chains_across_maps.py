"""A task chained to a tracked task of its own map is moved by the holder
of the map's feed role. When the feeder waits in an input that reads such
a chained task back (through another map, or a generator of the user's),
it must not hold that role: else the chained task never moves and the
pipeline stalls for good, as it did before session 19."""

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numap import NuMap

WORKER_TYPES = ["thread", "process"]


class Adder:
    """Adds ``amount``; a class, so that process workers can pickle it."""

    def __init__(self, amount: int) -> None:
        self.amount = amount

    def __call__(self, x: int) -> int:
        return x + self.amount


def through(iterator):
    """The items of ``iterator``, from a generator of the user's own."""
    yield from iterator


def read_on_threads(ends: dict, seconds: float) -> dict:
    """Read each task iterator in ``ends`` to its end on a thread of its
    own; fail the test if any is still reading after ``seconds``."""
    results: dict = {name: [] for name in ends}
    readers = [
        threading.Thread(target=results[name].extend, args=(end,), daemon=True)
        for name, end in ends.items()
    ]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(seconds)
    stalled = [
        name for name, reader in zip(ends, readers, strict=True) if reader.is_alive()
    ]
    assert not stalled, f"stalled: {stalled}; got so far {results}"
    return results


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", WORKER_TYPES)
def test_a_tracked_chain_read_back_through_another_map(worker_type):
    # first (tracked) -> second -> other map -> third: the feeder of
    # `numap` waits in `other` for second's results, which it moved itself.
    numap = NuMap(worker_type=worker_type, worker_num=2)
    other = NuMap(worker_type=worker_type, worker_num=2)
    first = numap.add_task(Adder(1), range(5), track=True)
    second = numap.add_task(Adder(1), first)
    across = other.add_task(Adder(1), second)
    third = numap.add_task(Adder(1), across)
    numap.start(stages=(1,))
    other.start(stages=(1,))
    numap.start(stages=(2,))
    other.start(stages=(2,))
    results = read_on_threads({"third": third}, 30)
    other.stop()
    numap.stop()
    assert results["third"] == [x + 4 for x in range(5)]
    assert numap._tasks_tracked[0] == {x: x + 1 for x in range(5)}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", WORKER_TYPES)
def test_two_maps_feeding_each_other_through_a_tracked_chain(worker_type):
    # Chain A: numap (tracked) -> numap -> other. Chain B: numap -> other
    # -> numap. Each map's feeder reads the other map.
    numap = NuMap(worker_type=worker_type, worker_num=2, stride=1)
    other = NuMap(worker_type=worker_type, worker_num=2, stride=1)
    a_first = numap.add_task(Adder(1), range(2), track=True)
    a_second = numap.add_task(Adder(1), a_first)
    b_first = numap.add_task(Adder(1), range(2))
    a_end = other.add_task(Adder(1), a_second)
    b_second = other.add_task(Adder(1), b_first)
    b_end = numap.add_task(Adder(1), b_second)
    for stage in (1, 2):
        numap.start(stages=(stage,))
        other.start(stages=(stage,))
    results = read_on_threads({"A": a_end, "B": b_end}, 30)
    numap.stop()
    other.stop()
    assert results == {"A": [3, 4], "B": [3, 4]}


@st.composite
def chains_across_two_maps(draw):
    """A chain of 1-5 links; each runs on map 0 or 1, may be tracked, and
    may read its upstream through a generator of the user's."""
    worker_type = draw(st.sampled_from(WORKER_TYPES))
    links = draw(
        st.lists(
            st.tuples(st.integers(0, 1), st.booleans(), st.booleans()),
            min_size=1,
            max_size=5,
        )
    )
    length = draw(st.integers(0, 12))
    stride = draw(st.integers(1, 3))
    return worker_type, links, length, stride


@pytest.mark.timeout(240)
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(chains_across_two_maps())
def test_chains_across_two_maps_with_tracked_links_equal_composition(example):
    worker_type, links, length, stride = example
    maps = [
        NuMap(worker_type=worker_type, worker_num=2, stride=stride) for _ in range(2)
    ]
    upstream = range(length)
    for number, (which, tracked, via_generator) in enumerate(links, 1):
        if via_generator:
            upstream = through(upstream)
        upstream = maps[which].add_task(Adder(number), upstream, track=tracked)
    for stage in (1, 2):
        for numap in maps:
            numap.start(stages=(stage,))
    try:
        results = read_on_threads({"end": upstream}, 30)
    finally:
        for numap in maps:
            numap.stop()
    added = sum(range(1, len(links) + 1))
    assert results["end"] == [x + added for x in range(length)]


class HeldLock:
    """A stand-in for a map's _feed_role: a real lock that calls
    ``before(caller)`` before it takes the lock and ``after(caller)`` once
    it holds it (``caller``: the name of the function taking it), to hold
    a thread at a chosen point."""

    def __init__(self, before=None, after=None) -> None:
        self.lock = threading.Lock()
        self.before = before
        self.after = after

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        caller = sys._getframe(1).f_code.co_name
        if caller == "__enter__":
            caller = sys._getframe(2).f_code.co_name
        if self.before is not None:
            self.before(caller)
        got = self.lock.acquire(blocking, timeout)
        if got and self.after is not None:
            self.after(caller)
        return got

    def release(self) -> None:
        self.lock.release()

    def locked(self) -> bool:
        return self.lock.locked()

    def __enter__(self) -> "HeldLock":
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


def slowly(iterator):
    """The items of ``iterator``, 50 ms apart."""
    for item in iterator:
        time.sleep(0.05)
        yield item


def slow_plus_one(x: int) -> int:
    time.sleep(0.2)
    return x + 1


# Second look, finding 4: a consumer that found the feed role taken (by a
# consumer feeding a step inline) gave up moving the chained task and went
# back to sleep; the results delivered meanwhile stayed unmoved for good.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", WORKER_TYPES)
def test_a_consumer_finding_the_feed_role_taken_still_moves_the_chain(
    worker_type,
):
    numap = NuMap(worker_type=worker_type, worker_num=2)
    other = NuMap(worker_type=worker_type, worker_num=2)
    first = numap.add_task(slow_plus_one, range(2), track=True)
    second = numap.add_task(Adder(1), first)
    third = numap.add_task(Adder(1), other.add_task(Adder(1), second))

    def hold_inline_feeders(caller: str) -> None:
        if caller == "_feed_inline":
            time.sleep(1.0)  # holds the role while both results come

    numap._feed_role = HeldLock(after=hold_inline_feeders)
    for stage in (1, 2):
        numap.start(stages=(stage,))
        other.start(stages=(stage,))
    deadline = time.monotonic() + 10
    while numap._feeder_pulling is None or numap._tasks[0].output.entered < 2:
        assert time.monotonic() < deadline, "the feeder never pulled"
        time.sleep(0.001)
    # As a consumer whose feed_here was decided before the feeder woke.
    threading.Thread(target=numap._feed_inline, daemon=True).start()
    results = read_on_threads({"third": third}, 20)
    other.stop()
    numap.stop()
    assert results["third"] == [4, 5]


# Second look, finding 1: a consumer moving chained tasks while stop()
# took the pool away submitted to no pool: AssertionError in its next().
@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", WORKER_TYPES)
def test_a_stop_while_a_consumer_moves_the_chain_ends_it_cleanly(worker_type):
    numap = NuMap(worker_type=worker_type, worker_num=2)
    first = numap.add_task(slow_plus_one, range(200), track=True)
    second = numap.add_task(Adder(1), first)
    numap.add_task(Adder(1), slowly(range(1000)))  # the feeder is mostly away
    consumer: list = []  # the reader's thread id
    in_window = threading.Event()

    def wait_for_the_pool_to_go(caller: str) -> None:
        # Until the pool is gone and a result of `first` came meanwhile.
        if (
            caller == "_move_chained_outside_turns"
            and threading.get_ident() in consumer
            and not in_window.is_set()
        ):
            in_window.set()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and not (
                numap._pool is None and numap._tasks[0].output.ready
            ):
                time.sleep(0.001)

    numap._feed_role = HeldLock(before=wait_for_the_pool_to_go)
    numap.start()
    ends: list = []

    def read() -> None:
        consumer.append(threading.get_ident())
        try:
            for _ in second:
                pass
            ends.append("StopIteration")
        except BaseException as error:  # noqa: BLE001 - the test reports it
            ends.append(repr(error))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert in_window.wait(20)
    numap.stop()
    reader.join(10)
    assert not reader.is_alive()
    assert ends == ["StopIteration"]


def slow_identity(x: int) -> int:
    time.sleep(0.2)
    return x


# Third look, finding 4: the feeder of a map reading its own chained task
# back waited in the stopping map for results no one would move: stop()
# waited the workers' whole grace time (30 s) and left the feeder behind.
@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", WORKER_TYPES)
def test_stop_ends_a_feeder_reading_its_own_map_at_once(worker_type):
    numap = NuMap(worker_type=worker_type, worker_num=2, stride=1)
    first = numap.add_task(slow_identity, range(20), track=True)
    second = numap.add_task(Adder(1), first)
    third = numap.add_task(Adder(1), through(second))
    numap.start()
    assert [next(third) for _ in range(3)] == [2, 3, 4]
    started = time.monotonic()
    numap.stop()
    assert time.monotonic() - started < 5
    assert numap._feeder_left is None or not numap._feeder_left.is_alive()


CHAIN_CONSUMER = Path(__file__).with_name("ctrl_c_chain_consumer.py")


# The main thread moving the chained task takes the feed role in slices
# and raises a held-back Ctrl-C between them: real SIGINTs, caught by the
# program, must lose no result.
@pytest.mark.timeout(120)
@pytest.mark.parametrize("worker_type", WORKER_TYPES)
def test_ctrl_c_caught_while_the_main_thread_moves_the_chain_loses_nothing(
    worker_type,
):
    done = subprocess.run(
        [sys.executable, str(CHAIN_CONSUMER), worker_type, "4"],
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr
    trials = done.stdout.splitlines()
    assert len(trials) == 4
    assert all(outcome.startswith("ok ") for outcome in trials), trials
