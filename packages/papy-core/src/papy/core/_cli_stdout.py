"""Standard output and error of the ``papy`` command when they are closed,
or break while it writes (a reader like ``head`` that has gone, a full
disk): the command goes on, or ends, as Unix tools do, with no traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from typing import IO, Any

STANDARD_FDS = {"stdout": 1, "stderr": 2}


def open_closed_standard_streams() -> None:
    """Give a closed standard output or error (``papy ... >&-``) /dev/null.

    Python then sets ``sys.stdout`` (or ``sys.stderr``) to None, which
    writers do not expect, and the next file opened (a log file, a pipe to
    a worker process) would take the free descriptor: output meant for the
    terminal would land in it.
    """
    for name, fd in STANDARD_FDS.items():
        if not _is_open(fd):
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
        if getattr(sys, name) is None:
            setattr(sys, name, open(fd, "w", closefd=False))  # noqa: SIM115


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def silence(stream: IO[str]) -> None:
    """Point ``stream``'s descriptor at /dev/null: what is still buffered, and
    whatever is written later, goes nowhere instead of failing again (also
    in the flush at interpreter exit, which would print a traceback)."""
    with contextlib.suppress(OSError, ValueError):
        stream.flush()
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, stream.fileno())
        os.close(null)


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal; False also for one that is closed
    or whose terminal went away."""
    try:
        return bool(stream.isatty())
    except (OSError, ValueError):
        return False


class UntilBroken:
    """Standard output for ``papy run`` (its live table, log lines and
    summary), given up at the first write that fails, so the run goes on
    without it.

    A reader that went away (``papy run ... | head -1``) or a terminal
    that did (it was closed) ends the output without a word; another
    failure (a full disk) is said once on stderr.
    """

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream
        self._given_up = False
        # Read by rich to pick how to write (a terminal, which encoding).
        self.encoding = getattr(stream, "encoding", "utf-8")

    def isatty(self) -> bool:
        return is_terminal(self._stream)

    def fileno(self) -> int:
        return self._stream.fileno()

    def write(self, text: str) -> int:
        self._attempt(self._stream.write, text)
        return len(text)

    def flush(self) -> None:
        self._attempt(self._stream.flush)

    def _attempt(self, action: Any, *arguments: Any) -> None:
        if self._given_up:
            return
        try:
            action(*arguments)
        except OSError as error:
            self._give_up(error)

    def _give_up(self, error: OSError) -> None:
        self._given_up = True
        silence(self._stream)
        if error.errno not in (errno.EPIPE, errno.EIO):
            with contextlib.suppress(OSError):
                sys.stderr.write(
                    f"papy: cannot write to standard output ({error.strerror}); "
                    "going on without it (--log-file keeps a log elsewhere)\n"
                )
