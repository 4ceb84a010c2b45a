"""Ctrl-C caught by the program while it reads a NuMap loses nothing.

A consumer on the main thread receives results and feeds inputs itself;
a KeyboardInterrupt raised in the middle of that work dropped a result
frame or a half-registered batch, and the map then waited forever; one
raised right after a ready result was popped lost that result
(numap._interrupts holds it back until nothing is half done).
"""

import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import types
from pathlib import Path

import psutil
import pytest
from numap import NuMap, NuMapError, _interrupts
from polling import wait_until

CONSUMER = Path(__file__).with_name("ctrl_c_consumer.py")


def run(*arguments, timeout=90):
    done = subprocess.run(
        [sys.executable, str(CONSUMER), *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("stride", "buffer", "mode", "worker_type"),
    [
        (1, 2, "next", "process"),
        (1, 2, "for", "process"),
        (64, 256, "next", "process"),
        (64, 256, "task", "process"),
        (1024, 4096, "for", "process"),
        (1, 2, "next", "thread"),
    ],
)
def test_every_result_comes_once_though_ctrl_c_is_caught(
    stride, buffer, mode, worker_type
):
    *trials, handler = run(stride, buffer, 4, mode, worker_type)
    assert len(trials) == 4
    for outcome in trials:
        assert outcome.startswith("ok "), trials
    assert handler == "default handler back: True"


class _SigintOnEachStep:
    """An iterator whose every step sends SIGINT from C and yields None (a
    partial of a C function, called by the iterator slot without self)."""

    __next__ = functools.partial(os.kill, os.getpid(), signal.SIGINT)


@pytest.mark.timeout(30)
def test_a_ctrl_c_right_after_the_fast_paths_step_puts_the_result_back():
    # Deterministic: the handed results are replaced by an iterator whose
    # step sends SIGINT, so the signal comes exactly where Python would
    # raise it right after the result is taken.
    numap = NuMap(abs, range(-20, 0), worker_type="thread", worker_num=1)
    assert next(numap) == 20  # started, numap's handler installed
    output = numap._first_output
    put_back = []
    numap._first_output = types.SimpleNamespace(
        handed=_SigintOnEachStep(), put_back=put_back.append
    )
    try:
        with pytest.raises(KeyboardInterrupt):
            numap.__next__()
        assert put_back == [None]
    finally:
        numap._first_output = output
        numap.stop()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _sleep_then_return(seconds):
    time.sleep(seconds)
    return seconds


@pytest.mark.timeout(30)
def test_a_ctrl_c_during_a_skipping_timeout_keeps_the_timeout_as_context(
    monkeypatch,
):
    # A Ctrl-C held back while next(timeout=...) waits, when the wait then
    # times out with skip=True: the KeyboardInterrupt is raised and the
    # TimeoutError (whose result is now skipped) must show in its context,
    # or the user never learns that a result was dropped.
    monkeypatch.setattr(_interrupts, "CHECK_SECONDS", 5.0)  # one wait slice
    numap = NuMap(
        _sleep_then_return,
        [1.0, 0.0],
        worker_type="thread",
        worker_num=1,
        skip=True,
    )
    numap.start()
    timer = threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt) as caught:
            numap.next(timeout=0.5)
        # Shown in the traceback: not suppressed.
        assert isinstance(caught.value.__context__, TimeoutError)
        assert not caught.value.__suppress_context__
        assert list(numap) == [0.0]  # the timed-out result is skipped
    finally:
        timer.cancel()
        numap.stop()


