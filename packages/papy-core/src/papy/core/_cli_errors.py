"""The failed items of a ``papy run``: kept as they leave the pipeline, then
described for a person (where the error started, what was raised).

A Plumber's run thread discards the results of the output Pipers, so the
collector wraps each output Piper's ``next`` (an instance attribute, on this
pipeline's Pipers only) to look at every result on its way out.

A SIGTERM or SIGHUP sent to papy's whole process group (``timeout``, a
service manager, a closed terminal) also ends its worker processes at once,
and the items they held come out as WorkerLostErrors. When papy itself was
ended by that signal, those items did not fail: the run was stopped under
them. The collector keeps them apart, and the report decides at the end,
once it knows which signal, if any, ended the run.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from numap import WorkerLostError
from papy.core._errors import PiperError, WorkerError

# The signals that end a run as Ctrl-C does (see _cli_run).
ENDING_SIGNALS = ("SIGTERM", "SIGHUP")
# How numap names the signal that killed a worker process.
_KILLED_BY = re.compile(r"\bkilled by (SIG[A-Z0-9]+)\b")


@dataclass(frozen=True)
class FailedItem:
    output: str  # the output Piper the error left through (its label)
    position: int  # index of the result in that Piper's output stream
    error: PiperError
    order: int = 0  # of the failed results of all outputs, as they were pulled

    def origin(self) -> PiperError:
        """The innermost PiperError: the one made where the item failed."""
        error = self.error
        while isinstance(error.exception, PiperError):
            error = error.exception
        return error

    def ending_signal(self) -> str | None:
        """The name of the ending signal (SIGTERM, SIGHUP) that killed the
        worker process holding the item, or None if it failed otherwise."""
        cause = self.origin().exception
        if not isinstance(cause, WorkerLostError):
            return None
        killed = _KILLED_BY.search(str(cause))
        if killed is None or killed.group(1) not in ENDING_SIGNALS:
            return None
        return killed.group(1)

    def summary(self) -> str:
        return f"{self.output} result #{self.position}: {self.origin()}"

    def traceback(self) -> str:
        """The traceback of the exception raised by a worker function, or ''."""
        cause = self.origin().exception
        if isinstance(cause, WorkerError):
            return str(cause.traceback or "")
        return ""


class ErrorCollector:
    """Keeps the first ``keep`` failed results of the pipeline's outputs.

    Invariant (under ``_lock``): ``_failed`` holds, in the order they were
    pulled, the first ``keep`` failed results whose worker process no
    ending signal killed, ``_lost`` the first ``keep`` of those it killed,
    and ``_lost_counts`` how many such results each signal made in all.
    The position of a result in its output Piper's stream is counted
    without the lock, in that Piper's wrapper: the Plumber pulls each output
    Piper from one thread at a time.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self._failed: list[FailedItem] = []
        self._lost: list[FailedItem] = []
        self._lost_counts: Counter[str] = Counter()
        self._pulled = 0  # failed results seen
        self._lock = threading.Lock()

    def first(self, ended_by: str | None = None) -> list[FailedItem]:
        """The first ``keep`` failed results, in the order they were pulled;
        when the signal named ``ended_by`` ended the run, without the items
        it stopped by killing their worker processes."""
        with self._lock:
            lost = [item for item in self._lost if item.ending_signal() != ended_by]
            merged = sorted(self._failed + lost, key=lambda item: item.order)
        return merged[: self.keep]

    def stopped(self, ended_by: str | None) -> int:
        """How many results the signal named ``ended_by`` (None: none) made
        by killing the worker processes holding them."""
        if ended_by is None:
            return 0
        with self._lock:
            return self._lost_counts[ended_by]

    def attach(self, pipeline: Any, labels: dict[int, str]) -> None:
        """Watch the output Pipers of ``pipeline``; ``labels`` maps each
        Piper's ``id`` to the name its failed items are shown under."""
        for piper in pipeline.get_outputs():
            self._wrap(piper, labels[id(piper)])

    def _wrap(self, piper: Any, name: str) -> None:
        pull = piper.next
        position = -1  # of the last result pulled; see the invariant

        def next_result() -> Any:
            nonlocal position
            try:
                result = pull()
            except PiperError as error:  # raised by a debug=True Piper
                self._keep(name, position + 1, error)
                raise
            position += 1
            if isinstance(result, PiperError):
                self._keep(name, position, result)
            return result

        piper.next = next_result

    def _keep(self, name: str, position: int, error: PiperError) -> None:
        with self._lock:
            failed = FailedItem(name, position, error, self._pulled)
            self._pulled += 1
            signal_name = failed.ending_signal()
            kept = self._failed if signal_name is None else self._lost
            if signal_name is not None:
                self._lost_counts[signal_name] += 1
            if len(kept) < self.keep:
                kept.append(failed)
