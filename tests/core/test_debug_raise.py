"""A debug=True Piper's raise after review 16: it wins at a join over an
ordinary error of another branch, survives a worker process that cannot
unpickle its exception, and counts as an error where it is raised; an
input that raises reaches every branch of a fan-out alike. Real NuMaps
(thread and process workers) throughout."""

import pytest
from core_functions import both, fail_on, first
from numap import NuMap
from papy.core import Piper, PiperError, Plumber, Worker


class TwoArguments(Exception):
    """An exception that does not unpickle: pickle calls
    ``TwoArguments(*args)`` with the one message in ``args``."""

    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")


def raise_unpicklable_on_three(inbox):
    if inbox[0] == 3:
        raise TwoArguments(1, 2)
    return inbox[0]


def fails_on_three():
    return Worker(fail_on, (), {"bad": (3,)})


def make_numap(worker_type):
    """A NuMap of ``worker_type``, or False (linear) for None."""
    if worker_type is None:
        return False
    return NuMap(worker_type=worker_type, worker_num=2)


def run_failure(plumber, datas):
    """Run ``plumber`` on ``datas``; the cause of wait()'s error (None if
    wait() returned), with the counters by Piper name; stops it."""
    plumber.start(datas)
    plumber.run()
    try:
        plumber.wait(30)
        cause = None
    except RuntimeError as error:
        assert "run failed" in str(error)
        cause = error.__cause__
    counters = {piper.name: c for piper, c in plumber.stats["pipers"].items()}
    plumber.stop()
    return cause, counters


def read_with_raises(piper):
    """Everything ``piper`` gives, a raised PiperError in its place."""
    results = []
    while True:
        try:
            results.append(piper.next())
        except StopIteration:
            return results
        except PiperError as error:
            results.append(error)


# --- a join: the debug raise wins over another branch's error ----------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("worker_type", "plain_error"),
    [
        (None, "ordinary"),
        ("thread", "ordinary"),
        ("process", "ordinary"),
        # The other branch's error does not unpickle in a worker process:
        # it must not take the raise down with it.
        ("process", "unpicklable"),
    ],
)
@pytest.mark.parametrize("debug_branch", [1, 2], ids=["debug-first", "plain-first"])
def test_debug_raise_wins_at_a_join_over_an_ordinary_error(
    worker_type, plain_error, debug_branch
):
    # Before: with the plain branch first in the join's inbox, its error was
    # passed on instead, and wait() returned normally.
    plain_worker = (
        fails_on_three()
        if plain_error == "ordinary"
        else Worker(raise_unpicklable_on_three)
    )
    source = Piper(first, name="source")
    plain = Piper(plain_worker, name="plain", branch=3 - debug_branch)
    raising = Piper(fails_on_three(), debug=True, name="raising", branch=debug_branch)
    join = Piper(both, parallel=make_numap(worker_type), name="join")
    plumber = Plumber(pipes=[(source, plain, join), (source, raising, join)])
    cause, counters = run_failure(plumber, [range(8)])
    assert isinstance(cause, PiperError)
    assert "Piper 'raising'" in str(cause) and "bad item 3" in str(cause)
    assert counters["join"]["errors"] == 1


# --- an exception a worker process cannot unpickle -----------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("chained", [False, True], ids=["one", "chained-run"])
def test_unpicklable_debug_raise_crosses_worker_processes(chained):
    # Before: the raise failed to unpickle in the worker process, became an
    # ordinary error of the item, and wait() returned normally.
    numap = NuMap(worker_type="process", worker_num=2)
    raising = Piper(Worker(raise_unpicklable_on_three), debug=True, name="raising")
    pipers = [raising, Piper(first, parallel=numap, name="m")]
    if chained:
        pipers.append(Piper(first, parallel=numap, name="n"))
    plumber = Plumber(pipes=[tuple(pipers)])
    cause, counters = run_failure(plumber, [range(10)])
    assert isinstance(cause, PiperError)
    assert isinstance(cause.exception.exception, TwoArguments)  # the original
    for piper in pipers[1:]:
        assert counters[piper.name]["errors"] == 1