@pytest.mark.timeout(60)
def test_a_programs_own_sigint_handler_is_kept():
    code = textwrap.dedent(
        """
        import signal
        from numap import NuMap

        def mine(signum, frame):
            raise SystemExit(7)

        signal.signal(signal.SIGINT, mine)
        numap = NuMap(abs, range(-50, 0), worker_num=2)
        results = list(numap)
        during = signal.getsignal(signal.SIGINT) is mine
        numap.stop()
        print(results == list(range(50, 0, -1)), during,
              signal.getsignal(signal.SIGINT) is mine)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=50
    )
    assert done.stdout.split() == ["True", "True", "True"], done.stderr


@pytest.mark.timeout(30)
def test_a_timed_out_next_has_no_internal_exception_as_context():
    numap = NuMap(time.sleep, [0.5], worker_type="thread", worker_num=1)
    numap.start()
    try:
        with pytest.raises(TimeoutError) as caught:
            numap.next(timeout=0.05)
        # Raised from inside `except IndexError` it showed "IndexError: pop
        # from an empty deque ... During handling of the above exception".
        assert caught.value.__context__ is None
    finally:
        numap.stop()


@pytest.mark.timeout(60)
def test_the_handler_is_python_default_again_after_stop():
    # In a fresh interpreter: here another test's unstopped map would keep
    # numap's handler installed, as it should.
    code = textwrap.dedent(
        """
        import signal
        from numap import NuMap

        default = signal.default_int_handler
        before = signal.getsignal(signal.SIGINT) is default
        numap = NuMap(abs, range(-5, 0), worker_num=2)
        results, ours_while_reading = [], True
        for value in numap:
            results.append(value)
            ours_while_reading &= signal.getsignal(signal.SIGINT) is not default
        # The map stopped itself at its end; the handler stays until stop().
        kept_at_the_end = signal.getsignal(signal.SIGINT) is not default
        numap.stop()
        after_stop = signal.getsignal(signal.SIGINT) is default
        print(before, results, ours_while_reading, kept_at_the_end, after_stop)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=50
    )
    assert done.stdout.strip() == "True [5, 4, 3, 2, 1] True True True", done.stderr


@pytest.mark.timeout(10)
def test_ctrl_cs_in_quick_succession_count_as_one_and_a_late_one_aborts():
    # numap's handler itself, as the README describes it, inside a section.
    state = _interrupts.STATE
    saved = (state.depth, state.pending, state.held_since)
    try:
        state.depth, state.pending = 1, False
        _interrupts._on_sigint(signal.SIGINT, None)
        assert state.pending  # held back
        _interrupts._on_sigint(signal.SIGINT, None)
        assert state.pending  # the same Ctrl-C
        state.held_since -= _interrupts.ABORT_SECONDS
        with pytest.raises(KeyboardInterrupt):
            _interrupts._on_sigint(signal.SIGINT, None)
        assert not state.pending
    finally:
        state.depth, state.pending, state.held_since = saved


class SignalsOnFirstIter:
    """An iterable whose first iter() sends this process a SIGINT: a Ctrl-C
    that lands while the map starts, after its workers started and before
    its feeder did."""

    def __init__(self, items):
        self.items = items
        self.sent = False

    def __iter__(self):
        if not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)
        return iter(self.items)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_a_ctrl_c_while_the_feeder_starts_is_raised_once_the_map_runs(worker_type):
    numap = NuMap(
        abs, SignalsOnFirstIter(range(-10, 0)), worker_type=worker_type, worker_num=2
    )
    try:
        with pytest.raises(KeyboardInterrupt):
            numap.next(timeout=5)
        # Before, the map kept its workers but had no feeder: this waited.
        assert [numap.next(timeout=5) for _ in range(10)] == list(range(10, 0, -1))
    finally:
        numap.stop()


