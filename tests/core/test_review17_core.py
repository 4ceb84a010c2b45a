"""Regressions found by review 17 of papy.core: timeouts that cannot be
waited for, timeouts and unordered NuMaps that silently misalign joins,
fan-outs that buffered their whole input, and unclear argument errors.
Real NuMaps (thread workers), real threads."""

import itertools
import math
import threading
import time

import pytest
from core_functions import both, first, pair, sleepy
from numap import NuMap
from papy.core import (
    Dagger,
    DaggerError,
    Piper,
    PiperError,
    Plumber,
    PlumberError,
    Worker,
)
from papy.core._streams import Tee
from pipeline_threads import left_threads, stop_within

# The least bound of a fan-out's queues (papy.core._streams.TEE_MIN_BOUND).
TEE_MIN_BOUND = 64


# --- timeouts that cannot be waited for (finding 1) -------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("bad", [math.nan, -1, -0.5])
def test_piper_refuses_a_nan_or_negative_timeout(bad):
    # Before: nan was taken, and every next() then failed at once: an
    # endless stream of error items.
    numap = NuMap(worker_type="thread", worker_num=2)
    with pytest.raises(PiperError, match="'timeout' must be"):
        Piper(first, parallel=numap, timeout=bad)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("endless", [math.inf, 1e300])
def test_an_endless_timeout_means_none(endless):
    # Before: every next() raised OverflowError, which became an error
    # item, and the Piper emitted more items than it read.
    numap = NuMap(worker_type="thread", worker_num=2)
    piper = Piper(first, parallel=numap, timeout=endless, name="p")
    assert piper.timeout is None
    plumber = Plumber(pipes=[(piper,)])
    plumber.start([range(5)])
    plumber.run()
    plumber.wait(20)
    counters = plumber.stats["pipers"][piper]
    plumber.stop()
    assert (counters["items_in"], counters["items_out"], counters["errors"]) == (
        5,
        5,
        0,
    )


@pytest.mark.timeout(10)
def test_a_linear_piper_warns_that_its_timeout_is_ignored():
    # Before: the timeout was silently ignored. Not refused: pipeline files
    # saved before may hold one, and 1.x took it.
    with pytest.warns(UserWarning, match="applies only to a Piper on a NuMap"):
        piper = Piper(first, timeout=1, name="lin")
    assert piper.timeout is None


@pytest.mark.timeout(30)
def test_plumber_wait_checks_its_timeout():
    piper = Piper(first, name="p")
    plumber = Plumber(pipes=[(piper,)])
    plumber.start([range(3)])
    plumber.run()
    for bad in (math.nan, -1, "5"):
        with pytest.raises(PlumberError, match="wait\\(\\)'s 'timeout'"):
            plumber.wait(bad)
    plumber.wait(math.inf)  # before: OverflowError
    plumber.stop()


@pytest.mark.timeout(10)
def test_wait_on_a_started_pipeline_says_run():
    plumber = Plumber(pipes=[(Piper(first),)])
    plumber.start([range(3)])
    with pytest.raises(PlumberError, match="pipeline; run\\(\\) it first"):
        plumber.wait(1)
    plumber.stop()


# --- joins that would pair items wrongly (findings 2 and 4) -----------------


def late_piper(skip, timeout=0.1):
    """A Piper whose item 3 comes 0.5 s late (items are ordered, so a
    timeout shorter than 0.25 s also gives up the item after it)."""
    numap = NuMap(worker_type="thread", worker_num=2, stride=1, skip=skip)
    worker = Worker(sleepy, (), {"slow": (3,), "seconds": 0.5})
    return Piper(worker, parallel=numap, timeout=timeout, name="late")


@pytest.mark.timeout(20)
def test_a_timeout_without_skip_upstream_of_a_join_is_refused():
    # Before: one late item gave several error items, and the join paired
    # every later item with the wrong one (no error said so).
    source, late, other = Piper(first), late_piper(False), Piper(first)
    join = Piper(both, name="join")
    plumber = Plumber(pipes=[(source, late, join), (source, other, join)])
    with pytest.raises(DaggerError, match="'late' has timeout=0.1.*skip=True"):
        plumber.start([range(10)])
    assert plumber.state == "new"


