"""Starting a worker process on the main thread, with signal handlers held back.

Python runs a signal's handler (the one set with ``signal.signal``) in the
main thread, between two bytecodes. When the main thread is starting a
worker process, an exception raised by that handler (KeyboardInterrupt from
a Ctrl-C, or whatever a program's own SIGTERM handler raises) lands in the
middle of the start:

- in the fork's hooks (``os.register_at_fork``), which print it as
  "Exception ignored" and drop it; the logging module's hook then leaves
  logging's lock held by the main thread, and the next fork, by any
  thread, waits for that lock forever;
- or after the child has started but before its channel owns it, so that
  nothing would ever end that worker.

:class:`HeldSignals` replaces the handlers of SIGINT and SIGTERM with one
that only notes the signal, for the time of one start. Its ``release``
puts the program's handlers back and then calls each of them for the
signals noted, at a point where the caller can end what it started if the
handler raises. Only the main thread runs handlers and may set them:
elsewhere HeldSignals does nothing, and nothing is needed.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

HELD = (signal.SIGINT, signal.SIGTERM)


class HeldSignals:
    """Hold the Python-level handlers of SIGINT and SIGTERM back until
    :meth:`release`. Handlers that are not Python callables (the system's
    default action, ignoring) are left alone: nothing of them runs in the
    main thread.

    State: ``_previous`` maps each replaced signal to the program's
    handler, ``_noted`` lists the signals that came meanwhile (each once);
    both are empty again after release.
    """

    __slots__ = ("_previous", "_noted")

    def __init__(self) -> None:
        self._previous: dict[int, Callable[[int, FrameType | None], Any]] = {}
        self._noted: list[int] = []
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in HELD:
            handler = signal.getsignal(signum)
            if callable(handler):
                signal.signal(signum, self._note)
                self._previous[signum] = handler

    def _note(self, signum: int, frame: FrameType | None) -> None:
        if signum not in self._noted:
            self._noted.append(signum)

    def release(self) -> None:
        """Put the program's handlers back, then call them for the signals
        that came while they were held back; raises what they raise."""
        previous, self._previous = self._previous, {}
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        noted, self._noted = self._noted, []
        for signum in noted:
            previous[signum](signum, sys._getframe())
