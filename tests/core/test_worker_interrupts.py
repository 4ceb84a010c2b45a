"""A KeyboardInterrupt or GeneratorExit that a Worker's function raises
itself: an item's error wherever no real Ctrl-C can arrive, and still a
Ctrl-C on the main thread of a program that does not ignore SIGINT."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import pytest
from papy.core import Worker, WorkerError


def raise_keyboard_interrupt(inbox):
    raise KeyboardInterrupt("raised by the function")


def raise_generator_exit(inbox):
    raise GeneratorExit("raised by the function")


def call_on_a_thread(worker, inbox):
    results = []
    thread = threading.Thread(target=lambda: results.append(worker(inbox)))
    thread.start()
    thread.join(timeout=10)
    return results[0]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("function", [raise_keyboard_interrupt, raise_generator_exit])
def test_on_another_thread_it_is_the_items_error(function):
    result = call_on_a_thread(Worker(function), (1,))
    assert isinstance(result, WorkerError)
    assert "raised by the function" in str(result)
    assert result.traceback and "raise " in result.traceback


def run_program(body: str) -> subprocess.CompletedProcess:
    """Run ``body`` in a fresh interpreter: the main thread's SIGINT
    handling must not be changed inside the test process."""
    program = textwrap.dedent(
        """
        import signal
        from papy.core import Worker, WorkerError

        def raise_keyboard_interrupt(inbox):
            raise KeyboardInterrupt("raised by the function")

        def raise_generator_exit(inbox):
            raise GeneratorExit("raised by the function")
        """
    ) + textwrap.dedent(body)
    return subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.timeout(90)
def test_in_a_process_that_ignores_sigint_it_is_the_items_error():
    # As in a numap worker process: its main thread runs the functions.
    done = run_program(
        """
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        result = Worker(raise_keyboard_interrupt)((1,))
        print(type(result).__name__, repr(result.exception))
        """
    )
    assert done.returncode == 0, done.stderr
    assert "WorkerError KeyboardInterrupt('raised by the function')" in done.stdout


@pytest.mark.timeout(90)
def test_on_the_main_thread_a_keyboard_interrupt_still_stops_the_program():
    done = run_program(
        """
        try:
            Worker(raise_keyboard_interrupt)((1,))
        except KeyboardInterrupt:
            print("stopped by the KeyboardInterrupt")
        """
    )
    assert done.returncode == 0, done.stderr
    assert "stopped by the KeyboardInterrupt" in done.stdout


@pytest.mark.timeout(90)
def test_on_the_main_thread_a_generator_exit_is_the_items_error():
    # No Ctrl-C raises GeneratorExit inside a function call.
    done = run_program(
        """
        result = Worker(raise_generator_exit)((1,))
        print(type(result).__name__, repr(result.exception))
        """
    )
    assert done.returncode == 0, done.stderr
    assert "WorkerError GeneratorExit('raised by the function')" in done.stdout
