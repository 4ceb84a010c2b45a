"""Shutdown leaves nothing behind: stop(), Ctrl-C, exit without stop()."""

import itertools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numap
import psutil
import pytest
from numap import NuMap, NuMapError
from polling import wait_until
from processes import alive


def identity(x):
    return x


# The programs a test started: reaped after it, passed or failed, so that
# one left running cannot show up as an orphan in the next test.
_programs: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def reap_programs():
    yield
    while _programs:
        program = _programs.pop()
        program.kill()
        program.wait()


def start_program(code):
    program = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    _programs.append(program)
    return program


def numap_threads():
    return [t for t in threading.enumerate() if t.name.startswith("numap")]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_stop_joins_every_thread_and_process(worker_type):
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    numap = NuMap(identity, itertools.count(), worker_type=worker_type, worker_num=3)
    numap.start()
    assert [numap.next() for _ in range(5)] == list(range(5))
    workers = {
        child.pid for child in psutil.Process().children(recursive=True)
    } - before
    assert len(workers) == (3 if worker_type == "process" else 0)
    assert numap_threads()
    numap.stop(ends=[0])
    assert numap_threads() == []
    assert alive(workers) == []
    assert not numap._started.is_set()
    with pytest.raises(StopIteration):
        numap.next()


def worker_pids():
    return {child.pid for child in psutil.Process().children(recursive=True)}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_map_read_to_its_end_stops_itself(worker_type):
    # `list(NuMap(f, xs))` in a loop used to keep every map's workers (and
    # its receiver thread) until the program exited. (Compared with what
    # other tests may have left running.)
    pids_before, threads_before = worker_pids(), set(numap_threads())
    for _ in range(3):
        results = list(NuMap(identity, range(50), worker_type=worker_type))
        assert results == list(range(50))
        assert set(numap_threads()) <= threads_before
        assert worker_pids() <= pids_before


@pytest.mark.timeout(60)
def test_a_chain_read_to_its_end_stops_itself_and_stays_ended():
    pids_before, threads_before = worker_pids(), set(numap_threads())
    numap = NuMap(worker_num=2)
    first = numap.add_task(identity, range(20))
    last = numap.add_task(abs, first)
    assert list(last) == list(range(20))
    assert set(numap_threads()) <= threads_before
    assert worker_pids() <= pids_before
    with pytest.raises(StopIteration):
        next(last)
    numap.stop()  # allowed, and does nothing more


def inc(x):
    return x + 1


def double(x):
    return x * 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_map_read_by_another_map_on_the_main_thread_stops_too(worker_type):
    # Read inside the downstream map's own reading (nested on the main
    # thread), the upstream map's end used to be skipped.
    upstream = NuMap(worker_num=1, worker_type=worker_type)
    downstream = NuMap(worker_num=1, worker_type=worker_type)
    results = downstream.add_task(double, upstream.add_task(inc, range(30)))
    assert list(results) == [2 * (x + 1) for x in range(30)]
    assert upstream._stopped and downstream._stopped


def slow_on_three(x):
    if x == 3:
        time.sleep(3)
    return x


@pytest.mark.timeout(60)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_the_end_does_not_wait_for_a_result_given_up_with_skip(worker_type):
    numap = NuMap(
        slow_on_three, range(4), worker_type=worker_type, worker_num=2, skip=True
    )
    got = []
    while True:
        try:
            got.append(numap.next(timeout=0.5))
        except TimeoutError:
            continue
        except StopIteration:
            break
    assert got == [0, 1, 2]
    # Item 3 is still being computed: the map has not stopped itself,
    # which would have waited for it; stop() decides.
    assert not numap._stopped
    numap.stop()


def read_task(numap, task, into):
    thread = threading.Thread(target=lambda: into.extend(numap.get_task(task)))
    thread.start()
    return thread


def started_map_of_two_tasks(worker_type):
    """A started map of two tasks of 50 items each, for two readers."""
    two_tasks = NuMap(worker_type=worker_type, worker_num=2)
    two_tasks.add_task(identity, range(50))
    two_tasks.add_task(identity, range(50))
    two_tasks.start()
    return two_tasks


