"""Results on their way out to the consumer, iterated without a Python frame each.

A consumer that takes a result from the map locks it, and may lend up to a
batch of further results to the task's ``handed`` iterator, where the
next takes find them without the lock (``operator.length_hint(handed)``
says how many it holds). ``handed`` is:

- a plain list iterator when none of the lent results is an error. A
  ``for`` loop, ``sum`` or ``list`` over a task's results then runs in C
  from one result to the next (:func:`results`): per result that costs a
  tenth of a call to a Python ``__next__``, which was most of what the
  parent spent on small items;
- a :class:`WithErrors` when some are errors: it raises each error in
  its result's place.

Every consumer (iteration, ``next``, other threads) takes from the same
``handed``, so each result is handed out once, in order. ``handed`` is
replaced (under the map's lock) only once it is empty, or to put a
result back first in line (:func:`with_first`).
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from numap import _interrupts
from numap._pool import Raised

# What take() and next(handed, NONE) return once ``handed`` is empty.
NONE: Any = object()

# An empty ``handed``.
NOTHING: Iterator = iter(())

# The main thread's Ctrl-C state, read on the per-result fast path.
_CTRL_C = _interrupts.STATE


class WithErrors(deque):
    """Lent results some of which are errors (:class:`Raised`): iterating
    raises each error in its result's place and goes on after it.

    A deque, so that its length (``operator.length_hint``), taking, putting
    back and clearing run no Python code, where a Ctrl-C could land
    between taking a result and handing it out. ``put_back`` is set once
    it is made (WithErrors(values) runs no Python code either).

    A fast path of _interrupts: a Ctrl-C held back right after a result
    is popped puts that result back (``put_back``) and is raised.
    """

    __slots__ = ("put_back",)
    put_back: Callable[[Any], None]

    def __iter__(self) -> WithErrors:
        return self

    def __next__(self) -> Any:
        try:
            value = self.popleft()
        except IndexError:
            raise StopIteration from None
        if _CTRL_C.pending:
            _interrupts.raise_held_back(self.put_back, value)
        if value.__class__ is Raised:
            raise value.error
        return value


class Raising:
    """An iterator whose first step raises ``error``, then ends: how an
    iterator of :func:`results` gets an error to raise in the consumer.

    Set ``error`` once it is made (Raising() runs no Python code, so no
    Ctrl-C can land in it and take the error's place). A fast path of
    _interrupts: a Ctrl-C held back as it starts is raised first, and
    ``error`` at the next step.
    """

    __slots__ = ("error",)
    error: BaseException | None

    def __iter__(self) -> Raising:
        return self

    def __next__(self) -> Any:
        if _CTRL_C.pending:
            _interrupts.raise_pending()
        error = self.error
        if error is None:
            raise StopIteration
        self.error = None
        raise error


def lend(values: list, put_back: Callable[[Any], None], maybe_errors: bool) -> Iterator:
    """A ``handed`` iterator over ``values`` (results, errors as Raised);
    none of them is an error unless ``maybe_errors``."""
    # One C-level pass (~25 ns a value), only where errors may be.
    if maybe_errors and Raised in set(map(type, values)):
        return _with_errors(values, put_back)
    return iter(values)


def _with_errors(values: list, put_back: Callable[[Any], None]) -> WithErrors:
    handed = WithErrors(values)
    handed.put_back = put_back
    return handed


def take(handed: Iterator) -> Any:
    """The next result of ``handed`` as it is stored (an error as its
    Raised, not raised), or NONE when it is empty."""
    if handed.__class__ is WithErrors:
        try:
            return handed.popleft()  # type: ignore[attr-defined]
        except IndexError:
            return NONE
    return next(handed, NONE)


def drain(handed: Iterator) -> None:
    """Drop what ``handed`` holds (the map stops), also for iterators that
    loop over it: they end."""
    if handed.__class__ is WithErrors:
        handed.clear()  # type: ignore[attr-defined]
    else:
        deque(handed, maxlen=0)


def with_first(
    value: Any, handed: Iterator, put_back: Callable[[Any], None]
) -> Iterator:
    """(Holding the map's lock.) ``handed`` with ``value`` first in line.

    A list iterator cannot take a result back: its results move to a new
    WithErrors, and the list iterator, drained, ends for whoever loops
    over it (whose next step then finds the new ``handed``).
    """
    if handed.__class__ is WithErrors:
        handed.appendleft(value)  # type: ignore[attr-defined]
        return handed
    # [value, *handed] drains the list iterator in C: no other thread
    # takes from it meanwhile.
    return _with_errors([value, *handed], put_back)


def results(next_run: Callable[[], Iterable | None]) -> Iterator:
    """An iterator over the results of a task, in C from one to the next.

    ``next_run()`` is called whenever what it returned last is used up: it
    returns the next iterable of results (``handed``, or a result just
    taken followed by ``handed``), a :class:`Raising` for an error to
    raise in the consumer, or None at the end of the results. It must never
    raise: the iterator would end for good. (chain goes on after an
    iterable that raised; iter(callable, None) ends only at None.)
    """
    return itertools.chain.from_iterable(iter(next_run, None))


# __iter__ too: chain calls it (Python code) on each iterable it starts.
_interrupts.FAST_PATHS.update(
    {
        WithErrors.__iter__.__code__,
        WithErrors.__next__.__code__,
        Raising.__iter__.__code__,
        Raising.__next__.__code__,
    }
)
