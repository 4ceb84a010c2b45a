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
    plumber = Plumber(pipes=[(piper,)])
    plumber.start([range(ITEMS)])
    output = []
    try:
        while True:
            try:
                output.append(piper.next())
            except StopIteration:
                return output
    finally:
        plumber.stop()


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


def read_all(piper, source):
    """The output of ``piper`` alone in a Plumber over ``source``, with
    ``wait()``'s outcome."""
    plumber = Plumber(pipes=[(piper,)])
    plumber.start([source])
    output = []
    try:
        while True:
            try:
                output.append(piper.next())
            except StopIteration:
                break
    finally:
        plumber.stop()
    return output


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
