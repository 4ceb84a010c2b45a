"""Turning the INPUT paths of ``papy run`` into the pipeline's input streams.

With a ``make_inputs(paths)`` in the pipeline file, its iterables are the
streams; without one, every input Piper gets the paths themselves as items.
Each stream is wrapped in a ``GuardedStream``: an exception raised while
reading the input (a malformed file, say) ends that stream instead of
breaking the pipeline, and is reported afterwards as an input error.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from papy.core._save import LoadedPipeline
from papy.core._streams import source_waits_for_data, stop_source_reading


class InputError(Exception):
    """The INPUT paths cannot be turned into input streams, or reading one
    failed. ``details`` holds a traceback worth showing with --debug, or ''."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


class GuardedStream:
    """An input stream that ends, instead of raising, when reading fails.

    ``items`` counts the items handed out; ``error`` is the exception that
    ended the stream early, or None. Only the thread reading the stream (one
    at a time) writes them, and ``error`` is set after the last change to
    ``items``: a reader in another thread that sees ``error`` set also sees
    the final ``items``, so neither needs a lock.
    """

    def __init__(self, name: str, source: Iterable[Any]) -> None:
        self.name = name
        self.items = 0
        self.error: BaseException | None = None
        self._source: Iterator[Any] = iter(source)

    def __iter__(self) -> GuardedStream:
        return self

    def stop_reading(self) -> None:
        """Pass a Plumber's request to end now on to the source, if it
        takes one (see ``papy.core._streams.Valve``)."""
        stop_source_reading(self._source)

    @property
    def waiting_for_data(self) -> bool:
        """The source's flag: a read waits for data not arrived yet."""
        return source_waits_for_data(self._source)

    def __next__(self) -> Any:
        if self.error is not None:
            raise StopIteration
        try:
            item = next(self._source)
        except StopIteration:
            raise
        except Exception as error:
            self.error = error
            raise StopIteration from error
        self.items += 1
        return item

    def failure(self) -> InputError | None:
        """An InputError describing why the stream ended early, or None."""
        error = self.error
        if error is None:
            return None
        items = self.items  # final once error is set (see the class docstring)
        return InputError(
            f"reading the input of piper {self.name!r} failed after {items} "
            f"item(s): {type(error).__name__}: {error}",
            "".join(traceback.format_exception(error)),
        )


def iter_not_text(value: Any) -> Iterator[Any]:
    """``iter(value)``; TypeError if ``value`` is text (iterating would split
    it into characters) or is not iterable, its message describing
    ``value`` (to follow "returned" or "is")."""
    shown = f"{type(value).__name__} {value!r:.60}"
    if isinstance(value, str | bytes | bytearray):
        raise TypeError(f"text ({shown}), which would be split into characters")
    try:
        return iter(value)
    except TypeError:
        raise TypeError(f"{shown}, which is not iterable") from None


def check_paths(paths: list[str]) -> None:
    """Raise InputError naming every path that does not exist."""
    missing = [path for path in paths if not Path(path).exists()]
    if missing:
        listed = ", ".join(repr(path) for path in missing)
        raise InputError(f"input does not exist: {listed}")


def make_datas(loaded: LoadedPipeline, paths: list[str]) -> list[GuardedStream]:
    """One guarded stream per input Piper, in the order of ``get_inputs()``.

    Raises InputError if there is no make_inputs and no path, if make_inputs
    raises, or if it returns a different number of streams than there are
    input Pipers.
    """
    inputs = list(loaded.pipeline.get_inputs())
    make_inputs = loaded.hook("make_inputs")
    if make_inputs is None:
        if not paths:
            raise InputError(
                f"{loaded.path.name} defines no make_inputs(paths), so its input "
                "pipers read the INPUT paths as items: give at least one INPUT"
            )
        sources: list[Any] = [list(paths) for _ in inputs]
    else:
        sources = _call_make_inputs(make_inputs, paths, loaded.path.name)
    if len(sources) != len(inputs):
        names = ", ".join(repr(piper.name) for piper in inputs)
        raise InputError(
            f"make_inputs() of {loaded.path.name} returned {len(sources)} input "
            f"stream(s) but the pipeline has {len(inputs)} input piper(s): {names}"
        )
    streams = []
    for piper, source in zip(inputs, sources, strict=True):
        try:
            streams.append(GuardedStream(piper.name, iter_not_text(source)))
        except TypeError as error:
            raise InputError(
                f"make_inputs() of {loaded.path.name}: the input of piper "
                f"{piper.name!r} is {error}: give an iterable of items, e.g. [path]"
            ) from error
    return streams


def _call_make_inputs(make_inputs: Any, paths: list[str], file_name: str) -> list[Any]:
    """The input streams that ``make_inputs(paths)`` returns, as a list;
    InputError if it raises or returns text or something not iterable."""
    try:
        returned = make_inputs(list(paths))
    except Exception as error:
        raise _raised(error, file_name) from error
    try:
        streams = iter_not_text(returned)
    except TypeError as error:
        raise InputError(
            f"make_inputs() of {file_name} returned {error}: return one iterable of "
            "items per input piper, e.g. [records]"
        ) from error
    try:
        return list(streams)  # a generator make_inputs runs its code here
    except Exception as error:
        raise _raised(error, file_name) from error


def _raised(error: Exception, file_name: str) -> InputError:
    return InputError(
        f"make_inputs() of {file_name} raised {type(error).__name__}: {error}",
        "".join(traceback.format_exception(error)),
    )
