"""FIFO items: a KeyboardInterrupt inside dump_item leaves nothing stale.

A real SIGINT (``signal.raise_signal``) is sent at each line, in turn, that
``dump_item(type='fifo')`` runs in papy.util._item_io, so the interrupt
lands at every step of making the FIFO and registering it with the shared
connector thread. After each interrupted call no FIFO is left in the temp
directory, and afterwards FIFO items still reach a reader in another
process (a connector left half-registered would never serve them).

Not on ``with`` lines: when a block ends, CPython reports the ``with`` line
again just before it calls ``__exit__``, and an interrupt raised there skips
``__exit__`` (a lock stays held), which no code using ``with`` can prevent
(CPython issue 29988).
"""

import linecache
import os
import signal
import subprocess
import sys
import textwrap
import threading

import papy.util._item_io as _item_io
import pytest
from papy.util.func import dump_item

pytestmark = [
    pytest.mark.usefixtures("private_tmp"),
    pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs"),
]

READER = """
    import sys
    from papy.util.func import load_item
    for reference in sys.argv[1:]:
        print(load_item((reference,), timeout=5).decode(), flush=True)
"""


def _join_papy_threads(limit=5.0):
    for thread in threading.enumerate():
        if thread.name.startswith("papy-fifo-"):
            thread.join(limit)
            assert not thread.is_alive(), f"{thread.name} still running"


def _sigint_at_line(number, where):
    """A trace function that sends SIGINT at the ``number``-th line that
    papy.util._item_io runs in this thread, and appends that line to
    ``where``."""
    seen = 0

    def trace(frame, event, arg):
        nonlocal seen
        if frame.f_code.co_filename != _item_io.__file__:
            return None  # leave other modules' lines alone
        source = linecache.getline(frame.f_code.co_filename, frame.f_lineno)
        if event == "line" and not source.lstrip().startswith("with "):
            seen += 1
            if seen == number:
                where.append(f"{frame.f_code.co_name}: {source.strip()}")
                sys.settrace(None)
                signal.raise_signal(signal.SIGINT)
        return trace

    return trace


def _dump_interrupted_at(number, where):
    """dump_item with SIGINT at line ``number``; its reference, or None."""
    sys.settrace(_sigint_at_line(number, where))
    try:
        return dump_item((b"item %d" % number,), type="fifo", timeout=10)
    except KeyboardInterrupt:
        return None
    finally:
        sys.settrace(None)


@pytest.mark.timeout(30)
def test_sigint_anywhere_in_dump_item_leaves_no_fifo_and_no_stale_connector(
    private_tmp,
):
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupted = 0
        reference = None
        where = []
        while reference is None:
            # Each attempt starts with no connector thread, so it also
            # creates and starts one.
            _join_papy_threads()
            reference = _dump_interrupted_at(interrupted + 1, where)
            if reference is None:
                interrupted += 1
                assert os.listdir(private_tmp) == [], f"interrupted at {where[-1]}"
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupted > 5  # the interrupt did land in the registration

    later = [dump_item((b"later %d" % n,), type="fifo", timeout=10) for n in range(2)]
    reader = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(READER), reference, *later],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert reader.stderr == ""
    assert reader.stdout.splitlines() == [
        f"item {interrupted + 1}",
        "later 0",
        "later 1",
    ]
    _join_papy_threads()
    assert os.listdir(private_tmp) == []
