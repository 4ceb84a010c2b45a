"""Ctrl-C during a consumer's work for the map: delivered after it, not inside.

A consumer on the main thread does some of the map's own work: it reads
results from the worker pipes, hands out a result, and feeds the next
input items (each saves a thread hand-off per result). Python raises
KeyboardInterrupt in the main thread between almost any two bytecodes.
Raised inside that work it would drop a frame just read from a pipe, a
result just taken, or a batch registered but not yet sent, and the map
would then wait forever for it. A program that catches the Ctrl-C and
goes on reading (an interactive session, a loop that asks "really
stop?") would hang.

So while the main thread is inside such a *section*, the SIGINT handler
installed here only notes the signal; the section raises KeyboardInterrupt
at its end, where nothing is half done (the result it took is put back
first). The per-result fast paths (a ``__next__`` that pops a result that
is ready) are too short to pay for a section; Python could still raise
right after their ``popleft()``, and the result would be lost. There the
handler looks at the frame it interrupts: in one of FAST_PATHS it sends
the signal again instead, so that it is handled at the next check, which
comes after the fast path has returned its result.

Waits inside a section (for a result, for a worker's pipe) are *windows*:
there the handler raises at once, as Python's own does, so Ctrl-C still
ends a blocked ``next()`` immediately. A second Ctrl-C while
one is pending also raises at once (an abort, for a section stuck in the
user's input generator).

The handler is installed by the main thread, and only over Python's
default one (``signal.default_int_handler``): outside a section it does
what the default does. A program with a SIGINT handler of its own keeps
it, without this protection. The default is put back when no started
NuMap is left (:func:`release`, called by ``NuMap.stop`` on the main
thread), so code that looks for the default handler (e.g. asyncio.run)
finds it again.
"""

from __future__ import annotations

import signal
import threading
from types import CodeType, FrameType

# The state of the main thread's sections. Only the main thread changes it
# (sections and windows are entered by the thread that runs them, and
# signal handlers run in the main thread), so it needs no lock.
# - depth: how many sections the main thread is inside (a section can run
#   another NuMap's, e.g. an input generator that reads another map).
#   The handler defers while depth > 0.
# - pending: a SIGINT came while depth > 0 and was not raised yet.
# - installed: our handler is the SIGINT handler (we put it there).


class _MainThreadState:
    __slots__ = ("depth", "pending", "installed")

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False
        self.installed = False


STATE = _MainThreadState()

# The code objects of the fast paths (filled in by numap._numap).
FAST_PATHS: set[CodeType] = set()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if STATE.depth > 0 and not STATE.pending:
        STATE.pending = True
        return
    if frame is not None and frame.f_code in FAST_PATHS:
        signal.raise_signal(signum)  # again once the fast path has returned
        return
    STATE.pending = False
    signal.default_int_handler(signum, frame)


def _on_main_thread() -> bool:
    # Cheaper than comparing current_thread(), and right after a fork
    # too (the forking thread is the child's main thread).
    return threading.get_ident() == threading.main_thread().ident


def enter_section() -> bool:
    """Enter a section; True if this thread is the main thread and SIGINT
    is deferred in it (then the caller must end it as :func:`end_section`
    says). Installs the handler if Python's default is in place."""
    if not _on_main_thread():
        return False
    if not STATE.installed:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return False
        signal.signal(signal.SIGINT, _on_sigint)
        STATE.installed = True
    STATE.depth += 1
    return True


def end_section() -> bool:
    """Leave a section entered with ``enter_section() == True``; True if a
    Ctrl-C came during it (and this was the outermost section): the caller
    must now raise KeyboardInterrupt, having put back what it took.
    """
    STATE.depth -= 1
    if STATE.depth == 0 and STATE.pending:
        STATE.pending = False
        return True
    return False


def open_window() -> int:
    """Open a window around a wait inside a section: until
    ``close_window(<the result>)``, Ctrl-C raises at once; a pending one
    raises here, before the wait. Returns 0 (and does nothing) in other
    threads and outside sections."""
    depth = STATE.depth
    if depth == 0 or not _on_main_thread():
        return 0
    if STATE.pending:
        STATE.pending = False
        raise KeyboardInterrupt
    STATE.depth = 0
    return depth


def close_window(depth: int) -> None:
    """Close a window opened by :func:`open_window`, which returned
    ``depth``."""
    if depth:
        STATE.depth = depth


def release() -> None:
    """Put Python's default SIGINT handler back if ours is installed and
    no section is open (main thread only; elsewhere nothing happens). For
    when no started NuMap is left."""
    if not STATE.installed or STATE.depth:
        return
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGINT) is _on_sigint:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    STATE.installed = False