@pytest.mark.timeout(120)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_stop_and_start_while_another_thread_ends_the_map(worker_type):
    # A reader thread's last next() stops the map while the main thread
    # calls stop() and start(): stop() must wait for that stop to end, or
    # it went on into the second run and cut it short (2 to 5 rounds in 40
    # on the code before).
    for _ in range(20):
        numap = started_map_of_two_tasks(worker_type)
        first_of_1: list = []
        first_reader = read_task(numap, 1, first_of_1)
        assert list(numap.get_task(0)) == list(range(50))
        while len(first_of_1) < 50:
            time.sleep(0.0005)
        numap.stop()  # the reader's last next() may be stopping it now
        numap.start()
        second_of_1: list = []
        second_reader = read_task(numap, 1, second_of_1)
        assert list(numap.get_task(0)) == list(range(50))
        second_reader.join(10)
        assert second_of_1 == list(range(50))
        first_reader.join(10)
        assert not first_reader.is_alive()
        numap.stop()


@pytest.mark.timeout(300)
def test_a_map_that_ends_itself_while_a_reader_receives_stops_without_waiting(
    monkeypatch,
):
    # Two readers end a map of process workers: the last next() stops it.
    # The other reader, receiving from the pipes, could see the workers end
    # and drain the wake meant for the background receiver, which then
    # waited for it until close() gave up: that stop took
    # GRACEFUL_CLOSE_SECONDS (here 20 s) in about 1 round in 60.
    monkeypatch.setattr(numap._pool, "GRACEFUL_CLOSE_SECONDS", 20.0)
    for round_number in range(150):
        started = time.monotonic()
        ended_map = started_map_of_two_tasks("process")
        of_1: list = []
        reader = read_task(ended_map, 1, of_1)
        assert list(ended_map.get_task(0)) == list(range(50))
        reader.join(30)
        assert of_1 == list(range(50))
        ended_map.stop()
        seconds = time.monotonic() - started
        assert seconds < 10, f"round {round_number} took {seconds:.1f} s"


@pytest.mark.timeout(60)
def test_a_map_not_read_to_its_end_keeps_its_workers_until_stop():
    pids_before = worker_pids()
    numap = NuMap(identity, range(50), worker_num=2)
    assert next(numap) == 0
    time.sleep(0.2)
    assert len(worker_pids() - pids_before) == 2
    numap.stop()
    assert wait_until(lambda: worker_pids() <= pids_before)


@pytest.mark.timeout(30)
def test_forced_stop_returns_at_once_and_stop_finishes_later():
    numap = NuMap(identity, itertools.count(), worker_type="thread", worker_num=2)
    numap.start()
    numap.next()
    numap.stop(forced=True)
    numap._stop()
    assert numap_threads() == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_after_a_forced_stop_the_pending_results_come_then_the_end(worker_type):
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    numap = NuMap(
        identity, itertools.count(), worker_type=worker_type, worker_num=2, stride=4
    )
    numap.start()
    taken = [numap.next(), numap.next()]
    numap.stop(forced=True)
    taken += list(numap)  # what had entered the map, then StopIteration
    assert taken == list(range(len(taken))) and len(taken) >= 2
    assert len(taken) <= 2 + numap.buffer
    with pytest.raises(NuMapError, match=r"call stop\(\) again to finish it"):
        numap.pop_task(True)
    numap.stop()  # a second stop() finishes what the forced one began
    assert numap_threads() == []
    assert alive({c.pid for c in psutil.Process().children()} - before) == []
    numap.pop_task(True)


@pytest.mark.timeout(30)
def test_stopped_numap_can_start_again():
    numap = NuMap(worker_type="process", worker_num=2)
    numap.add_task(identity, range(3))
    numap.start()
    assert list(numap) == [0, 1, 2]
    numap.stop()
    numap.pop_task(True)
    results = numap.add_task(identity, range(5, 8))
    numap.start()
    assert list(results) == [5, 6, 7]
    numap.stop()


@pytest.mark.timeout(30)
def test_context_manager_stops():
    with NuMap(identity, range(4), worker_type="thread", worker_num=2) as numap:
        assert list(numap) == [0, 1, 2, 3]
    assert numap_threads() == []


SCRIPT_HEAD = """
import itertools, os, sys, time, faulthandler
faulthandler.dump_traceback_later(10, exit=True)
import psutil
import numap
from numap import NuMap, NuMapError

def slow(x):
    time.sleep(0.01)
    return x

numap = NuMap(slow, itertools.count(), worker_num=2)
numap.start()
first = [numap.next() for _ in range(3)]
pids = [c.pid for c in psutil.Process().children(recursive=True)]
print(" ".join(map(str, pids)), flush=True)
"""


