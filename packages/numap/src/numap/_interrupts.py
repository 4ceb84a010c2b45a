"""Ctrl-C during a consumer's work for the map: raised where nothing is half done.

A consumer on the main thread does some of the map's own work: it reads
results from the worker pipes, hands out a result, and feeds the next
input items (each saves a thread hand-off per result). Python raises
KeyboardInterrupt in the main thread at any call or loop jump. Raised
inside that work it would drop a frame just read from a pipe, a result
just taken, or a batch registered but not yet sent, and the map would
then wait forever for it. A program that catches the Ctrl-C and goes on
reading (an interactive session, a loop that asks "really stop?") would
hang.

So the SIGINT handler installed here holds a Ctrl-C back (``pending``)
while the main thread is in such work, and the work raises
KeyboardInterrupt itself at a point where nothing is half done:

- A *section* (``NuMap._take_slowly``: receive, take, feed) raises at its
  end, after putting back the result it took, or while it waits, before
  the next wait. Its waits last at most CHECK_SECONDS at a time, so a
  blocked ``next()`` still ends within that time.
- A *fast path* (a ``__next__`` that takes a result that is ready, or
  the function that gives an iterator its next run of results; listed in
  FAST_PATHS) is too short for a section: the handler recognizes its
  frame, and the fast path checks ``pending`` right after its take, puts
  the result back and raises (an iterator's run raises it in the
  consumer, as numap._handout.raising).
- Between the results of one run, iteration runs in C: there Python
  raises no Ctrl-C at all; one that comes is raised in the consumer's
  own code, after the result it took, or held back by the next fast path.

Further Ctrl-Cs while one is held back count as that one, except one
that comes after it was held back for ABORT_SECONDS: that one raises at
once, wherever it lands (an abort, for a map stuck in the user's input
generator; the map may then be broken). Sections nest (an input
generator that reads another NuMap runs inside the outer map's section);
only the outermost raises, so the inner map does not break the outer
one's generator. Hence a Ctrl-C that comes while the main thread runs the
user's input generator waits until that generator yields.

What this cannot protect: a result a C function (the built-in ``next``,
``zip``, ``map``) has taken from the map but not yet stored when Python
raises after that function returns.

The handler is installed by the main thread, and only over Python's
default one (``signal.default_int_handler``): elsewhere it does what the
default does. A program with a SIGINT handler of its own keeps it, without
this protection. The default is put back when no started NuMap is left
(:func:`release`, called by ``NuMap.stop`` on the main thread, not when a
map stops itself at its end), so code that looks for the default handler
(e.g. asyncio.run) finds it again.

The bookkeeping around sections (entering, leaving, the check for a
held-back Ctrl-C) is written out at its users, not in functions of this
module: a call is a point where Python may raise, and a Ctrl-C that came
just after the depth went back to 0 would be raised there, between taking
a result and handing it out. Once a Ctrl-C is held back, calls are safe
(another one counts as the same): :func:`raise_held_back` is then called.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

# How long a section waits at a time, at most, before it looks for a
# Ctrl-C held back meanwhile.
CHECK_SECONDS = 0.05

# A Ctrl-C held back this long already makes the next one raise at once.
ABORT_SECONDS = 1.0


class _MainThreadState:
    """The main thread's Ctrl-C state. Only the main thread changes it
    (sections are entered on the main thread only, signal handlers run
    there), so it needs no lock; other threads read it at most.

    - depth: how many sections the main thread is inside.
    - pending: a Ctrl-C was held back and not raised yet; held_since:
      when (time.monotonic()), while pending.
    - installed: our handler is the SIGINT handler (we put it there).
    - main_ident: the main thread's ident (after a fork, the forking
      thread's: it is the child's main thread).
    """

    __slots__ = ("depth", "pending", "held_since", "installed", "main_ident")

    def __init__(self) -> None:
        self.depth = 0
        self.pending = False
        self.held_since = 0.0
        self.installed = False
        self.main_ident = threading.main_thread().ident


STATE = _MainThreadState()

# The code objects of the fast paths (filled in by numap._numap).
FAST_PATHS: set[CodeType] = set()


def _on_sigint(signum: int, frame: FrameType | None) -> None:
    if STATE.pending:
        if time.monotonic() - STATE.held_since < ABORT_SECONDS:
            return  # the same Ctrl-C, as far as the user can tell
    elif STATE.depth > 0 or (frame is not None and frame.f_code in FAST_PATHS):
        STATE.pending = True
        STATE.held_since = time.monotonic()
        return
    STATE.pending = False
    signal.default_int_handler(signum, frame)


def raise_held_back(put_back: Callable[[Any], None], value: Any) -> None:
    """Called, with ``pending`` set, by a fast path or a section's end that
    just took ``value``: on the main thread outside every section, put
    ``value`` back first in line (``put_back(value)``) and raise the
    held-back KeyboardInterrupt. Elsewhere (another thread; an inner
    section, whose outer one raises it) return and let the caller hand
    ``value`` out."""
    if STATE.depth or not on_main_thread():
        return
    put_back(value)
    raise_pending()


def raise_pending() -> None:
    """Called, with ``pending`` set, where nothing was taken: on the main
    thread outside every section, raise the held-back KeyboardInterrupt.
    Elsewhere return (as :func:`raise_held_back`)."""
    if STATE.depth or not on_main_thread():
        return
    STATE.pending = False
    raise KeyboardInterrupt


def _after_fork_in_child() -> None:
    STATE.main_ident = threading.get_ident()
    STATE.depth = 0
    STATE.pending = False


os.register_at_fork(after_in_child=_after_fork_in_child)


def on_main_thread() -> bool:
    return threading.get_ident() == STATE.main_ident


def protects_this_thread() -> bool:
    """True if Ctrl-C can be held back in this thread: it is the main
    thread, and our handler is installed (installed here if Python's
    default is in place)."""
    if not on_main_thread():
        return False
    if not STATE.installed:
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return False
        signal.signal(signal.SIGINT, _on_sigint)
        STATE.installed = True
    return True


def release() -> None:
    """Put Python's default SIGINT handler back if ours is installed and
    no section is open (main thread only; elsewhere nothing happens). For
    when no started NuMap is left."""
    if not STATE.installed or STATE.depth:
        return
    if not on_main_thread():
        return
    if signal.getsignal(signal.SIGINT) is _on_sigint:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    STATE.installed = False
    STATE.pending = False