@pytest.mark.timeout(20)
def test_a_timeout_without_skip_upstream_of_a_regrouping_is_refused():
    late = late_piper(False)
    between = Piper(first, produce=2, repeat=True, name="between")
    grouping = Piper(first, consume=2, name="grouping")
    plumber = Plumber(pipes=[(late, between, grouping)])
    with pytest.raises(DaggerError, match="'grouping', which groups its items"):
        plumber.start([range(10)])


@pytest.mark.timeout(30)
def test_a_timeout_on_a_linear_chain_or_with_skip_is_allowed():
    chain = Plumber(pipes=[(late_piper(False), Piper(first))])
    chain.start([range(6)])
    chain.stop()
    source, late, other = Piper(first), late_piper(True, 0.4), Piper(first)
    join = Piper(both, name="join")
    joined = Plumber(pipes=[(source, late, join), (source, other, join)])
    joined.start([range(6)])
    results = list(join)
    joined.stop()
    assert len(results) == 6
    assert [r for r in results if not isinstance(r, PiperError)] == [
        (i, i) for i in range(6) if i != 3
    ]


@pytest.mark.timeout(20)
def test_an_unordered_numap_upstream_of_a_join_is_refused():
    # Before: results came as they finished and the join paired most items
    # with the wrong ones, silently.
    numap = NuMap(worker_type="thread", worker_num=4, ordered=False)
    source = Piper(first)
    unordered = Piper(first, parallel=numap, name="unordered")
    through = Piper(first, name="through")
    join = Piper(both, name="join")
    plumber = Plumber(
        pipes=[(source, unordered, through, join), (source, Piper(first), join)]
    )
    with pytest.raises(DaggerError, match="'unordered'.*ordered=False.*'join'"):
        plumber.start([range(10)])
    alone = Plumber(pipes=[(Piper(first), Piper(first, parallel=numap))])
    alone.start([range(4)])  # without a join it is fine
    alone.stop()


# --- fan-outs in bounded memory (finding 3) ----------------------------------


class CountedInput:
    """An input stream of ``0 .. n - 1`` (endless for None) that counts
    the items read from it."""

    def __init__(self, n=None):
        self.read = 0
        self._n = n

    def __iter__(self):
        return self

    def __next__(self):
        if self._n is not None and self.read >= self._n:
            raise StopIteration
        self.read += 1
        return self.read - 1


def fast_and_slow(items):
    """A fan-out from a linear Piper to a fast linear output and a slow
    output on a thread NuMap (2 ms an item, 2 workers)."""
    numap = NuMap(worker_type="thread", worker_num=2)
    source = Piper(first, name="source")
    fast = Piper(first, name="fast")
    slow_worker = Worker(sleepy, (), {"slow": range(items), "seconds": 0.002})
    slow = Piper(slow_worker, parallel=numap, name="slow")
    return source, fast, slow, Plumber(pipes=[(source, fast), (source, slow)])


def largest_lag(plumber, data, slow):
    """Run ``plumber`` on ``data``; the most items read from the input
    and not yet out of ``slow`` seen while it ran."""
    plumber.start([data])
    plumber.run()
    lag = 0
    while not plumber._finished.wait(0.01):
        lag = max(lag, data.read - slow.counters()["items_out"])
    plumber.wait(30)
    return lag


@pytest.mark.timeout(60)
def test_a_fan_out_to_a_fast_and_a_slow_output_keeps_memory_bounded():
    # Before: the fast output read the whole input, and the slow output's
    # queue held nearly all of it (224 MB for 20000 items of 10 kB).
    items = 1500
    source, fast, slow, plumber = fast_and_slow(items)
    data = CountedInput(items)
    lag = largest_lag(plumber, data, slow)
    counters = plumber.stats["pipers"]
    plumber.stop()
    # The Tee's bound (64) plus what the NuMap holds (its buffer, 2).
    assert lag <= TEE_MIN_BOUND + 2 + 1
    assert [counters[p]["items_out"] for p in (source, fast, slow)] == [items] * 3