@pytest.mark.timeout(60)
def test_unpicklable_debug_raise_keeps_its_place_in_a_chained_run():
    numap = NuMap(worker_type="process", worker_num=2)
    raising = Piper(Worker(raise_unpicklable_on_three), debug=True, name="raising")
    middle = Piper(first, parallel=numap, name="middle")
    last = Piper(first, parallel=numap, name="last")
    plumber = Plumber(pipes=[(raising, middle, last)])
    plumber.start([range(8)])
    assert last._chained_from is middle
    results = read_with_raises(last)
    counters = {piper.name: c for piper, c in plumber.stats["pipers"].items()}
    plumber.stop()
    assert results[:3] == [0, 1, 2] and results[4:] == [4, 5, 6, 7]
    assert isinstance(results[3].exception.exception, TwoArguments)
    for name in ("middle", "last"):
        assert counters[name]["items_in"] == counters[name]["items_out"] == 8
        assert counters[name]["errors"] == 1


# --- counters of a raise ---------------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", [None, "thread", "process"])
def test_a_raising_debug_output_counts_its_error_out(worker_type):
    # Before: counted nowhere (errors=0 everywhere in a failed run).
    numap = make_numap(worker_type)
    raising = Piper(fails_on_three(), parallel=numap, debug=True, name="raising")
    cause, counters = run_failure(Plumber(pipers=[raising]), [range(10)])
    assert isinstance(cause, PiperError)
    assert counters["raising"]["errors"] == 1
    assert counters["raising"]["items_out"] == 4  # items 0 to 3


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_every_piper_a_raise_passes_counts_it_as_an_error_out(worker_type):
    # Before: the output Piper that raised it did not count it.
    numap = make_numap(worker_type)
    raising = Piper(fails_on_three(), parallel=numap, debug=True, name="raising")
    middle = Piper(first, parallel=numap, name="middle")
    output = Piper(first, name="output")
    plumber = Plumber(pipes=[(raising, middle, output)])
    cause, counters = run_failure(plumber, [range(10)])
    assert isinstance(cause, PiperError)
    for name in ("raising", "middle", "output"):
        assert counters[name]["errors"] == 1
        assert counters[name]["errors"] <= counters[name]["items_out"]
    assert counters["output"]["items_out"] == 4  # items 0 to 3


# --- an input iterator that raises ---------------------------------------------


def breaks_at_fifty():
    for item in range(100):
        if item == 50:
            raise ValueError("input broke at 50")
        yield item


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_an_input_that_raises_reaches_every_branch_alike(worker_type):
    # Before: behind a linear Piper read by two NuMap Pipers, the branch
    # whose read raised got the error, the other one a clean end.
    numap = NuMap(worker_type=worker_type, worker_num=2)
    source = Piper(first, name="source")
    left = Piper(first, parallel=numap, name="left", branch=1)
    right = Piper(first, parallel=numap, name="right", branch=2)
    plumber = Plumber(pipes=[(source, left), (source, right)])
    cause, counters = run_failure(plumber, [breaks_at_fifty()])
    assert cause is None  # the failed read is an item's error
    # The input Piper turns it into an error item in the 51st slot, which
    # every branch reads.
    for name in ("source", "left", "right"):
        assert counters[name]["items_in"] == 51
        assert counters[name]["errors"] == 1


def pair(inbox):
    return (inbox[0], inbox[0])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_raise_copied_into_two_slots_comes_back_whole_twice(worker_type):
    # produce=2 puts one raise in two slots: both cross the NuMap, and both
    # must be raised with the original error (the second came back as the
    # bare stand-in from worker processes), none of it kept after.
    source = Piper(fails_on_three(), debug=True, name="source")
    doubled = Piper(Worker(pair), produce=2, name="doubled")
    # A buffer of 8: both copies are in the map before either comes back.
    numap = NuMap(worker_type=worker_type, worker_num=2, buffer=8)
    last = Piper(first, parallel=numap, name="last")
    source.connect([range(5)])
    doubled.connect([source])
    last.connect([doubled])
    for piper in (source, doubled, last):
        piper.start()
    try:
        results = read_with_raises(last)
    finally:
        for piper in (last, doubled, source):
            piper.stop()
    raised = [item for item in results if isinstance(item, PiperError)]
    assert len(results) == 10 and len(raised) == 2
    for error in raised:
        assert "bad item 3" in str(error.args[1])
    assert last._held_originals == {}
