"""The failed items of a ``papy run``: kept as they leave the pipeline, then
described for a person (where the error started, what was raised).

A Plumber's run thread discards the results of the output Pipers, so the
collector wraps each output Piper's ``next`` (an instance attribute, on this
pipeline's Pipers only) to look at every result on its way out.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from papy.core._errors import PiperError, WorkerError


@dataclass(frozen=True)
class FailedItem:
    output: str  # the output Piper the error left through (its label)
    position: int  # index of the result in that Piper's output stream
    error: PiperError

    def origin(self) -> PiperError:
        """The innermost PiperError: the one made where the item failed."""
        error = self.error
        while isinstance(error.exception, PiperError):
            error = error.exception
        return error

    def summary(self) -> str:
        return f"{self.output} result #{self.position}: {self.origin()}"

    def traceback(self) -> str:
        """The traceback of the exception raised by a worker function, or ''."""
        cause = self.origin().exception
        if isinstance(cause, WorkerError):
            return str(cause.traceback or "")
        return ""


class ErrorCollector:
    """Keeps the first ``keep`` failed items of the pipeline's outputs.

    Invariant (under ``_lock``): ``first`` holds, in the order they were
    pulled, the first ``keep`` PiperErrors seen. The position of a result in
    its output Piper's stream is counted without the lock, in that Piper's
    wrapper: the Plumber pulls each output Piper from one thread at a time.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.first: list[FailedItem] = []
        self._lock = threading.Lock()

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
                self._keep(FailedItem(name, position + 1, error))
                raise
            position += 1
            if isinstance(result, PiperError):
                self._keep(FailedItem(name, position, result))
            return result

        piper.next = next_result

    def _keep(self, failed: FailedItem) -> None:
        with self._lock:
            if len(self.first) < self.keep:
                self.first.append(failed)
