"""Regressions found in session 18 of papy.core: the error a timeout puts
ahead of a late result (a NuMap without skip) took a slot in a Piper's
spawn and produce blocks, which reordered the stream and, with spawn > 1,
lost its last result. Real NuMaps (thread workers), real threads."""

import pytest
from core_functions import sleepy
from numap import NuMap
from papy.core import (
    Dagger,
    DaggerError,
    Piper,
    PiperError,
    Plumber,
    Worker,
    WorkerError,
)
from papy.core._streams import merge, unroll

SLOW_ITEM = 1
ITEMS = 12


def timed_out(item):
    return isinstance(item, PiperError) and isinstance(item.exception, TimeoutError)


def read_all(piper, source):
    """The output of ``piper``, alone in a Plumber over ``source``."""
    plumber = Plumber(pipes=[(piper,)])
    plumber.start([source])
    output = []
    try:
        while True:
            try:
                output.append(piper.next())
            except StopIteration:
                return output
    finally:
        plumber.stop()


def run_late_piper(spawn, produce, skip):
    """The output of a Piper over 0..11 whose item 1 outlives the timeout."""
    numap = NuMap(worker_type="thread", worker_num=4, skip=skip)
    worker = Worker(sleepy, kwargs={"slow": (SLOW_ITEM,), "seconds": 1.0})
    piper = Piper(
        worker,
        parallel=numap,
        timeout=0.2,
        spawn=spawn,
        produce=produce,
        repeat=True,
        name="late",
    )
    return read_all(piper, range(ITEMS))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spawn", [1, 2, 3])
def test_timeout_errors_without_skip_keep_the_order_and_every_result(spawn):
    # Before: with spawn=2 the stream came as 0 E 1 2 4 5 6 7 3 8 9 10,
    # item 3 out of place and item 11 lost.
    output = run_late_piper(spawn, produce=1, skip=False)
    results = [item for item in output if not timed_out(item)]
    assert results == list(range(ITEMS))
    errors = [index for index, item in enumerate(output) if timed_out(item)]
    assert errors, "item 1 should have timed out at least once"
    assert all(index <= output.index(SLOW_ITEM) for index in errors)


@pytest.mark.timeout(60)
def test_timeout_errors_without_skip_stay_out_of_produce_blocks():
    # Before: the error took a slot of its stride's block (two copies of
    # it), and every later block of the unrolled stream was shifted.
    output = run_late_piper(spawn=1, produce=2, skip=False)
    results = [item for item in output if not timed_out(item)]
    stride = 4  # the NuMap's workers
    expected = []
    for start in range(0, ITEMS, stride):
        block = list(range(start, start + stride))
        expected += block + block
    assert results == expected
    assert sum(timed_out(item) for item in output) >= 1


@pytest.mark.timeout(60)
@pytest.mark.parametrize("spawn, produce", [(2, 1), (1, 2)])
def test_with_skip_the_timeout_error_takes_the_late_results_slot(spawn, produce):
    output = run_late_piper(spawn, produce, skip=True)
    late = PiperError("late")
    expected = [late if item == SLOW_ITEM else item for item in range(ITEMS)]
    if produce == 2:
        blocks = [expected[start : start + 4] for start in range(0, ITEMS, 4)]
        expected = [item for block in blocks for item in block + block]
    assert [late if timed_out(item) else item for item in output] == expected


@pytest.mark.timeout(10)
def test_merge_passes_on_what_takes_no_slot_without_counting_it():
    copies = [iter([0, "x", 1, 4, 5]), iter([2, 3, 6])]
    merged = merge(lambda copy: next(copies[copy]), 2, 2, lambda item: item != "x")
    assert list(merged) == [0, "x", 1, 2, 3, 4, 5, 6]


@pytest.mark.timeout(10)
def test_unroll_passes_on_what_takes_no_slot_once_ahead_of_its_block():
    results = iter(["a", "x", "b", "c", "d"])
    unrolled = unroll(
        results, 2, 2, lambda item: (item + "0", item + "1"), lambda item: item != "x"
    )
    assert list(unrolled) == ["x", "a0", "b0", "a1", "b1", "c0", "d0", "c1", "d1"]


# --- an input iterator that raises (linear and parallel alike) ----------------


