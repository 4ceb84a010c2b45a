"""Regressions found by review 16 of papy.core: debug=True failures that
hung or were lost, timeouts charged to the wrong Piper, NuMap buffers too
small for their tasks, and error messages that did not say what was wrong.
Real NuMaps (thread and process workers) throughout."""

import pytest
from core_functions import fail_on, first, sleepy
from numap import NuMap
from papy.core import Dagger, DaggerError, Piper, PiperError, Plumber, Worker
from pipeline_threads import left_threads, stop_within


def fails_on_three():
    return Worker(fail_on, (), {"bad": (3,)})


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_debug_output_beside_another_output_on_one_numap_fails_the_run(
    worker_type,
):
    # Before: the failing output's puller quit, its NuMap task filled the
    # shared buffer, the other output starved, and wait() only timed out.
    numap = NuMap(worker_type=worker_type, worker_num=2, buffer=8)
    source = Piper(first, parallel=numap, name="source")
    failing = Piper(fails_on_three(), parallel=numap, debug=True, name="failing")
    healthy = Piper(first, parallel=numap, name="healthy")
    plumber = Plumber(pipes=[(source, failing), (source, healthy)])
    plumber.start([range(1000)])
    plumber.run()
    with pytest.raises(PiperError, match="bad item 3"):
        try:
            plumber.wait(20)
        except RuntimeError as error:
            assert "run failed" in str(error)
            raise error.__cause__ from None
    counters = plumber.stats["pipers"]
    # Items 0 to 3: the raised error counts out, as an error.
    assert counters[failing]["items_out"] == 4
    assert counters[failing]["errors"] == 1
    assert stop_within(plumber, 30)
    assert left_threads() == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_linear_debug_piper_read_by_a_numap_feeder_fails_the_run(worker_type):
    # Before: the NuMap's feeder turned the raise into an ordinary item
    # error, wait() returned normally, the later items were lost and the
    # NuMap Piper counted 4 items out for 3 in.
    numap = NuMap(worker_type=worker_type, worker_num=2)
    raising = Piper(fails_on_three(), debug=True, name="raising")
    parallel = Piper(first, parallel=numap, name="parallel")
    plumber = Plumber(pipes=[(raising, parallel)])
    plumber.start([range(10)])
    plumber.run()
    with pytest.raises(RuntimeError, match="run failed") as failed:
        plumber.wait(20)
    cause = failed.value.__cause__
    assert isinstance(cause, PiperError)
    assert "Piper 'raising'" in str(cause) and "bad item 3" in str(cause)
    counters = plumber.stats["pipers"]
    assert counters[raising]["errors"] == 1
    assert counters[parallel]["items_out"] == 4  # the raised item 3 too
    assert counters[parallel]["items_out"] <= counters[parallel]["items_in"]
    assert stop_within(plumber, 30)
    assert left_threads() == []