@pytest.mark.timeout(60)
def test_stop_ends_a_fan_out_waiting_for_its_slow_branch_promptly():
    # Before: the slow branch's queue grew for as long as the pipeline
    # ran, and stop() waited for all of it to be processed.
    _, fast, slow, plumber = fast_and_slow(10**9)
    plumber.start([CountedInput()])
    plumber.run()
    time.sleep(1.0)
    began = time.monotonic()
    assert stop_within(plumber, 10)
    assert time.monotonic() - began < 3
    counters = plumber.stats["pipers"]
    # Every item read went through both branches, once.
    assert counters[fast]["items_out"] == counters[slow]["items_out"] > 0
    assert not left_threads()


@pytest.mark.timeout(60)
def test_pause_and_run_a_fan_out_waiting_for_its_slow_branch():
    # Both branches linear: nothing but the slow output's puller empties
    # its queue, so the fast puller, waiting for room, must be let go when
    # the slow one pauses, or pause() would wait for it forever.
    items = 3000
    source = Piper(first, name="source")
    fast = Piper(first, name="fast")
    slow_worker = Worker(sleepy, (), {"slow": range(items), "seconds": 0.002})
    slow = Piper(slow_worker, name="slow")
    plumber = Plumber(pipes=[(source, fast), (source, slow)])
    plumber.start([range(items)])
    plumber.run()
    time.sleep(0.5)
    pauser = threading.Thread(target=plumber.pause, daemon=True)
    pauser.start()
    pauser.join(10)
    assert not pauser.is_alive()
    assert plumber.state == "paused"
    plumber.run()
    plumber.wait(30)
    counters = plumber.stats["pipers"]
    plumber.stop()
    assert [counters[p]["items_out"] for p in (source, fast, slow)] == [items] * 3


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stride", [1, 8, 40])
def test_a_fan_out_joined_again_downstream_does_not_stall(stride):
    # One branch runs through a NuMap whose consume=2 Piper reads 2 x
    # stride items before it gives anything: the other branch must be
    # let that far ahead (stride 40: more than the Tee's least bound).
    numap = NuMap(worker_type="thread", worker_num=2, stride=stride)
    source = Piper(first, name="source")
    doubled = Piper(first, parallel=numap, produce=2, repeat=True, name="doubled")
    grouped = Piper(both, parallel=numap, consume=2, name="grouped")
    plain = Piper(first, name="plain")
    join = Piper(both, name="join")
    plumber = Plumber(pipes=[(source, doubled, grouped, join), (source, plain, join)])
    plumber.start([range(500)])
    results = list(join)
    plumber.stop()
    # (Inputs of a join: shorter branch first, see the README's "Order".)
    assert results == [(i, ((i, i),)) for i in range(500)]


@pytest.mark.timeout(60)
def test_a_join_that_ends_first_does_not_hold_up_the_other_readers():
    # The join ends with its shorter input and reads its branch of the
    # fan-out no more; the output reading the other branch goes on.
    source = Piper(first, name="source")
    output = Piper(first, name="output")
    join = Piper(both, name="join")
    other = Piper(first, name="other")
    plumber = Plumber(pipes=[(source, output), (source, join), (other, join)])
    inputs = plumber.get_inputs()
    datas = [range(1000) if piper is source else range(5) for piper in inputs]
    plumber.start(datas)
    plumber.run()
    plumber.wait(30)
    counters = plumber.stats["pipers"]
    plumber.stop()
    assert counters[output]["items_out"] == 1000
    assert counters[join]["items_out"] == 5


# --- input order (finding 6: documented, unchanged) ---------------------------


def tag_one(inbox):
    return "R1:" + inbox[0]


def tag_two(inbox):
    return "R2:" + inbox[0]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("pinned", [False, True])
def test_inputs_come_shorter_branch_first_unless_pinned_by_branch(pinned):
    # The 1.x order, as the README's "Order" says: not the add_pipe order.
    labels = (1, 2) if pinned else (None, None)
    read1 = Piper(tag_one, name="read1", branch=labels[0])
    read2 = Piper(tag_two, name="read2", branch=labels[1])
    join = Piper(both, name="pair")
    plumber = Plumber()
    plumber.add_pipe((read1, Piper(first, name="trim"), join))
    plumber.add_pipe((read2, join))
    expected = [read1, read2] if pinned else [read2, read1]
    assert plumber.get_inputs() == expected
    data = {read1: ["a"], read2: ["A"]}
    plumber.start([data[piper] for piper in plumber.get_inputs()])
    pairs = list(join)
    plumber.stop()
    assert pairs == ([("R1:a", "R2:A")] if pinned else [("R2:A", "R1:a")])


