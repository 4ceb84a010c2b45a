"""The exceptions of papy.core, one per kind of object that can fail.

``WorkerError`` and ``PiperError`` are mostly *returned*, not raised: they
travel down the pipeline in place of the result they replace, so one bad item
never stops the stream. ``DaggerError`` and ``PlumberError`` are raised for
mistakes in building or driving a pipeline.
"""

from __future__ import annotations

import pickle
from typing import Any

import dill
from numap import RemoteError


def _rebuildable(exception: BaseException | None) -> BaseException | None:
    """``exception``, or a RemoteError carrying its text if its pickle
    cannot be loaded again.

    An exception class whose ``__init__`` takes other arguments than the
    ones it passes to ``Exception`` (``MyError(a, b)`` calling
    ``super().__init__(f"{a}-{b}")``) pickles, but does not unpickle: the
    whole batch of results around it would then be lost in the process
    that loads it, and the error's message with it. Tried as the map
    engine sends it: plain pickle, else dill (a class of a worker's
    ``__main__`` goes by value). What pickles with neither is left to the
    map engine, which reports it as such.
    """
    if exception is None or isinstance(exception, WorkerError | PiperError):
        # Their own __reduce__ checks what they wrap: checking them here
        # too would pickle every level of a nested error once per level
        # above it.
        return exception
    try:
        data, load = pickle.dumps(exception), pickle.loads
    except Exception:
        try:
            data, load = dill.dumps(exception), dill.loads
        except Exception:
            return exception
    try:
        load(data)
    except Exception as error:
        kind = type(exception)
        return RemoteError(
            f"{kind.__module__}.{kind.__qualname__}: {exception} (the exception "
            f"itself could not be rebuilt from its pickle: {error!r})"
        )
    return exception


def _reduced_with_rebuildable(error: WorkerError | PiperError) -> tuple[Any, ...]:
    """``error``'s pickle, with the exception it wraps (``args[1]``, also
    its ``exception`` attribute) made ``_rebuildable``."""
    args = list(error.args)
    args[1] = _rebuildable(args[1])
    state = {**error.__dict__, "exception": args[1]}
    return (type(error), tuple(args), state)


class WorkerError(Exception):
    """A function inside a Worker raised, or the Worker got an error as input.

    Attributes:
      - ``exception``: the original exception (or the error found in the inbox).
      - ``traceback``: the formatted traceback text of the original exception
        (empty when the error came in through the inbox).
      - ``function``: the name of the function that raised (or None).
    """

    def __init__(
        self,
        message: str,
        exception: BaseException | None = None,
        traceback: str = "",
        function: str | None = None,
    ) -> None:
        # Everything lives in ``args`` so the error pickles across processes.
        super().__init__(message, exception, traceback, function)
        self.exception = exception
        self.traceback = traceback
        self.function = function

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduced_with_rebuildable(self)


class PiperError(Exception):
    """An error that happened in (or passed through) a Piper.

    Returned in place of a result, except with ``debug=True``, or raised for a
    misuse of a Piper (bad arguments, wrong state). ``exception`` holds the
    wrapped error (a ``WorkerError``, a ``TimeoutError``, an error from the
    map engine, or another ``PiperError`` from upstream).
    """

    # True on the error that a timeout on a NuMap without skip puts in a
    # Piper's stream ahead of the late result: it stands for no input item
    # of its own, so a Piper's spawn and produce blocks do not count it.
    _ahead_of_late_result = False

    def __init__(self, message: str, exception: BaseException | None = None) -> None:
        super().__init__(message, exception)
        self.exception = exception

    def __str__(self) -> str:
        return str(self.args[0])

    def __reduce__(self) -> tuple[Any, ...]:
        return _reduced_with_rebuildable(self)


class DaggerError(Exception):
    """A pipeline topology was invalid or a Dagger was used wrongly."""


class PlumberError(RuntimeError):
    """A Plumber was used wrongly, or did not finish in time.

    A subclass of ``RuntimeError`` because ``Plumber.wait`` is documented to
    raise a ``RuntimeError`` when the pipeline has not finished in time.
    """


class PipelineFileError(PlumberError):
    """A pipeline file cannot be loaded: missing, unreadable, not Python,
    raised while running, defines no ``pipeline`` Plumber, or its pipes make
    a cycle.

    ``str()`` is the message for the user; ``details`` holds a traceback
    worth showing to a developer (e.g. under ``papy --debug``), or ''.
    """

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details
