"""Per-Piper counters stay exact, and every snapshot consistent, while many
items flow through Pipers that share one thread NuMap (the counters are
written from the NuMap's feeder, the output pullers and fan-out readers)."""

import threading

import pytest
from core_functions import both, fail_on, first, pair, sleepy
from numap import NuMap
from papy.core import Piper, Plumber, Worker

ITEMS = 4000  # a multiple of consume x stride, so there is no short group
BAD = tuple(range(0, ITEMS, 97))


def branched(numap):
    """a fans out to a linear b and to c -> d (produce 2, consume 2); b and d
    are output Pipers, pulled in two threads."""
    a = Piper(Worker(fail_on, (), {"bad": BAD}), parallel=numap, name="a")
    b = Piper(first, name="b", branch=1)
    c = Piper(pair, parallel=numap, produce=2, name="c", branch=2)
    d = Piper(both, parallel=numap, consume=2, name="d")
    plumber = Plumber(pipes=[(a, b), (a, c, d)])
    bad = len(BAD)
    expected = {
        "a": (ITEMS, ITEMS, bad),
        "b": (ITEMS, ITEMS, bad),
        "c": (ITEMS, 2 * ITEMS, 2 * bad),
        "d": (2 * ITEMS, ITEMS, bad),
    }
    ratios = {"a": (1, 1), "b": (1, 1), "c": (1, 2), "d": (2, 1)}
    return plumber, expected, ratios


def chained(numap):
    """a -> b -> c read each other inside the NuMap (native chaining)."""
    a = Piper(Worker(fail_on, (), {"bad": BAD}), parallel=numap, name="a")
    b = Piper(first, parallel=numap, name="b")
    c = Piper(first, parallel=numap, name="c")
    plumber = Plumber(pipes=[(a, b, c)])
    bad = len(BAD)
    expected = {name: (ITEMS, ITEMS, bad) for name in "abc"}
    return plumber, expected, {name: (1, 1) for name in "abc"}


def inconsistent(counters, ratios):
    """What is wrong in one stats snapshot ('' if nothing): errors are never
    more than items out, and an item is counted in before its results out
    (items_out x consume <= items_in x produce)."""
    for piper, counts in counters.items():
        consume, produce = ratios[piper.name]
        if counts["errors"] > counts["items_out"]:
            return f"{piper.name}: {counts}"
        if counts["items_out"] * consume > counts["items_in"] * produce:
            return f"{piper.name}: {counts}"
    return ""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("shape", [branched, chained])
def test_counters_are_exact_and_snapshots_consistent(shape):
    numap = NuMap(worker_type="thread", worker_num=4, stride=4)
    plumber, expected, ratios = shape(numap)
    problems = []
    snapshots = 0
    done = threading.Event()

    def watch():
        nonlocal snapshots
        while not done.is_set():
            problem = inconsistent(plumber.stats["pipers"], ratios)
            if problem:
                problems.append(problem)
            snapshots += 1

    plumber.start([range(ITEMS)])
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        plumber.run()
        plumber.wait(45)
    finally:
        done.set()
        watcher.join()
    counters = plumber.stats["pipers"]
    plumber.stop()
    assert problems == []
    assert snapshots > 0
    found = {
        piper.name: (c["items_in"], c["items_out"], c["errors"])
        for piper, c in counters.items()
    }
    assert found == expected
    assert plumber.stats["pipers"] == counters  # nothing was left pending


SLEEP = 0.01  # seconds the slow Piper's worker sleeps per evaluation
EVALUATIONS = 24


def slow_worker():
    return Worker(sleepy, (), {"slow": tuple(range(EVALUATIONS)), "seconds": SLEEP})


def slow_linear():
    return (Piper(slow_worker(), name="slow"),)


def slow_on(worker_type, **settings):
    numap = NuMap(worker_type=worker_type, worker_num=2, stride=2)
    return Piper(slow_worker(), parallel=numap, name="slow", **settings)


def slow_threads():
    return (slow_on("thread"),)


def slow_processes():
    return (slow_on("process"),)


def slow_producing():
    # each evaluation gives 2 items: its busy time is counted once
    return (slow_on("thread", produce=2, repeat=True),)


def slow_chained():
    # read by a Piper on the same NuMap inside the NuMap: its busy time
    # reaches the parent with the downstream Piper's results
    slow = slow_on("thread")
    return slow, Piper(first, parallel=slow.imap, name="next")


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "build",
    [slow_linear, slow_threads, slow_processes, slow_producing, slow_chained],
)
def test_busy_time_covers_the_work_done(build):
    pipers = build()
    plumber = Plumber(pipers=pipers, pipes=[pipers] if len(pipers) > 1 else [])
    plumber.start([range(EVALUATIONS)])
    if build is slow_chained:
        assert pipers[1]._chained_from is pipers[0]
    plumber.run()
    plumber.wait(45)
    counters = plumber.stats["pipers"]
    plumber.stop()
    # a lower bound from the sleeps done, not an assertion on the speed
    slow = pipers[0]
    assert counters[slow]["busy"] >= EVALUATIONS * SLEEP * 0.9
    assert counters[slow]["items_in"] == EVALUATIONS


def increment(inbox):
    return inbox[0] + 1


def fail_odd(inbox):
    if inbox[0] % 2:
        raise ValueError("odd")
    return inbox[0]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("parallel", [False, True], ids=["linear", "threads"])
def test_pipers_with_one_name_keep_their_own_counters(parallel):
    # Default names come from the function: a, b and c, d share theirs.
    numap = NuMap(worker_type="thread", worker_num=2) if parallel else False
    a, b = Piper(increment, parallel=numap), Piper(increment, parallel=numap)
    c, d = Piper(fail_odd, parallel=numap), Piper(fail_odd, parallel=numap)
    assert a.name == b.name and c.name == d.name
    plumber = Plumber(pipes=[(a, b, c), (a, d)])
    plumber.start([range(10)])
    plumber.run()
    plumber.wait(10)
    counters = plumber.stats["pipers"]
    plumber.stop()
    assert set(counters) == {a, b, c, d}  # keyed by Piper, as pipers_tracked
    found = {
        p: (s["items_in"], s["items_out"], s["errors"]) for p, s in counters.items()
    }
    # c gets 2..11 (odd: 3, 5, 7, 9, 11), d gets 1..10 (odd: 1, 3, 5, 7, 9)
    assert found == {a: (10, 10, 0), b: (10, 10, 0), c: (10, 10, 5), d: (10, 10, 5)}