# --- clear errors for wrong arguments (findings 7 and 8) ----------------------


@pytest.mark.timeout(10)
def test_a_piper_given_where_a_pipe_belongs_is_refused_clearly():
    # Before: "Piper 'a' is new; start() it before next()" (the Piper, an
    # iterator, was read as if it were the pipe).
    a, b = Piper(first, name="a"), Piper(first, name="b")
    alone = "a pipe must be a tuple or list of Pipers, got the Piper 'a' alone"
    with pytest.raises(DaggerError, match=alone):
        Plumber(pipes=[a, b])
    with pytest.raises(DaggerError, match=alone):
        Plumber().add_pipe(a)
    with pytest.raises(DaggerError, match="'pipes' must be a list of pipes"):
        Plumber().add_pipes(a)
    with pytest.raises(DaggerError, match="got 'ab'"):
        Plumber().add_pipe("ab")
    plumber = Plumber(pipes=[(a, b)])
    assert plumber.get_outputs() == [b]


@pytest.mark.timeout(10)
def test_plumber_refuses_wrong_logger_options_and_dagger():
    # Before: TypeErrors that did not name the argument.
    with pytest.raises(PlumberError, match="'logger_options' must be a dict"):
        Plumber(logger_options=5)
    with pytest.raises(PlumberError, match="'logger_options' has key\\(s\\) 'level'"):
        Plumber(logger_options={"level": "LOUD"})
    with pytest.raises(PlumberError, match="'dagger' must be a Dagger"):
        Plumber(dagger=[Piper(first)])
    with pytest.raises(PlumberError, match="'name' must be a str"):
        Plumber(name=5)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("keywords", "message"),
    [
        ({"name": 5}, "'name' must be a str or None, got 5"),
        ({"debug": "no"}, "'debug' must be True or False, got 'no'"),
        ({"track": 2}, "'track' must be True or False, got 2"),
        ({"repeat": None}, "'repeat' must be True or False, got None"),
    ],
)
def test_piper_refuses_a_name_that_is_no_text_and_flags_that_are_no_bools(
    keywords, message
):
    # Before: taken as given ("no" meant debug=True).
    with pytest.raises(PiperError, match=message):
        Piper(first, **keywords)


@pytest.mark.timeout(10)
def test_piper_takes_flags_written_as_1_and_0():
    # 1.x scripts and pipeline files saved before write debug=1.
    piper = Piper(first, debug=1, track=0)
    assert piper.debug is True and piper.track is False


# --- the bounded Tee itself ---------------------------------------------------


def read_in_thread(branch):
    """Start a thread that reads ``branch`` to its end; (thread, items)."""
    items = []
    thread = threading.Thread(target=lambda: items.extend(branch), daemon=True)
    thread.start()
    return thread, items


@pytest.mark.timeout(20)
def test_a_bounded_tee_holds_a_reader_that_runs_ahead():
    tee = Tee(iter(range(200)), 2, bound=5)
    slow = tee.branch(1)
    first = next(slow)  # read by this thread: the fast one waits for it
    fast, fast_items = read_in_thread(tee.branch(0))
    time.sleep(0.3)
    assert tee.queue_lengths() == [0, 5]  # the fast reader waits
    assert len(fast_items) == 6
    slow_items = [first, *slow]
    fast.join(5)
    assert fast_items == slow_items == list(range(200))


@pytest.mark.timeout(20)
def test_one_thread_may_read_a_bounded_tee_branch_after_branch():
    # A thread never waits for a queue that only it (or nobody yet) reads:
    # reading one output to its end before the next does not hang.
    tee = Tee(iter(range(200)), 3, bound=5)
    third = tee.branch(2)
    assert next(third) == 0
    assert list(tee.branch(0)) == list(range(200))
    assert list(tee.branch(1)) == list(range(200))
    assert list(third) == list(range(1, 200))