def raise_keyboard_interrupt(signum, frame):
    raise KeyboardInterrupt


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_a_ctrl_c_from_a_programs_own_handler_during_start_undoes_the_start(
    worker_type,
):
    # Raised in the middle of the start (numap holds back only Ctrl-Cs of
    # its own handler): what had started is stopped, the next next()
    # starts afresh.
    previous = signal.signal(signal.SIGINT, raise_keyboard_interrupt)
    numap = NuMap(
        abs, SignalsOnFirstIter(range(-10, 0)), worker_type=worker_type, worker_num=2
    )
    try:
        with pytest.raises(KeyboardInterrupt):
            numap.next(timeout=5)
        assert not psutil.Process().children()
        assert [numap.next(timeout=5) for _ in range(10)] == list(range(10, 0, -1))
    finally:
        numap.stop()
        signal.signal(signal.SIGINT, previous)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_a_ctrl_c_raised_by_a_with_statements_start_leaves_nothing_running(
    worker_type,
):
    # Raised from __enter__ once the map runs; __exit__ is not called then.
    # Worker threads are not waited for (they cannot be terminated): each
    # ends after the item it runs.
    threads_before = set(threading.enumerate())
    numap = NuMap(abs, SignalsOnFirstIter(range(-10, 0)), worker_type=worker_type)
    with pytest.raises(KeyboardInterrupt), numap:
        pytest.fail("the with block ran")
    assert not psutil.Process().children()
    wait_until(lambda: set(threading.enumerate()) <= threads_before)
    assert not [t for t in threading.enumerate() if t not in threads_before]


class InputUnavailable(BaseException):
    """Not an Exception: an ``__iter__`` raising it fails the start (an
    Exception is the task's one error item instead, and the map starts)."""


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_a_consumer_waiting_while_another_threads_start_is_undone_gets_an_error(
    worker_type,
):
    # Thread 2's next() comes once the workers started, so it waits for a
    # result instead of for the start; the start then fails and is undone.
    # Before, thread 2 got StopIteration: an empty map, silently.
    release = threading.Event()

    class FailsOnceReleased:
        def __iter__(self):
            release.wait(10)
            raise InputUnavailable("the input is unavailable")

    numap = NuMap(abs, FailsOnceReleased(), worker_type=worker_type, worker_num=2)
    outcomes = {}

    def read(name):
        try:
            outcomes[name] = list(numap)
        except BaseException as error:  # noqa: BLE001 - InputUnavailable too
            outcomes[name] = error

    starter = threading.Thread(target=read, args=("starter",))
    starter.start()
    try:
        assert wait_until(lambda: numap._ever_started)
        waiter = threading.Thread(target=read, args=("waiter",))
        waiter.start()
        assert wait_until(lambda: numap._consumers_waiting == 1)
        release.set()
        starter.join(10)
        waiter.join(10)
        assert isinstance(outcomes["starter"], InputUnavailable)
        assert isinstance(outcomes["waiter"], NuMapError)
        assert "failed and was undone" in str(outcomes["waiter"])
    finally:
        release.set()
        numap.stop()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["process", "thread"])
def test_a_failed_stage_2_after_a_separate_stage_1_is_undone(worker_type):
    # papy's Dagger starts every NuMap in two calls. A stage 2 that failed
    # left the workers of stage 1 without a feeder: next() waited forever.
    class FailsFirst:
        calls = 0

        def __iter__(self):
            FailsFirst.calls += 1
            if FailsFirst.calls == 1:
                raise InputUnavailable("the input is not ready")
            return iter(range(-3, 0))

    numap = NuMap(abs, FailsFirst(), worker_type=worker_type, worker_num=2)
    try:
        numap.start(stages=[1])
        with pytest.raises(InputUnavailable):
            numap.start(stages=[2])
        assert not psutil.Process().children()
        with pytest.raises(NuMapError, match="start stage 1 before stage 2"):
            numap.start(stages=[2])
        assert [numap.next(timeout=5) for _ in range(3)] == [3, 2, 1]
    finally:
        numap.stop()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_a_with_block_left_by_an_exception_gives_the_default_handler_back(
    worker_type,
):
    # As stop() does: once no started map is left, code that looks for
    # Python's own handler (asyncio.run, for one) finds it again.
    numap = NuMap(abs, range(-5, 0), worker_type=worker_type, worker_num=1)
    with pytest.raises(ValueError, match="left"), numap:
        assert next(numap) == 5  # numap's handler installed
        raise ValueError("left")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