@pytest.mark.timeout(10)
def test_downstream_of_a_debug_piper_reads_on_after_the_raise():
    # Before: the raise ended the downstream Piper's stream (StopIteration).
    raising = Piper(fails_on_three(), debug=True, name="raising")
    downstream = Piper(first, name="downstream")
    raising.connect([range(6)])
    downstream.connect([raising])
    raising.start()
    downstream.start()
    assert [downstream.next() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(PiperError, match="bad item 3"):
        downstream.next()
    assert list(downstream) == [4, 5]


@pytest.mark.timeout(60)
def test_timeouts_of_a_piper_on_its_upstream_numap_are_its_own():
    # Before: the Piper was fused into its upstream's NuMap task and its
    # timeouts were counted (and logged) as errors of the upstream Piper.
    numap = NuMap(worker_type="thread", worker_num=2, skip=True)
    slow = Piper(Worker(sleepy, (), {"slow": (2,), "seconds": 1.0}), parallel=numap)
    timed = Piper(first, parallel=numap, timeout=0.3, name="timed")
    plumber = Plumber(pipes=[(slow, timed)])
    plumber.start([range(6)])
    assert timed._chained_from is None
    results = list(timed)
    counters = plumber.stats["pipers"]
    plumber.stop()
    timeouts = [r for r in results if isinstance(r, PiperError)]
    assert timeouts and all(isinstance(r.exception, TimeoutError) for r in timeouts)
    assert counters[slow]["errors"] == 0
    assert counters[timed]["errors"] == len(timeouts)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("worker_type", "buffer", "tasks"), [("thread", 2, 3), ("process", 4, 3)]
)
def test_a_numap_buffer_below_stride_times_tasks_is_refused(worker_type, buffer, tasks):
    # Before: the pipeline started and stalled with 0 items out.
    numap = NuMap(worker_type=worker_type, worker_num=2, buffer=buffer, name="small")
    top = Piper(first, parallel=numap, name="top")
    left = Piper(first, parallel=numap, name="left", branch=1)
    right = Piper(first, parallel=numap, name="right", branch=2)
    plumber = Plumber(pipes=[(top, left), (top, right)])
    with pytest.raises(DaggerError) as refused:
        plumber.start([range(50)])
    message = str(refused.value)
    needed = 2 * tasks
    assert "'small'" in message and f"buffer={buffer}" in message
    assert f"stride (2) x the {tasks} tasks" in message
    assert f"NuMap(buffer={needed})" in message
    assert plumber.state == "new"
    assert left_threads() == []
    # The buffer the message asks for runs.
    numap = NuMap(worker_type=worker_type, worker_num=2, buffer=needed)
    pipers = [Piper(first, parallel=numap, name=n, branch=n) for n in "tlr"]
    plumber = Plumber(pipes=[(pipers[0], pipers[1]), (pipers[0], pipers[2])])
    plumber.start([range(50)])
    plumber.run()
    plumber.wait(30)
    assert plumber.stats["pipers"][pipers[2]]["items_out"] == 50
    plumber.stop()
    # Natively chained tasks take no turn of the feeder: buffer = stride
    # is enough for a chain of any length.
    numap = NuMap(worker_type=worker_type, worker_num=2, buffer=2)
    pipers = [Piper(first, parallel=numap, name=name) for name in "abc"]
    plumber = Plumber(pipes=[tuple(pipers)])
    plumber.start([range(50)])
    plumber.run()
    plumber.wait(30)
    assert plumber.stats["pipers"][pipers[2]]["items_out"] == 50
    plumber.stop()


@pytest.mark.timeout(10)
def test_add_piper_of_an_unknown_id_says_so():
    dagger = Dagger(pipers=[Piper(first)])
    with pytest.raises(DaggerError, match="no Piper of this Dagger has the id 12345"):
        dagger.add_piper(12345, create=True)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("datas", "expected"),
    [
        (iter([[1, 2]]), r"'datas' must be a sequence"),
        ([5], r"datas\[0\], the input of Piper 'f', is 5, which is not iterable"),
    ],
)
def test_plumber_start_refuses_bad_datas_naming_them(datas, expected):
    plumber = Plumber(pipes=[(Piper(first, name="f"),)])
    with pytest.raises(DaggerError, match=expected):
        plumber.start(datas)
    assert plumber.state == "new"
    plumber.start([[1, 2]])
    plumber.run()
    plumber.wait(5)
    plumber.stop()


@pytest.mark.timeout(10)
def test_piper_connect_names_what_it_was_given():
    with pytest.raises(PiperError, match="got <generator object"):
        Piper(first).connect(x for x in [[1, 2]])
    with pytest.raises(PiperError, match=r"inbox\[1\] = 5, which is neither"):
        Piper(first).connect([[1], 5])


@pytest.mark.timeout(10)
def test_piper_refuses_a_bool_timeout_and_non_sequence_stages():
    with pytest.raises(
        PiperError, match="'timeout' must be None or a number of seconds"
    ):
        Piper(first, timeout=True)
    piper = Piper(first)
    piper.connect([range(2)])
    with pytest.raises(PiperError, match=r"sequence of stages \(0, 1, 2\)"):
        piper.start(0)
    piper.start((0,))
    assert list(piper) == [0, 1]


class Label:
    """A branch label that is no Python literal."""


@pytest.mark.timeout(10)
def test_save_names_the_piper_argument_it_cannot_write(tmp_path):
    plumber = Plumber(pipes=[(Piper(first, name="labelled", branch=Label()),)])
    with pytest.raises(RuntimeError, match="Piper 'labelled': argument 'branch'"):
        plumber.save(tmp_path / "pipeline.py")