@pytest.mark.timeout(20)
@pytest.mark.parametrize("let_go", ["release", "loosen", "abandon"])
def test_a_waiting_tee_reader_goes_on_when_let_go(let_go):
    tee = Tee(iter(range(50)), 2, bound=3)
    assert next(tee.branch(1)) == 0  # read by this thread: waited for
    fast, fast_items = read_in_thread(tee.branch(0))
    time.sleep(0.2)
    assert not fast_items[4:] and fast.is_alive()
    if let_go == "abandon":
        tee.abandon(1)
    else:
        getattr(tee, let_go)()
    fast.join(5)
    assert fast_items == list(range(50))
    # Branch 1 was not read further: it holds the rest, unless abandoned.
    assert tee.queue_lengths()[1] == (0 if let_go == "abandon" else 49)


# --- second look: what the fixes above broke ----------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("middle", ["linear", "parallel"])
def test_a_join_that_ends_early_lets_go_through_the_pipers_before_it(middle):
    # Regression: J ends with its short input; B, read by J alone, was still
    # counted as a reader of S's fan-out, so C's reader waited for ever.
    parallel = (
        NuMap(worker_type="thread", worker_num=2) if middle == "parallel" else False
    )
    long_input = Piper(first, name="I1", branch=1)
    short_input = Piper(first, name="I2", branch=2)
    split = Piper(first, name="S")
    between = Piper(first, parallel=parallel, name="B")
    other = Piper(first, name="C")
    join = Piper(both, name="J")
    plumber = Plumber(
        pipes=[(long_input, split, between, join), (split, other), (short_input, join)]
    )
    lengths = {"I1": 1000, "I2": 10}
    plumber.start([range(lengths[piper.name]) for piper in plumber.get_inputs()])
    plumber.run()
    plumber.wait(30)
    assert plumber.stats["pipers"][other]["items_out"] == 1000
    assert plumber.stats["pipers"][join]["items_out"] == 10
    plumber.stop()


@pytest.mark.timeout(20)
def test_nobody_waits_for_a_reader_thread_that_ended():
    # Regression: a thread read 10 items of branch 0 and ended; reading
    # branch 1 then waited for ever for branch 0's full queue to shrink.
    tee = Tee(iter(range(200)), 2, bound=5)
    early, early_items = read_in_thread(itertools.islice(tee.branch(0), 10))
    early.join(5)
    assert early_items == list(range(10))
    assert list(tee.branch(1)) == list(range(200))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("flagged", ["unordered", "timeout"])
def test_a_flagged_piper_before_the_fan_out_of_a_join_is_allowed(flagged):
    # Regression: refused, though every input of the join then carries the
    # same items (extra errors or a new order alike) and pairs right.
    if flagged == "unordered":
        numap = NuMap(worker_type="thread", worker_num=4, ordered=False)
        before = Piper(first, parallel=numap, name="u")
    else:
        numap = NuMap(worker_type="thread", worker_num=2)
        before = Piper(first, parallel=numap, timeout=5, name="t")
    source, left, right = Piper(first), Piper(first), Piper(first)
    join = Piper(same_pair, name="j")
    plumber = Plumber(pipes=[(source, before, left, join), (before, right, join)])
    plumber.start([range(20)])
    plumber.run()
    plumber.wait(20)
    counts = plumber.stats["pipers"][join]
    assert (counts["items_out"], counts["errors"]) == (20, 0)
    plumber.stop()


def same_pair(inbox):
    """A join that fails on items of different input items."""
    if inbox[0] != inbox[1]:
        raise ValueError(f"mispaired: {inbox!r}")
    return inbox[0]


@pytest.mark.timeout(30)
def test_the_fan_out_bound_does_not_grow_with_produce_and_consume_pairs():
    # Regression: the bound counted consume but not produce, so a branch of
    # ten produce=2 / consume=2 pairs (one item out per item in) got 8186.
    source, other = Piper(first, name="S"), Piper(first, name="C")
    chain = [source]
    for number in range(10):
        chain += [
            Piper(pair, name=f"P{number}", produce=2),
            Piper(first, name=f"Q{number}", consume=2),
        ]
    dagger = Dagger(pipes=[tuple(chain), (source, other)])
    dagger.connect([range(10)])
    dagger.start()
    try:
        assert source._tee._bound == TEE_MIN_BOUND
    finally:
        dagger.stop()
