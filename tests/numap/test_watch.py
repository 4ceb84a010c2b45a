"""Watching a pipe before blocking on it (numap._watch.Watcher), on real pipes.

Whatever the watch does, a wait must return what poll would: ready
descriptors as soon as there are any, nothing once the timeout is up. The
watch itself must stop after a wait it did not catch, so that slow streams
cost no CPU, and resume after a short wait.
"""

import contextlib
import os
import threading
import time

import numap._watch
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numap import NuMapError
from numap._watch import (
    DEFAULT_WATCH_SECONDS,
    WATCH_VARIABLE,
    Watcher,
    _watch_seconds_from,
)
from python_runs import run_python

WATCH = 0.02  # long enough to tell watching from blocking on a busy machine


@pytest.fixture(autouse=True)
def yields_never_contended(monkeypatch):
    # Another job on the machine would make a yield slow and pause the
    # watch, which these tests must see run; the pause has tests of its own.
    monkeypatch.setattr(numap._watch, "CONTENDED_YIELD_SECONDS", 60.0)


@pytest.fixture
def pipe():
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        with contextlib.suppress(OSError):
            os.close(fd)


def watcher_on(read_fd: int, watch_seconds: float = WATCH) -> Watcher:
    return Watcher([read_fd], watch_seconds)


def write_later(write_fd: int, delay: float) -> threading.Thread:
    thread = threading.Thread(
        target=lambda: (time.sleep(delay), os.write(write_fd, b"x"))
    )
    thread.start()
    return thread


def cpu_of_wait(watcher: Watcher, pipe: tuple[int, int], delay: float) -> float:
    """Thread CPU seconds of a wait for a byte written ``delay`` seconds
    after it began; the byte is read again, so the pipe ends empty."""
    read_fd, write_fd = pipe
    writer = write_later(write_fd, delay)
    cpu_before = time.thread_time()
    watcher.wait(5.0)
    cpu = time.thread_time() - cpu_before
    writer.join()
    os.read(read_fd, 1)
    return cpu


def wait_for_data_already_there(watcher: Watcher, pipe: tuple[int, int]) -> None:
    """A wait that finds a byte at once (a short wait); the pipe ends empty."""
    read_fd, write_fd = pipe
    os.write(write_fd, b"x")
    watcher.wait(5.0)
    os.read(read_fd, 1)


@pytest.mark.timeout(10)
def test_data_already_there_is_reported_without_waiting(pipe):
    read_fd, write_fd = pipe
    os.write(write_fd, b"x")
    assert [fd for fd, _ in watcher_on(read_fd).wait(None)] == [read_fd]


@pytest.mark.timeout(10)
def test_zero_timeout_returns_at_once_when_nothing_is_there(pipe):
    read_fd, _ = pipe
    started = time.monotonic()
    assert watcher_on(read_fd).wait(0) == []
    assert time.monotonic() - started < WATCH


@pytest.mark.timeout(10)
def test_a_timeout_is_kept_whether_or_not_the_watch_ran(pipe):
    read_fd, _ = pipe
    watcher = watcher_on(read_fd)
    for _ in range(2):  # the first wait watches, the second does not
        started = time.monotonic()
        assert watcher.wait(0.1) == []
        waited = time.monotonic() - started
        assert 0.1 <= waited < 2.0


@pytest.mark.timeout(10)
def test_a_watch_never_outlasts_the_timeout(pipe):
    read_fd, _ = pipe
    watcher = watcher_on(read_fd, watch_seconds=0.5)
    started = time.monotonic()
    assert watcher.wait(0.01) == []
    assert time.monotonic() - started < 0.25


@pytest.mark.timeout(30)
@given(delay=st.sampled_from([0.0, WATCH / 4, WATCH * 3]), watched=st.booleans())
def test_data_written_while_waiting_ends_the_wait(delay, watched):
    read_fd, write_fd = os.pipe()
    try:
        watcher = watcher_on(read_fd)
        if not watched:
            watcher.wait(0.001 + WATCH)  # a wait the watch missed: no watch next
        writer = write_later(write_fd, delay)
        ready = watcher.wait(5.0)
        writer.join()
        assert [fd for fd, _ in ready] == [read_fd]
    finally:
        os.close(read_fd)
        os.close(write_fd)


@pytest.mark.timeout(10)
def test_the_watch_stops_after_a_long_wait_and_resumes_after_a_short_one(pipe):
    watcher = watcher_on(pipe[0])
    # A long wait: the watch runs out, and the next wait blocks at once,
    # using (almost) no CPU.
    cpu_of_wait(watcher, pipe, WATCH * 5)
    blocked_cpu = cpu_of_wait(watcher, pipe, WATCH * 10)
    assert blocked_cpu < WATCH / 2
    # A short wait (data within the watch time) turns the watch back on,
    # and a watched wait keeps the thread on the CPU.
    cpu_of_wait(watcher, pipe, WATCH / 10)
    watched_cpu = cpu_of_wait(watcher, pipe, WATCH * 10)
    assert watched_cpu > blocked_cpu


