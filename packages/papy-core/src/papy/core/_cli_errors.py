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
    output: str  # the output Piper the error left through
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
    pulled, the first ``keep`` PiperErrors seen; ``_positions[name]`` counts
    the results pulled from output Piper ``name``.
    """

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.first: list[FailedItem] = []
        self._positions: dict[str, int] = {}
        self._lock = threading.Lock()

    def attach(self, pipeline: Any) -> None:
        for piper in pipeline.get_outputs():
            self._wrap(piper)

    def _wrap(self, piper: Any) -> None:
        pull = piper.next
        name = piper.name

        def next_result() -> Any:
            result = pull()
            with self._lock:
                position = self._positions.get(name, 0)
                self._positions[name] = position + 1
                failed = isinstance(result, PiperError)
                if failed and len(self.first) < self.keep:
                    self.first.append(FailedItem(name, position, result))
            return result

        piper.next = next_result