def run_script(body):
    return start_program(textwrap.dedent(SCRIPT_HEAD) + textwrap.dedent(body))


@pytest.mark.timeout(60)
def test_ctrl_c_while_iterating_leaves_no_process_behind():
    process = run_script("for result in numap:\n    pass\n")
    pids = [int(pid) for pid in process.stdout.readline().split()]
    assert len(pids) == 2 and alive(pids) == pids
    time.sleep(0.2)  # well inside the loop
    os.kill(process.pid, signal.SIGINT)
    process.wait(timeout=30)
    stderr = process.stderr.read()
    assert "KeyboardInterrupt" in stderr
    assert wait_until(lambda: alive(pids) == []), f"orphans: {alive(pids)}"
    process.stdout.close()
    process.stderr.close()


@pytest.mark.timeout(60)
def test_exit_without_stop_leaves_no_process_behind():
    process = run_script("print('done', first, flush=True)\n")
    pids = [int(pid) for pid in process.stdout.readline().split()]
    assert len(pids) == 2
    assert process.stdout.readline().strip() == "done [0, 1, 2]"
    code = process.wait(timeout=30)
    assert code == 0, process.stderr.read()
    assert wait_until(lambda: alive(pids) == []), f"orphans: {alive(pids)}"
    process.stdout.close()
    process.stderr.close()


@pytest.mark.timeout(60)
def test_parent_killed_leaves_no_process_behind():
    # SIGKILL runs no exit handler: the workers must notice on their own.
    process = run_script("time.sleep(60)\n")
    pids = [int(pid) for pid in process.stdout.readline().split()]
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert wait_until(lambda: alive(pids) == []), f"orphans: {alive(pids)}"
    process.stdout.close()
    process.stderr.close()