def plus_one(inbox):
    return inbox[0] + 1


def sum_of(inbox):
    return sum(inbox)


def breaks_after_two():
    yield 1
    yield 2
    raise OSError("disk gone")


class BadLineReader:
    """An iterator that raises for item 2 and reads on after it, as a
    csv.reader does after a bad line."""

    def __init__(self, count, bad=(2,)):
        self.next_item = 0
        self.count = count
        self.bad = bad

    def __iter__(self):
        return self

    def __next__(self):
        item = self.next_item
        if item >= self.count:
            raise StopIteration
        self.next_item += 1
        if item in self.bad:
            raise ValueError(f"bad line {item}")
        return item


def input_error(item, index=0):
    return (
        isinstance(item, PiperError)
        and f"input {index} raised" in str(item)
        and isinstance(item.exception, Exception)
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", [None, "thread", "process"])
def test_an_input_that_raises_gives_an_error_item_linear_or_parallel(worker_type):
    # Before: a linear Piper raised the input's OSError from next() (and a
    # Plumber's run failed), where a parallel one returned a PiperError
    # saying that "the NuMap failed".
    parallel = False if worker_type is None else NuMap(worker_type=worker_type)
    piper = Piper(Worker(plus_one), parallel=parallel, name="p")
    output = read_all(piper, breaks_after_two())
    assert output[:2] == [2, 3]
    assert len(output) == 3 and input_error(output[2])
    assert isinstance(output[2].exception, OSError)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", [None, "thread", "process"])
def test_an_input_that_raises_is_read_on(worker_type):
    # Before: the first raise ended the input, linear or parallel (the
    # Piper's inbox generator ended with it).
    parallel = False if worker_type is None else NuMap(worker_type=worker_type)
    piper = Piper(Worker(plus_one), parallel=parallel, name="p")
    output = read_all(piper, BadLineReader(6))
    assert [item for item in output if not input_error(item)] == [1, 2, 4, 5, 6]
    assert input_error(output[2]) and len(output) == 6


@pytest.mark.timeout(60)
def test_an_input_that_keeps_raising_is_ended():
    piper = Piper(Worker(plus_one), name="p")
    output = read_all(piper, BadLineReader(10**9, bad=range(1, 10**9)))
    assert output[0] == 1
    assert len(output) == 1 + 100 and all(map(input_error, output[1:]))


# --- Dagger.start() after connect_inputs() alone ------------------------------


@pytest.mark.timeout(30)
def test_a_dagger_with_pipers_left_unconnected_refuses_to_start():
    # Before: start() started the input Pipers and returned; the output
    # said it was "new" only once read.
    source = Piper(Worker(plus_one), name="source")
    output = Piper(Worker(plus_one), name="output")
    dagger = Dagger(pipes=[(source, output)])
    dagger.connect_inputs([range(3)])
    with pytest.raises(DaggerError, match="'output' is not connected.*connect_inputs"):
        dagger.start()
    assert source.state == "connected"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kwargs", [5, "ab", [5]])
def test_a_worker_refuses_kwargs_that_are_no_dict_with_a_worker_error(kwargs):
    # Before: kwargs=5 raised a bare TypeError from len().
    with pytest.raises(WorkerError, match="'kwargs' must be a dict"):
        Worker(plus_one, kwargs=kwargs)


# --- NuMaps whose streams other NuMaps read in turns --------------------------


def two_chains(x_buffer=None):
    """Two chains from a process NuMap to a thread NuMap of 8 threads:
    the thread NuMap's feeder reads the two streams in turns of 8."""
    x = NuMap(worker_type="process", worker_num=2, buffer=x_buffer, name="X")
    y = NuMap(worker_type="thread", worker_num=8, name="Y")
    pipes = [
        (
            Piper(Worker(plus_one), parallel=x, name=f"x{i}"),
            Piper(Worker(plus_one), parallel=y, name=f"y{i}"),
        )
        for i in (1, 2)
    ]
    return Plumber(pipes=pipes), [pipe[1] for pipe in pipes]


def run_to_end(plumber, inputs, outputs):
    plumber.start(inputs)
    plumber.run()
    plumber.wait(30)
    counts = [plumber.stats["pipers"][piper]["items_out"] for piper in outputs]
    plumber.stop()
    return counts


@pytest.mark.timeout(60)
def test_a_buffer_that_two_chains_across_numaps_would_fill_is_refused():
    # Before: 4 items into each chain, then nothing, and stop() hung too.
    plumber, _ = two_chains()
    with pytest.raises(
        DaggerError, match=r"NuMap 'X'.*buffer, 4 \(its default.*NuMap\(buffer=9\)"
    ):
        plumber.start([range(200), range(200)])
    plumber, outputs = two_chains(x_buffer=9)
    assert run_to_end(plumber, [range(200), range(200)], outputs) == [200, 200]


@pytest.mark.timeout(60)
def test_a_diamond_across_two_numaps_needs_a_turn_of_room():
    # Before: a fan-out from one NuMap joined on another stalled for good.
    def diamond(x_buffer=None):
        x = NuMap(worker_type="thread", worker_num=1, buffer=x_buffer, name="X")
        y = NuMap(worker_type="thread", worker_num=2, stride=5, name="Y")
        stem = Piper(Worker(plus_one), parallel=x, name="stem")
        left = Piper(Worker(plus_one), parallel=x, name="left", branch=1)
        right = Piper(Worker(plus_one), parallel=y, name="right", branch=2)
        join = Piper(Worker(sum_of), parallel=y, name="join")
        return Plumber(pipes=[(stem, left, join), (stem, right, join)]), [join]

    plumber, _ = diamond()
    with pytest.raises(DaggerError, match=r"NuMap\(buffer=6\)"):
        plumber.start([range(50)])
    plumber, outputs = diamond(x_buffer=6)
    assert run_to_end(plumber, [range(50)], outputs) == [50]


def coupled(y_workers, x_buffer=None):
    """A NuMap of one thread feeds a NuMap of stride 5 and, beside it, a
    linear join at the output, which reads the first branch first."""
    x = NuMap(worker_type="thread", worker_num=1, buffer=x_buffer, name="X")
    y = NuMap(worker_type="thread", worker_num=y_workers, stride=5, name="Y")
    source = Piper(Worker(plus_one), name="source")
    a = Piper(Worker(plus_one), parallel=x, name="a", branch=1)
    slow = Piper(Worker(plus_one), parallel=y, name="slow")
    b = Piper(Worker(plus_one), parallel=x, name="b", branch=2)
    join = Piper(Worker(sum_of), name="join")
    pipes = [(source, a, slow, join), (source, b, join)]
    return Plumber(pipes=pipes), [join]


@pytest.mark.timeout(60)
def test_a_linear_join_at_an_output_couples_what_it_reads():
    # With 2 workers, Y gathers batches of 3 of a's results before any
    # moves on, while b's results, which the join reads second, fill X's
    # buffer of 2: before, 0 items out for good.
    plumber, _ = coupled(y_workers=2)
    with pytest.raises(DaggerError, match=r"NuMap\(buffer=4\)"):
        plumber.start([range(50)])
    plumber, outputs = coupled(y_workers=2, x_buffer=4)
    assert run_to_end(plumber, [range(50)], outputs) == [50]


@pytest.mark.timeout(60)
def test_a_reader_gathering_one_item_at_a_time_needs_no_more_buffer():
    # With 5 workers Y sends each item on at once (batches of 1).
    plumber, outputs = coupled(y_workers=5)
    assert run_to_end(plumber, [range(50)], outputs) == [50]


def held_turn(x_buffer=None):
    """X feeds a stem and a left branch; Y reads the stem in turns of 5
    (its feeder feeds a second Piper, downstream, whose turn waits for
    that one); the join on Z reads left and Y's last Piper."""
    x = NuMap(worker_type="thread", worker_num=2, stride=1, buffer=x_buffer, name="X")
    y = NuMap(worker_type="thread", worker_num=3, stride=5, name="Y")
    z = NuMap(worker_type="thread", worker_num=1, stride=1, name="Z")
    stem = Piper(Worker(plus_one), parallel=x, name="stem")
    left = Piper(Worker(plus_one), parallel=x, name="left", branch=1)
    right = Piper(Worker(plus_one), parallel=y, name="right", branch=2)
    between = Piper(Worker(plus_one), name="between")
    last = Piper(Worker(plus_one), parallel=y, name="last")
    join = Piper(Worker(sum_of), parallel=z, name="join")
    pipes = [(stem, left, join), (stem, right, between, last, join)]
    return Plumber(pipes=pipes), [join]


# Session 19 (fuzzing): a reader whose NuMap feeds other Pipers too holds
# up a whole turn, not one batch: Y's feeder stays in right's turn until
# it has 5 items, and last's turn (which the join waits for) comes after.
# Counted as a batch of 2, X's default buffer of 2 passed the check, and
# the pipeline stalled with 0 items out (so did buffer=3).
@pytest.mark.timeout(60)
def test_a_reader_whose_numap_feeds_other_pipers_holds_up_a_whole_turn():
    plumber, _ = held_turn()
    with pytest.raises(DaggerError, match=r"NuMap 'X'.*NuMap\(buffer=6\)"):
        plumber.start([range(50)])
    plumber, outputs = held_turn(x_buffer=6)
    assert run_to_end(plumber, [range(50)], outputs) == [50]


def join_before_the_output(x_buffer=None):
    """As ``coupled``, with a linear Piper after the linear join: the
    thread reading the output runs both, so the join still couples what
    it reads."""
    x = NuMap(worker_type="thread", worker_num=3, stride=1, buffer=x_buffer, name="X")
    y = NuMap(worker_type="thread", worker_num=1, stride=5, name="Y")
    stem = Piper(Worker(plus_one), parallel=x, name="stem")
    a = Piper(Worker(plus_one), parallel=x, name="a", branch=1)
    b = Piper(Worker(plus_one), parallel=y, name="b", branch=2)
    join = Piper(Worker(sum_of), name="join")
    tail = Piper(Worker(plus_one), name="tail")
    pipes = [(stem, a, join), (stem, b, join), (join, tail)]
    return Plumber(pipes=pipes), [tail]


# Session 19 (fuzzing): only a linear join at an output was counted as a
# reader; one followed by linear Pipers runs in the output's thread too.
# Before: X's default buffer of 2 passed the check, 0 items out for good.
@pytest.mark.timeout(60)
def test_a_linear_join_followed_by_linear_pipers_couples_what_it_reads():
    plumber, _ = join_before_the_output()
    with pytest.raises(DaggerError, match=r"NuMap 'X'.*NuMap\(buffer=6\)"):
        plumber.start([range(50)])
    plumber, outputs = join_before_the_output(x_buffer=6)
    assert run_to_end(plumber, [range(50)], outputs) == [50]


def two_hops(x_buffer=None):
    """Y gathers batches of 5 of M's results, and M reads X: what Y holds
    up must flow out of X, while the join reads X's other stream."""
    x = NuMap(worker_type="thread", worker_num=2, stride=1, buffer=x_buffer, name="X")
    m = NuMap(worker_type="thread", worker_num=2, stride=2, name="M")
    y = NuMap(worker_type="thread", worker_num=1, stride=5, name="Y")
    stem = Piper(Worker(plus_one), parallel=x, name="stem")
    a = Piper(Worker(plus_one), parallel=x, name="a", branch=1)
    b = Piper(Worker(plus_one), parallel=m, name="b", branch=2)
    c = Piper(Worker(plus_one), parallel=y, name="c")
    join = Piper(Worker(sum_of), name="join")
    return Plumber(pipes=[(stem, a, join), (stem, b, c, join)]), [join]


# Session 19 (fuzzing): only the NuMaps reading X directly were counted;
# Y reads X through M. Before: X's default buffer of 2 (and 3) passed the
# check, and the pipeline stalled with 0 items out.
@pytest.mark.timeout(60)
def test_a_reader_two_numaps_away_still_needs_room():
    plumber, _ = two_hops()
    with pytest.raises(DaggerError, match=r"NuMap 'X'.*NuMap\(buffer=6\)"):
        plumber.start([range(50)])
    plumber, outputs = two_hops(x_buffer=6)
    assert run_to_end(plumber, [range(50)], outputs) == [50]


# Session 19, fourth look at the check: following what a reader holds up
# through other NuMaps also walked into the Pipers a NuMap feeds itself,
# counting them as more streams read across (1); it walked every path
# through a graph, each chain of diamonds doubling it (2); and it read
# worker_num from duck-typed parallel objects that need not have it (3).
@pytest.mark.timeout(60)
def test_a_chain_of_two_pipers_on_one_numap_read_by_another_runs():
    x = NuMap(worker_type="thread", worker_num=2, name="X")
    y = NuMap(worker_type="thread", worker_num=2, name="Y")
    first = Piper(Worker(plus_one), parallel=x, name="first")
    second = Piper(Worker(plus_one), parallel=x, name="second")
    reader = Piper(Worker(plus_one), parallel=y, name="reader")
    plumber = Plumber(pipes=[(first, second, reader)])
    assert run_to_end(plumber, [range(200)], [reader]) == [200]


@pytest.mark.timeout(30)
def test_the_check_walks_a_long_chain_of_diamonds_once():
    # 26 diamonds: walking every path took minutes (x4 every 2 diamonds).
    b = NuMap(worker_type="thread", worker_num=1, name="B")
    c = NuMap(worker_type="thread", worker_num=1, name="C")
    previous = Piper(Worker(plus_one), parallel=b, name="s")
    pipes = []
    for number in range(26):
        left = Piper(Worker(plus_one), parallel=b, name=f"l{number}", branch=1)
        right = Piper(Worker(plus_one), parallel=b, name=f"r{number}", branch=2)
        join = Piper(Worker(sum_of), parallel=b, name=f"j{number}")
        pipes += [(previous, left, join), (previous, right, join)]
        previous = join
    pipes.append((previous, Piper(Worker(plus_one), parallel=c, name="reader")))
    dagger = Dagger(pipes=pipes)
    dagger.connect([range(3)])
    dagger._check_buffers_read_across()


class WithoutWorkerCounts:
    """A parallel object that is a NuMap but shows no worker counts."""

    def __init__(self, numap):
        object.__setattr__(self, "_numap", numap)

    def __getattr__(self, name):
        if name in ("worker_num", "worker_remote"):
            raise AttributeError(name)
        return getattr(self._numap, name)


@pytest.mark.timeout(60)
def test_a_parallel_object_without_worker_counts_is_checked_too():
    x = WithoutWorkerCounts(NuMap(worker_type="thread", worker_num=2))
    z = NuMap(worker_type="thread", worker_num=1)
    stem = Piper(Worker(plus_one), name="stem")
    a = Piper(Worker(plus_one), parallel=x, name="a", branch=1)
    b = Piper(Worker(plus_one), parallel=x, name="b", branch=2)
    join = Piper(Worker(sum_of), parallel=z, name="join")
    plumber = Plumber(pipes=[(stem, a, join), (stem, b, join)])
    assert run_to_end(plumber, [range(20)], [join]) == [20]


@pytest.mark.timeout(60)
def test_one_stream_read_across_numaps_needs_no_more_buffer():
    x = NuMap(worker_type="process", worker_num=2, name="X")
    y = NuMap(worker_type="thread", worker_num=8, name="Y")
    first = Piper(Worker(plus_one), parallel=x, name="first")
    second = Piper(Worker(plus_one), parallel=y, name="second")
    plumber = Plumber(pipes=[(first, second)])
    assert run_to_end(plumber, [range(200)], [second]) == [200]


# --- a pipeline name with a line break, saved -----------------------------------


@pytest.mark.timeout(30)
def test_a_line_break_in_the_pipeline_name_stays_inside_the_comment(tmp_path):
    # Before: the second line of the name was a line of code in the saved
    # file, and loading the file ran it.
    from papy.core import load_pipeline

    marker = tmp_path / "ran"
    name = f"two\nopen({str(marker)!r}, 'w').close()"
    plumber = Plumber(pipes=[(Piper(Worker(plus_one), name="p"),)], name=name)
    saved = tmp_path / "saved.py"
    plumber.save(saved)
    loaded = load_pipeline(saved)
    assert not marker.exists()
    assert loaded.name == name


# --- an exception that pickles but does not unpickle -----------------------------


class TwoPartError(Exception):
    """Pickles, but does not unpickle: Exception keeps one argument of two."""

    def __init__(self, what, why):
        super().__init__(f"{what}: {why}")


def fails_on_two(inbox):
    if inbox[0] == 2:
        raise TwoPartError("disk", "full")
    return inbox[0]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_an_error_that_does_not_unpickle_keeps_its_message(worker_type):
    # Before, on processes: "the results of items 2..2 could not be
    # unpickled: TypeError: ... missing 1 required positional argument",
    # and nothing of "disk: full".
    numap = NuMap(worker_type=worker_type, worker_num=2)
    piper = Piper(Worker(fails_on_two), parallel=numap, name="f")
    output = read_all(piper, range(4))
    assert output[:2] == [0, 1] and output[3] == 3
    error = output[2]
    assert isinstance(error, PiperError)
    assert isinstance(error.exception, WorkerError)
    original = error.exception.exception
    assert "disk: full" in str(original)
    # Threads hand the exception itself; processes a stand-in naming it.
    assert type(original) is TwoPartError or "TwoPartError" in str(original)


@pytest.mark.timeout(10)
def test_a_piper_error_pickles_the_error_it_wraps_as_one_that_loads():
    import pickle

    error = pickle.loads(pickle.dumps(PiperError("p", TwoPartError("disk", "full"))))
    assert "TwoPartError: disk: full" in str(error.exception)
    assert str(error) == "p"


@pytest.mark.timeout(60)
def test_one_stream_fanned_out_to_readers_on_another_numap_is_not_refused():
    # The second look found the first version of the check counting one
    # stream read by two Pipers as two streams: a fan-out that runs was
    # refused.
    x = NuMap(worker_type="process", worker_num=2, name="X")
    y = NuMap(worker_type="thread", worker_num=8, name="Y")
    source = Piper(Worker(plus_one), parallel=x, name="source")
    left = Piper(Worker(plus_one), parallel=y, name="left", branch=1)
    right = Piper(Worker(plus_one), parallel=y, name="right", branch=2)
    plumber = Plumber(pipes=[(source, left), (source, right)])
    assert run_to_end(plumber, [range(300)], [left, right]) == [300, 300]


@pytest.mark.timeout(30)
def test_a_name_that_reads_as_an_encoding_stays_a_comment(tmp_path):
    # Python takes "coding: mp4" in the first two lines for the file's
    # encoding: the saved file did not load ("unknown encoding: mp4").
    from papy.core import load_pipeline

    name = "video transcoding: mp4 é"
    plumber = Plumber(pipes=[(Piper(Worker(plus_one), name="pé"),)], name=name)
    plumber.save(tmp_path / "saved.py")
    loaded = load_pipeline(tmp_path / "saved.py")
    assert loaded.name == name
    assert [piper.name for piper in loaded.postorder()] == ["pé"]


@pytest.mark.timeout(30)
def test_nested_errors_pickle_in_time_linear_in_their_depth():
    # The second look found each level checking every level below it
    # again: ten levels took 8 s.
    import pickle
    import time

    error: BaseException = TwoPartError("disk", "full")
    for level in range(10):
        error = PiperError(f"p{level}", WorkerError(f"w{level}", error, "", "f"))
    began = time.perf_counter()
    copy = pickle.loads(pickle.dumps(error))
    assert time.perf_counter() - began < 2
    for _ in range(10):
        copy = copy.exception.exception
    assert "disk: full" in str(copy)


# --- which item failed ------------------------------------------------------------


def inverse_of(inbox):
    return 1 / inbox[0]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", [None, "thread"])
def test_a_failed_item_is_logged_with_its_place(worker_type):
    # Before: "item failed" said what failed, never which item.
    import structlog

    parallel = False if worker_type is None else NuMap(worker_type=worker_type)
    first = Piper(Worker(inverse_of), parallel=parallel, name="inverse")
    second = Piper(Worker(plus_one), name="next")
    plumber = Plumber(pipes=[(first, second)])
    with structlog.testing.capture_logs() as logs:
        plumber.start([[1, 2, 0, 4]])
        plumber.run()
        plumber.wait(20)
        plumber.stop()
    failed = [(e["piper"], e["item_out"]) for e in logs if e["event"] == "item failed"]
    assert failed == [("inverse", 2), ("next", 2)]