@pytest.mark.timeout(10)
def test_the_watch_time_comes_from_the_environment():
    assert _watch_seconds_from({}) == DEFAULT_WATCH_SECONDS == 0.001
    assert _watch_seconds_from({WATCH_VARIABLE: "0"}) == 0
    assert _watch_seconds_from({WATCH_VARIABLE: "0.0005"}) == 0.0005


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", ["abc", "", "-1", "nan", "inf", "0.5"])
def test_a_bad_watch_time_is_refused_naming_the_variable(text):
    with pytest.raises(NuMapError, match=f"{WATCH_VARIABLE}=.*seconds from 0 to"):
        _watch_seconds_from({WATCH_VARIABLE: text})


# Run in a fresh interpreter: the variable is read when numap is imported.
WORKERS_REPORT_THEIR_WATCH = """
import numap._watch
from numap import NuMap

def watch_time(x):
    return (x * 2, numap._watch.WATCH_SECONDS)

with NuMap(watch_time, range(200), worker_num=2) as results:
    pairs = list(results)
assert [x for x, _ in pairs] == [x * 2 for x in range(200)], pairs
print(sorted({seconds for _, seconds in pairs}))
"""


@pytest.mark.timeout(60)
def test_workers_run_with_watching_turned_off():
    env = {**os.environ, WATCH_VARIABLE: "0"}
    done = run_python(WORKERS_REPORT_THEIR_WATCH, timeout=50, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[0.0]"


@pytest.mark.timeout(10)
def test_waits_that_time_out_empty_stop_the_watch(pipe):
    # A consumer polling next(timeout=...) shorter than the watch while
    # nothing comes must not keep a core busy.
    watcher = watcher_on(pipe[0])
    wait_for_data_already_there(watcher, pipe)  # turns the watch on
    wall_before, cpu_before = time.monotonic(), time.thread_time()
    for _ in range(20):
        assert watcher.wait(WATCH / 4) == []
    wall = time.monotonic() - wall_before
    assert time.thread_time() - cpu_before < wall / 2


@pytest.mark.timeout(10)
def test_a_watch_time_of_zero_never_watches(pipe):
    watcher = watcher_on(pipe[0], watch_seconds=0)
    for _ in range(3):
        wait_for_data_already_there(watcher, pipe)  # would turn a watch on
        assert cpu_of_wait(watcher, pipe, WATCH * 5) < WATCH / 2


class SlowYields:
    """Stands in for os.sched_yield on a core shared with a busy process:
    each yield gives the core away for ``seconds`` (counted in ``calls``)
    and, if ``switching``, lets another task run in the yielder's place
    (counted in ``switches``, which stands in for the thread's involuntary
    context switches). A yield that is slow without switching is time the
    virtual CPU lost outside the guest's scheduler."""

    def __init__(self, seconds: float, switching: bool = True) -> None:
        self.seconds = seconds
        self.switching = switching
        self.calls = 0
        self.switches = 0

    def __call__(self) -> None:
        self.calls += 1
        self.switches += self.switching
        time.sleep(self.seconds)


def short_waits(watcher: Watcher, pipe: tuple[int, int], count: int = 3) -> None:
    """Waits that would each watch, were watching not paused."""
    for _ in range(count):
        wait_for_data_already_there(watcher, pipe)  # would turn a watch on
        cpu_of_wait(watcher, pipe, 0.001)  # a short wait: watch again


def slow_yields_in_place(monkeypatch, switching: bool) -> SlowYields:
    monkeypatch.setattr(numap._watch, "CONTENDED_YIELD_SECONDS", 0.0003)
    slow_yields = SlowYields(0.002, switching)
    monkeypatch.setattr(numap._watch, "_yield_cpu", slow_yields)
    monkeypatch.setattr(numap._watch, "_switches_away", lambda: slow_yields.switches)
    return slow_yields


# Each time a watch meets contention it yields once: the slow yield.
PER_CONTENTION = 1


@pytest.fixture
def contended(monkeypatch):
    """Every yield gives the core away for 2 ms to another task."""
    return slow_yields_in_place(monkeypatch, switching=True)


@pytest.mark.timeout(10)
def test_slow_yields_where_nothing_else_ran_do_not_pause_watching(pipe, monkeypatch):
    # No other task ran: watching on would catch the data.
    slow = slow_yields_in_place(monkeypatch, switching=False)
    watcher = watcher_on(pipe[0], watch_seconds=0.05)
    assert watcher.wait(0.2) == []
    assert slow.calls > 2 * PER_CONTENTION  # it watched on, 50 ms
    calls = slow.calls
    short_waits(watcher, pipe, count=1)
    assert slow.calls > calls  # not paused: the next wait watched again


@pytest.mark.timeout(10)
def test_a_contended_yield_ends_the_watch_and_pauses_watching(
    pipe, contended, monkeypatch
):
    monkeypatch.setattr(numap._watch, "FIRST_PAUSE_SECONDS", 60.0)
    watcher = watcher_on(pipe[0], watch_seconds=0.05)
    assert watcher.wait(0.2) == []
    assert contended.calls == PER_CONTENTION  # not the 25 of a 50 ms watch
    short_waits(watcher, pipe)
    assert contended.calls == PER_CONTENTION  # paused: every wait blocked


def set_pauses(monkeypatch, first: float, lasting: float) -> None:
    monkeypatch.setattr(numap._watch, "FIRST_PAUSE_SECONDS", first)
    monkeypatch.setattr(numap._watch, "PAUSE_SECONDS", lasting)


def try_to_watch(watcher: Watcher, pipe: tuple[int, int], after: float) -> None:
    """``after`` seconds later, a short wait (which turns a watch on), then a
    wait that watches, and meets contention, unless watching is paused."""
    time.sleep(after)
    wait_for_data_already_there(watcher, pipe)
    assert watcher.wait(0.2) == []


@pytest.mark.timeout(10)
def test_a_first_contended_yield_pauses_briefly_and_one_soon_after_pauses_long(
    pipe, contended, monkeypatch
):
    # A single contended yield is usually the map's own parent busy for a
    # moment: the watch resumes after FIRST_PAUSE_SECONDS, not PAUSE_SECONDS.
    set_pauses(monkeypatch, first=0.05, lasting=60.0)
    watcher = watcher_on(pipe[0], watch_seconds=0.05)
    assert watcher.wait(0.2) == []
    try_to_watch(watcher, pipe, after=0.1)  # the first pause is over
    assert contended.calls == 2 * PER_CONTENTION
    time.sleep(0.1)  # as long again: a second short pause would be over
    short_waits(watcher, pipe)
    assert contended.calls == 2 * PER_CONTENTION  # the second pause is long


@pytest.mark.timeout(10)
def test_after_a_long_pause_and_a_quiet_spell_contention_pauses_briefly_again(
    pipe, contended, monkeypatch
):
    set_pauses(monkeypatch, first=0.05, lasting=0.2)
    watcher = watcher_on(pipe[0], watch_seconds=0.05)
    assert watcher.wait(0.2) == []  # a short pause
    try_to_watch(watcher, pipe, after=0.1)  # a long pause
    assert contended.calls == 2 * PER_CONTENTION
    # The long pause, and PAUSE_SECONDS after it, are over: watching again,
    # and the contention it meets counts as a first one.
    try_to_watch(watcher, pipe, after=0.6)
    assert contended.calls == 3 * PER_CONTENTION
    try_to_watch(watcher, pipe, after=0.1)  # the short pause is over
    assert contended.calls == 4 * PER_CONTENTION


class SlowThenFreeYields(SlowYields):
    """Linux's EEVDF beside one busy task: a yield gives the core away for
    the busy task's slice, and the next one comes back at once (that task
    used its slice up and must wait its turn)."""

    def __call__(self) -> None:
        self.calls += 1
        if self.calls % 2:
            self.switches += 1
            time.sleep(self.seconds)


@pytest.mark.timeout(10)
def test_one_slow_yield_to_another_task_pauses_watching(pipe, monkeypatch):
    monkeypatch.setattr(numap._watch, "CONTENDED_YIELD_SECONDS", 0.0003)
    monkeypatch.setattr(numap._watch, "FIRST_PAUSE_SECONDS", 60.0)
    yields = SlowThenFreeYields(0.002)
    monkeypatch.setattr(numap._watch, "_yield_cpu", yields)
    monkeypatch.setattr(numap._watch, "_switches_away", lambda: yields.switches)
    watcher = watcher_on(pipe[0], watch_seconds=0.05)
    assert watcher.wait(0.2) == []
    assert yields.calls == 1  # the watch ended at the first slow yield
    short_waits(watcher, pipe)
    assert yields.calls == 1  # paused


@pytest.mark.timeout(60)
@pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity"), reason="pins processes to a core"
)
def test_a_watch_beside_a_busy_process_on_its_core_pauses_at_once():
    # Real contention: this watcher and a busy loop pinned to one core.
    done = run_python(
        """
        import os, subprocess, sys, time
        from numap._watch import Watcher
        busy = subprocess.Popen([sys.executable, "-c",
            "import os; os.sched_setaffinity(0, {0})\\nwhile True: pass"])
        try:
            time.sleep(0.3)
            os.sched_setaffinity(0, {0})
            read_fd, _ = os.pipe()
            paused = 0
            for _ in range(5):
                watcher = Watcher([read_fd], watch_seconds=0.05)
                began = time.perf_counter()
                watcher.wait(0.06)  # nothing comes: watch up to 50 ms, then block
                paused += watcher._paused_until > began
            print(paused)
        finally:
            busy.kill()
            busy.wait()
        """
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == 5