@pytest.mark.timeout(60)
def test_parent_killed_mid_item_workers_end_quietly():
    # The workers finish their item, find the pipe to the parent broken and
    # end, with nothing on the terminal (stderr is shared with the parent).
    code = textwrap.dedent(
        """
        import os, signal, time
        from numap import NuMap

        def slow(x):
            time.sleep(0.5)
            return x

        numap = NuMap(slow, range(100), worker_num=2)
        numap.start()
        print(numap.next(), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    process = start_program(code)
    # communicate() reads to the end: until the workers, which hold the
    # same pipes, have ended too.
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    assert stdout.split() == ["0"]
    assert stderr == ""


BUSY_WORKERS = """
import os, time
import psutil
from numap import NuMap

numap = NuMap(time.sleep, [60] * 8, worker_num=4, buffer=8)
"""


def run_busy(body):
    """Run BUSY_WORKERS then ``body``: four workers each busy with a 60 s
    item. Returns (seconds from the workers' pids line to the exit, the
    pids, the completed process's stderr)."""
    code = textwrap.dedent(BUSY_WORKERS) + textwrap.dedent(body)
    process = start_program(code)
    pids = [int(pid) for pid in process.stdout.readline().split()]
    started = time.monotonic()
    _, stderr = process.communicate(timeout=50)
    return time.monotonic() - started, pids, stderr


@pytest.mark.timeout(60)
def test_exit_without_stop_ends_busy_workers_together():
    # Each busy worker used to get 2 s to stop on its own, one after the
    # other: 8 s and more for four. The bound is far above what it takes.
    seconds, pids, stderr = run_busy(
        """
        numap.start()
        time.sleep(0.5)  # every worker holds an item
        print(*[c.pid for c in psutil.Process().children()], flush=True)
        """
    )
    assert len(pids) == 4, stderr
    assert seconds < 6, f"exit took {seconds:.1f} s"
    assert wait_until(lambda: alive(pids) == []), f"orphans: {alive(pids)}"


@pytest.mark.timeout(60)
def test_leaving_a_with_block_by_an_exception_does_not_wait_for_the_items():
    seconds, pids, stderr = run_busy(
        """
        try:
            with numap:
                time.sleep(0.5)
                print(*[c.pid for c in psutil.Process().children()], flush=True)
                raise ValueError("leaving")
        except ValueError:
            print("left", flush=True)
        """
    )
    assert len(pids) == 4, stderr
    assert seconds < 6, f"leaving took {seconds:.1f} s"
    assert alive(pids) == []


class Recorder:
    """A slow function that records when it started each item."""

    def __init__(self):
        self.started = []

    def __call__(self, item):
        self.started.append(time.monotonic())
        time.sleep(0.05)
        return item


@pytest.mark.timeout(60)
def test_leaving_a_with_block_by_an_exception_drops_the_items_queued_for_threads():
    # Threads cannot be terminated; the items queued for them are dropped,
    # so each thread ends after the item it runs.
    threads_before = set(numap_threads())
    record = Recorder()
    numap = NuMap(record, range(40), worker_type="thread", worker_num=2, buffer=40)
    with pytest.raises(ValueError, match="leaving"), numap:
        assert numap.next(timeout=10) == 0
        raise ValueError("leaving")
    left = time.monotonic()
    assert wait_until(lambda: set(numap_threads()) <= threads_before)
    assert all(started < left for started in record.started)
    assert len(record.started) < 40


generation = [1]


def result_of_generation(item):
    run = generation[0]
    if item == 1:
        # The second run's item 1 comes after the first run's.
        time.sleep(0.5 if run == 1 else 1.0)
    return (run, item)


@pytest.mark.timeout(60)
def test_a_thread_still_running_an_item_of_a_stopped_run_delivers_nothing():
    # The with block is left while a thread runs item 1 of the first run;
    # the map is started again before that item ends. Its result must not
    # land among the second run's.
    generation[0] = 1
    numap = NuMap(
        result_of_generation, range(6), worker_type="thread", worker_num=1, buffer=12
    )
    with pytest.raises(ValueError, match="leaving"), numap:
        assert numap.next(timeout=10) == (1, 0)
        time.sleep(0.05)  # item 1 runs now
        raise ValueError("leaving")
    generation[0] = 2
    numap.start()
    try:
        second_run = [numap.next(timeout=10) for _ in range(6)]
        with pytest.raises(StopIteration):
            numap.next(timeout=10)
    finally:
        numap.stop()
    assert second_run == [(2, item) for item in range(6)]


def input_stuck_after(count, seconds, stuck):
    yield from range(count)
    stuck.set()
    time.sleep(seconds)  # the feeder is stuck here
    yield count


@pytest.mark.timeout(60)
def test_stop_with_a_feeder_stuck_in_the_input_drops_the_items_queued_for_threads(
    monkeypatch,
):
    # As stop()'s docstring says: a feeder still busy after the grace time
    # (shortened here) makes the stop forced, and the items queued for
    # worker threads are dropped instead of run.
    monkeypatch.setattr(numap._pool, "GRACEFUL_CLOSE_SECONDS", 1.0)
    record = Recorder()
    feeder_stuck = threading.Event()
    stuck = NuMap(
        record,
        input_stuck_after(60, 5, feeder_stuck),
        worker_type="thread",
        worker_num=1,
        buffer=60,
    )
    assert stuck.next(timeout=10) == 0  # a free slot: the feeder pulls item 60
    assert feeder_stuck.wait(10)
    stuck.stop()
    left = time.monotonic()
    # At 0.05 s an item, the 59 items queued take ~3 s: the thread runs
    # some 20 of them in the grace time, and none once stop() returned.
    assert len(record.started) < 60
    time.sleep(0.2)
    assert all(started < left for started in record.started)
    # The feeder ends once the input gives its next item (5 s in): not to
    # be taken for a thread of the tests that follow.
    assert wait_until(lambda: numap_threads() == [], seconds=10)


def sleep_for_ever(item):
    while True:
        time.sleep(1)


@pytest.mark.timeout(60)
def test_stop_ends_a_feeder_stuck_sending_to_a_stuck_worker(monkeypatch):
    # A worker stuck in its function and items bigger than its pipe: the
    # feeder blocks in its send, and stop() waited for the feeder forever.
    # Now it waits the grace time (shortened here), then ends the workers,
    # which breaks the pipe and frees the feeder.
    monkeypatch.setattr(numap._pool, "GRACEFUL_CLOSE_SECONDS", 1.0)
    big_items = (b"x" * 8 * 2**20 for _ in range(20))
    stuck = NuMap(sleep_for_ever, big_items, worker_num=1, stride=1, buffer=6)
    stuck.start()
    assert wait_until(lambda: stuck._feed_role.locked())  # the feeder sends
    time.sleep(0.5)
    stopper = threading.Thread(target=stuck.stop)
    stopper.start()
    stopper.join(30)
    assert not stopper.is_alive()
    assert numap_threads() == []


def input_stuck_until(gate, count, waiting):
    yield from range(count)
    waiting.set()
    gate.wait(60)  # the feeder is stuck here until the test lets it go
    yield count


@pytest.mark.timeout(60)
def test_stop_does_not_wait_for_a_feeder_stuck_in_the_input(monkeypatch):
    # The feeder cannot be ended while it waits in the input: after the
    # grace time (shortened here to 6 s) the stop ends the workers and
    # returns about a second later, leaving the feeder to end once the
    # input gives its next item (it used to wait the grace time again).
    monkeypatch.setattr(numap._pool, "GRACEFUL_CLOSE_SECONDS", 6.0)
    gate, waiting = threading.Event(), threading.Event()
    stuck = NuMap(double, input_stuck_until(gate, 3, waiting), worker_num=1, buffer=3)
    try:
        assert stuck.next(timeout=10) == 0  # a free slot: the feeder waits in it
        assert waiting.wait(10)
        stopper = threading.Thread(target=stuck.stop)
        stopper.start()
        stopper.join(11)
        assert not stopper.is_alive()
        assert not gate.is_set()
    finally:
        gate.set()
    assert wait_until(lambda: numap_threads() == [])


@pytest.mark.timeout(60)
def test_parent_killed_during_long_items_ends_the_workers_without_the_items():
    # Items of a minute: a worker in the middle of one does not read its
    # pipe, so it notices its parent's death by looking (once a second)
    # and ends, quietly, long before its item would.
    code = textwrap.dedent(
        """
        import os, signal, time
        import psutil
        from numap import NuMap

        def a_minute(x):
            time.sleep(60)
            return x

        numap = NuMap(a_minute, range(8), worker_num=2)
        numap.start()
        while len(psutil.Process().children()) < 2:
            time.sleep(0.05)
        time.sleep(0.5)  # both workers inside an item
        pids = [c.pid for c in psutil.Process().children()]
        print(" ".join(map(str, pids)), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    process = start_program(code)
    stdout, stderr = process.communicate(timeout=40)
    assert process.returncode == -signal.SIGKILL
    pids = [int(pid) for pid in stdout.split()]
    assert len(pids) == 2
    assert wait_until(lambda: alive(pids) == [], seconds=10), alive(pids)
    assert stderr == ""


@pytest.mark.timeout(60)
def test_a_feeder_left_in_its_input_feeds_no_more_and_blocks_a_restart_until_it_ends(
    monkeypatch,
):
    # The stop leaves the feeder waiting in the input. Until that input
    # gives its next item, a new start is refused (the old feeder would
    # feed it); then the old feeder drops that item and ends, and the map
    # starts afresh with its new task only.
    monkeypatch.setattr(numap._pool, "GRACEFUL_CLOSE_SECONDS", 1.0)
    gate, waiting = threading.Event(), threading.Event()
    stuck = NuMap(double, input_stuck_until(gate, 3, waiting), worker_num=1, buffer=3)
    try:
        assert stuck.next(timeout=10) == 0
        assert waiting.wait(10)  # the feeder waits in the input
        stuck.stop()
        with pytest.raises(StopIteration):
            stuck.next(timeout=1)
        stuck.pop_task(1)
        stuck.add_task(double, [10, 20])
        with pytest.raises(NuMapError, match="feeder still waits in its input"):
            stuck.start()
        gate.set()
        assert wait_until(lambda: not stuck._feeder_left.is_alive())
        stuck.start()
        assert list(stuck) == [20, 40]
    finally:
        gate.set()
        stuck.stop()


def stubborn(x):
    """Ignores SIGTERM, then sleeps: only SIGKILL ends its worker."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    time.sleep(60)
    return x


@pytest.mark.timeout(60)
def test_workers_that_ignore_sigterm_are_ended_side_by_side():
    # Regression: each local worker got its grace before SIGTERM and before
    # SIGKILL in turn (about 4 s each), so three took about 12 s.
    numap = NuMap(stubborn, range(3), worker_num=3)
    numap.start()
    pids = [worker.channel.pid for worker in numap._pool._workers]
    time.sleep(1)  # every worker is in its item, SIGTERM ignored
    started = time.monotonic()
    with pytest.raises(RuntimeError), numap:
        raise RuntimeError("leave the with block")
    elapsed = time.monotonic() - started
    assert not alive(pids)
    assert elapsed < 8, f"took {elapsed:.1f} s"
