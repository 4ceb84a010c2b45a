"""Parallel Pipers on real thread and process NuMaps."""

import threading
import time

import psutil
import pytest
from core_functions import both, exit_on, fail_on, first, pair, sleepy
from core_reference import ERR, normalize
from numap import NuMap
from papy.core import Dagger, Piper, PiperError, Plumber, Worker, WorkerError


def children():
    """This process's descendants, but for the resource tracker that
    multiprocess starts once per interpreter (the first time a spawn
    context is used, e.g. by an earlier test) and keeps until exit."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" in " ".join(child.cmdline()):
                continue
        except psutil.ZombieProcess:
            pass  # exited but not reaped: still left behind
        except psutil.NoSuchProcess:
            continue  # gone meanwhile
        found.append(child)
    return found


def wait_no_children(seconds=10.0):
    deadline = time.monotonic() + seconds
    while children() and time.monotonic() < deadline:
        time.sleep(0.05)
    return children()


def run_plumber(plumber, datas):
    plumber.start(datas)
    plumber.run()
    plumber.wait(30)
    stats = plumber.stats
    plumber.stop()
    return stats


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_errors_propagate_through_levels_and_branches(worker_type):
    numap = NuMap(worker_type=worker_type, worker_num=2, stride=2)
    a = Piper(Worker(fail_on, (), {"bad": (3,)}), parallel=numap, name="a")
    b = Piper(Worker(fail_on, (), {"bad": (5,)}), parallel=numap, name="b", branch=1)
    c = Piper(first, parallel=numap, name="c", branch=2)
    d = Piper(both, parallel=numap, name="d", track=True)
    plumber = Plumber(pipes=[(a, b, d), (a, c, d)])
    stats = run_plumber(plumber, [range(8)])
    results = stats["pipers_tracked"][d]
    assert sorted(results) == list(range(8))
    for index, result in results.items():
        if index in (3, 5):
            # the Worker of d got an error in its inbox and passed it on
            assert isinstance(result, WorkerError)
            assert isinstance(result.exception, PiperError)
        else:
            assert result == (index, index)
    counts = stats["pipers"]
    assert counts[a]["errors"] == 1
    assert counts[b]["errors"] == 2  # its own (5) and a's (3) passed on
    assert counts[c]["errors"] == 1
    assert counts[d]["errors"] == 2 and counts[d]["items_out"] == 8
    assert wait_no_children() == []


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_sys_exit_in_a_function_fails_that_item_only(worker_type):
    numap = NuMap(worker_type=worker_type, worker_num=2)
    a = Piper(Worker(exit_on, (), {"bad": (2,)}), parallel=numap, name="a")
    b = Piper(first, parallel=numap, name="b", track=True)
    stats = run_plumber(Plumber(pipes=[(a, b)]), [range(5)])
    results = stats["pipers_tracked"][b]
    assert [results[i] for i in (0, 1, 3, 4)] == [0, 1, 3, 4]
    # b's Worker got a's error in its inbox and passed it on
    assert isinstance(results[2], WorkerError)
    assert "raised SystemExit(3)" in str(results[2].exception)
    assert stats["pipers"][a]["errors"] == 1
    assert wait_no_children() == []


@pytest.mark.timeout(60)
def test_error_object_reaches_the_output_unchanged():
    numap = NuMap(worker_type="process", worker_num=2)
    a = Piper(Worker(fail_on, (), {"bad": (1,)}), parallel=numap, name="a")
    b = Piper(first, parallel=numap, name="b")
    c = Piper(first, name="c")
    dagger = Dagger(pipes=[(a, b, c)])
    dagger.connect([range(3)])
    dagger.start()
    out = list(c)
    dagger.stop()
    dagger.disconnect()
    assert [normalize(x) for x in out] == [0, ERR, 2]
    error = out[1]
    assert "Piper 'a'" in str(error)
    assert isinstance(error.exception.exception, ValueError)
    assert "bad item 1" in error.exception.traceback


@pytest.mark.timeout(30)
def test_timeout_returns_piper_error_in_the_slot_with_skip():
    # Results are ordered: the items after the late one wait for it to
    # arrive (and be dropped), so the timeout must outlast its lateness.
    numap = NuMap(worker_type="thread", worker_num=2, stride=1, buffer=4, skip=True)
    worker = Worker(sleepy, (), {"slow": (2,), "seconds": 0.5})
    piper = Piper(worker, parallel=numap, timeout=0.4, name="slow")
    piper.connect([range(5)])
    piper.start()
    out = list(piper)
    piper.stop()
    piper.disconnect()
    assert [normalize(x) for x in out] == [0, 1, ERR, 3, 4]
    assert isinstance(out[2].exception, TimeoutError)


@pytest.mark.timeout(30)
def test_debug_parallel_piper_raises():
    numap = NuMap(worker_type="thread", worker_num=1)
    piper = Piper(Worker(fail_on, (), {"bad": (1,)}), parallel=numap, debug=True)
    piper.connect([range(3)])
    piper.start()
    assert piper.next() == 0
    with pytest.raises(PiperError):
        piper.next()
    piper.stop()


@pytest.mark.timeout(60)
def test_shared_and_own_numaps_give_the_same_results():
    def build(numaps):
        a = Piper(first, parallel=numaps[0], name="a")
        b = Piper(pair, parallel=numaps[1], produce=2, name="b")
        c = Piper(both, parallel=numaps[2], consume=2, name="c", track=True)
        return Plumber(pipes=[(a, b, c)]), c

    # produce/consume undo each other when the strides are equal (DESIGN.md)
    shared = NuMap(worker_type="process", worker_num=2, stride=3)
    plumber, c = build([shared] * 3)
    shared_results = run_plumber(plumber, [range(50)])["pipers_tracked"][c]
    own = [NuMap(worker_type="process", worker_num=n, stride=3) for n in (1, 2, 1)]
    plumber, c = build(own)
    own_results = run_plumber(plumber, [range(50)])["pipers_tracked"][c]
    expected = {i: ((i, -i),) for i in range(50)}
    assert shared_results == expected
    assert own_results == expected
    assert wait_no_children() == []


@pytest.mark.timeout(60)
def test_pause_resume_on_process_numap_keeps_every_item_once():
    seen = []

    def record(inbox):
        seen.append(inbox[0])
        return inbox[0]

    numap = NuMap(worker_type="process", worker_num=2, stride=4)
    a = Piper(first, parallel=numap, name="a")
    b = Piper(first, parallel=numap, name="b", track=True)
    sink = Piper(record, name="sink")
    plumber = Plumber(pipes=[(a, b, sink)])
    plumber.start([range(3000)])
    plumber.run()
    for _ in range(4):
        time.sleep(0.02)
        plumber.pause()
        assert plumber.state in ("paused", "finished")
        plumber.run()
    plumber.wait(30)
    stats = plumber.stats
    plumber.stop()
    assert seen == list(range(3000))
    assert stats["pipers_tracked"][b] == {i: i for i in range(3000)}
    assert stats["pipers"][sink]["items_out"] == 3000


@pytest.mark.timeout(60)
@pytest.mark.parametrize("pause_first", [True, False])
def test_stop_mid_stream_returns_and_leaves_no_process(pause_first):
    def endless():
        i = 0
        while True:
            yield i
            i += 1

    seen = []
    numap = NuMap(worker_type="process", worker_num=2)
    a = Piper(first, parallel=numap, name="a")
    b = Piper(lambda inbox: seen.append(inbox[0]), name="sink")
    plumber = Plumber(pipes=[(a, b)])
    plumber.start([endless()])
    assert len(children()) >= 2
    plumber.run()
    while len(seen) < 200:
        time.sleep(0.01)
    if pause_first:
        plumber.pause()
    plumber.stop()
    assert plumber.state == "stopped"
    assert seen == list(range(len(seen)))
    assert wait_no_children() == []


@pytest.mark.timeout(60)
def test_piper_state_rules_on_a_numap():
    numap = NuMap(worker_type="thread", worker_num=2)
    a = Piper(first, parallel=numap, name="a")
    b = Piper(first, parallel=numap, name="b")
    a.connect([range(4)])
    b.connect([a])
    with pytest.raises(PiperError, match="not the last"):
        a.disconnect()
    a.start(stages=(0, 1))
    b.start(stages=(0, 1))
    a.start(stages=(2,))
    b.start(stages=(2,))
    with pytest.raises(PiperError, match="already started"):
        b.start(stages=(2,))
    assert list(b) == [0, 1, 2, 3]
    with pytest.raises(PiperError, match="stop"):
        b.disconnect()
    b.stop(ends=[1])
    a.stop(ends=[1])
    b.disconnect()
    a.disconnect()
    assert numap._tasks == []


@pytest.mark.timeout(60)
def test_pipeline_runs_twice_on_the_same_numap():
    numap = NuMap(worker_type="process", worker_num=2)
    a = Piper(first, parallel=numap, name="a", track=True)
    plumber = Plumber(pipers=[a])
    first_run = run_plumber(plumber, [range(10)])["pipers_tracked"][a]
    second_run = run_plumber(plumber, [range(10, 15)])["pipers_tracked"][a]
    assert first_run == {i: i for i in range(10)}
    assert second_run == {i: i + 10 for i in range(5)}
    assert wait_no_children() == []


@pytest.mark.timeout(30)
def test_wait_timeout_with_a_slow_parallel_piper():
    numap = NuMap(worker_type="thread", worker_num=1)
    worker = Worker(sleepy, (), {"slow": (0,), "seconds": 1.0})
    plumber = Plumber(pipers=[Piper(worker, parallel=numap)])
    plumber.start([range(2)])
    plumber.run()
    with pytest.raises(RuntimeError):
        plumber.wait(0.1)
    plumber.wait(10)
    plumber.stop()
    threading.enumerate()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_native_chain_on_one_numap_keeps_errors_and_counters(worker_type):
    numap = NuMap(worker_type=worker_type, worker_num=2, stride=4)
    a = Piper(Worker(fail_on, (), {"bad": (2,)}), parallel=numap, name="a")
    b = Piper(Worker(fail_on, (), {"bad": (5,)}), parallel=numap, name="b")
    c = Piper(first, parallel=numap, name="c", track=True)
    plumber = Plumber(pipes=[(a, b, c)])
    plumber.start([range(20)])
    assert b._chained_from is a and c._chained_from is b  # read inside the NuMap
    plumber.run()
    plumber.wait(30)
    stats = plumber.stats
    plumber.stop()
    tracked = stats["pipers_tracked"][c]
    assert sorted(tracked) == list(range(20))
    for index, result in tracked.items():
        if index in (2, 5):
            assert isinstance(result, WorkerError)
            assert isinstance(result.exception, PiperError)
        else:
            assert result == index
    counts = stats["pipers"]
    for piper in (a, b, c):
        assert counts[piper]["items_in"] == 20
        assert counts[piper]["items_out"] == 20
    assert counts[a]["errors"] == 1
    assert counts[b]["errors"] == 2
    assert counts[c]["errors"] == 2
    assert wait_no_children() == []


@pytest.mark.timeout(60)
def test_no_native_chain_where_a_reader_goes_through_the_parent():
    numap = NuMap(worker_type="thread", worker_num=2, stride=3)
    a = Piper(first, parallel=numap, name="a")
    b = Piper(pair, parallel=numap, produce=2, name="b")
    c = Piper(both, parallel=numap, consume=2, name="c", track=True)
    plumber = Plumber(pipes=[(a, b, c)])
    stats = run_plumber(plumber, [range(7)])
    assert stats["pipers_tracked"][c] == {i: ((i, -i),) for i in range(7)}
