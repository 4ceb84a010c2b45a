"""The item streams inside a Piper: zip, consume, spawn, produce, fan-out.

A Piper moves items stride by stride (``s`` = the stride of its NuMap, 1 for
a linear Piper). Data flow inside one Piper::

    upstream outboxes ──zip_inputs──> rows ──group(consume n, s)──> inboxes
        ──Splitter(spawn k, s)──> k views ──worker (map or NuMap task)──>
        k result streams ──merge(k, s)──> results ──unroll(produce n, s)──>
        outbox ──Tee (one branch per downstream Piper)──> downstream

Rules (DESIGN.md, "Item order inside a parallel Piper"):
  - spawn=k: stride blocks of the inbox go round-robin to the k copies
    (block b to copy b % k); their results are merged back in the same block
    order, so the stream keeps input order.
  - produce=n: a stride of results a, b, c is unrolled element-wise into
    a0 b0 c0 a1 b1 c1 ...; an error (or, with ``repeat``, any result) fills
    all n slots of its result.
  - consume=n: the inverse: n strides of s rows, grouping the i-th row of each.
  - A last, short block is processed as a shorter block: nothing is dropped
    or duplicated.
Every function here is lazy: it pulls only what the current block needs.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from papy.core._waits import wait_condition


def is_iterable(value: Any) -> bool:
    """Whether ``iter(value)`` would work, found without calling it (that
    may have side effects, e.g. on a file or a custom iterable)."""
    return isinstance(value, Iterable) or hasattr(value, "__getitem__")


def _take(source: Iterator[Any], count: int) -> list[Any]:
    block = []
    for _ in range(count):
        try:
            block.append(next(source))
        except StopIteration:
            break
    return block


# An input that raises this many times in a row, with no item between, is
# ended: one that keeps raising would give errors for ever (as in numap).
INPUT_ERRORS_IN_A_ROW = 100


def input_items(
    source: Iterator[Any], error_item: Callable[[Exception], Any]
) -> Iterator[Any]:
    """The items of an input iterator; an Exception it raises instead of an
    item becomes ``error_item(error)`` in that item's place, and reading
    goes on (a csv.reader reads on after a bad line; a generator that
    raised has ended). After INPUT_ERRORS_IN_A_ROW errors in a row the
    input is ended there."""
    in_a_row = 0
    while in_a_row < INPUT_ERRORS_IN_A_ROW:
        try:
            item = next(source)
        except StopIteration:
            return
        except Exception as error:
            in_a_row += 1
            yield error_item(error)
            continue
        in_a_row = 0
        yield item


def zip_inputs(
    sources: Sequence[Iterator[Any]],
    on_uneven: Callable[[int, int, list[int]], None] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Yield one tuple per row: the next item of every source, in order.

    Ends with the shortest source, like ``zip``. A checked Dagger's streams
    have equal lengths, except for a short last group when an input's
    length is not a multiple of consume x stride, so unequal ends are
    either that or a mistake. The other sources are not read to their ends
    (one may be endless), but never silently: if ``on_uneven`` is given,
    it is called once as ``on_uneven(ended, rows, left)`` when source
    ``ended`` ends after ``rows`` rows while the sources ``left`` still had
    items: those before it gave an item for the row that cannot be
    completed, and those after it are tried for one item (read where a
    full row would have read it, so it waits no longer than reading that
    row would have).
    """
    rows = 0
    while True:
        row = []
        try:
            for source in sources:
                row.append(next(source))
        except StopIteration:
            if on_uneven is not None:
                _report_uneven(sources, len(row), rows, on_uneven)
            return
        rows += 1
        yield tuple(row)


def _report_uneven(
    sources: Sequence[Iterator[Any]],
    ended: int,
    rows: int,
    on_uneven: Callable[[int, int, list[int]], None],
) -> None:
    """Call ``on_uneven`` if any source but ``ended`` still had items."""
    left = list(range(ended))
    left += [
        index for index in range(ended + 1, len(sources)) if _has_item(sources[index])
    ]
    if left:
        on_uneven(ended, rows, left)


def _has_item(source: Iterator[Any]) -> bool:
    """Whether ``source`` gives one more item (which is then dropped)."""
    try:
        next(source)
    except StopIteration:
        return False
    return True


def group(rows: Iterator[tuple[Any, ...]], n: int, s: int) -> Iterator[tuple[Any, ...]]:
    """consume=n: group rows into inboxes of n items per upstream.

    Reads n strides of s rows and yields s inboxes; inbox i holds, for each
    upstream j, the tuple of the i-th row's j-th item from each stride. A last
    short block of m rows is cut into strides of ceil(m / n) rows.
    """
    while True:
        block = _take(rows, n * s)
        if not block:
            return
        width = s if len(block) == n * s else math.ceil(len(block) / n)
        strides = [block[i : i + width] for i in range(0, len(block), width)]
        for i in range(width):
            column = [stride[i] for stride in strides if i < len(stride)]
            yield tuple(zip(*column, strict=True))


class Splitter:
    """spawn=k: deals stride blocks of one inbox stream to k views.

    Block b (items b*s .. b*s+s-1) goes to view b % k. Blocks pulled for a
    view other than the asking one wait in that view's queue.

    Invariant (under ``_lock``): ``_next_block`` is the number of blocks taken
    from the source; ``_queues[t]`` holds the items of view t's blocks already
    taken and not yet handed out, in order.
    """

    def __init__(self, source: Iterator[Any], k: int, s: int) -> None:
        self._source = source
        self._k = k
        self._s = s
        self._lock = threading.Lock()
        self._queues: list[deque[Any]] = [deque() for _ in range(k)]
        self._next_block = 0
        self._exhausted = False

    def view(self, t: int) -> Iterator[Any]:
        """The items of copy t, as an iterator."""
        return _SplitterView(self, t)

    def _next_for(self, t: int) -> Any:
        with self._lock:
            queue = self._queues[t]
            while not queue:
                if self._exhausted:
                    raise StopIteration
                block = _take(self._source, self._s)
                if len(block) < self._s:
                    self._exhausted = True
                self._queues[self._next_block % self._k].extend(block)
                self._next_block += 1
            return queue.popleft()


class _SplitterView:
    def __init__(self, splitter: Splitter, t: int) -> None:
        self._splitter = splitter
        self._t = t

    def __iter__(self) -> _SplitterView:
        return self

    def __next__(self) -> Any:
        return self._splitter._next_for(self._t)


def _always(item: Any) -> bool:
    return True


def merge(
    next_of_copy: Callable[[int], Any],
    k: int,
    s: int,
    takes_slot: Callable[[Any], bool] = _always,
) -> Iterator[Any]:
    """Merge k copies' results back in block order (s from copy 0, then 1...).

    ``next_of_copy(t)`` returns copy t's next result or raises StopIteration.
    Only the last block can be short, so the first short block ends the stream.
    A result for which ``takes_slot`` is False (an error a timeout adds
    before the late result it stands for) is passed on where it comes,
    without counting towards its copy's block.
    """
    block_number = 0
    while True:
        copy = block_number % k
        got = 0
        while got < s:
            try:
                item = next_of_copy(copy)
            except StopIteration:
                return
            if takes_slot(item):
                got += 1
            yield item
        block_number += 1


def unroll(
    results: Iterator[Any],
    n: int,
    s: int,
    expand: Callable[[Any], Sequence[Any]],
    takes_slot: Callable[[Any], bool] = _always,
) -> Iterator[Any]:
    """produce=n: unroll strides of results element-wise (a0 b0 c0 a1 b1 ...).

    ``expand(result)`` turns one result into its n items (an error or a
    repeated result into n copies of itself). A result for which
    ``takes_slot`` is False (as in :func:`merge`) is passed on once, as it
    is, ahead of the block it came in.
    """
    while True:
        block = []
        for result in results:
            if takes_slot(result):
                block.append(result)
                if len(block) == s:
                    break
            else:
                yield result
        if not block:
            return
        expanded = [expand(result) for result in block]
        for j in range(n):
            for items in expanded:
                yield items[j]


# The fewest items a Tee lets a branch's queue hold before a reader that
# runs ahead waits (see Tee and ``tee_bound``).
TEE_MIN_BOUND = 64


def tee_bound(lead: int) -> int:
    """The queue bound of a Tee whose readers may need up to ``lead`` items
    of the source each before their branch gives an item (worked out from
    consume, stride and spawn of the Pipers downstream, see
    ``Dagger._set_tee_bounds``): twice that, so that a reader is never
    held back by another one that needs a whole lead first, and at least
    TEE_MIN_BOUND, so that branches of different speed do not wait for
    each other at every item."""
    return max(TEE_MIN_BOUND, 2 * lead)


class Tee:
    """Fans one stream out to several consumers (thread-safe), in bounded
    memory.

    Invariant (under ``_lock``): ``_queues[i]`` holds the items consumer i has
    not taken yet; ``_pulling`` is True while one thread reads the source
    (never two: it is a generator). The lock is NOT held while reading, so a
    consumer whose queue has items never waits for another consumer's read
    (two NuMap feeders sharing a Tee would otherwise block each other).

    Back-pressure: with a ``bound``, a consumer that needs a new item from
    the source waits while another consumer's queue holds ``bound`` items
    (that consumer is behind; its queue shrinks as it reads), so no queue
    ever holds more than ``bound`` items. Without it, a fan-out to a fast
    and a slow branch would copy the whole input into the slow branch's
    queue. Only a consumer that another thread reads is waited for (a
    Plumber reads each output in its own thread): a thread waiting for a
    queue that it reads itself, or that nobody has read yet, would wait
    for ever (a join reads its inputs in turn; a program may read one
    output to its end before the next), so such a queue grows instead; a
    queue nobody has read yet is waited for from its first read on.
    ``_readers[i]`` is the thread that last took an item for consumer i
    (None before the first); once that thread has ended, nobody waits for
    consumer i either (a reader that stopped early, say after an
    exception). ``release()`` lifts
    the bound for good (the inputs were closed: what is left is bounded by
    the buffers upstream, and a stop must not wait for the slow consumer);
    ``loosen()`` lifts it until ``tighten()`` (a pause: a consumer that
    waits for a paused one could never pause itself); ``abandon(i)`` drops
    consumer i, which will read no more (a join that ended with a shorter
    input), so nobody waits for it.

    If reading the source raises (an input iterator that raised, through
    linear Pipers), every consumer gets that exception in the same place,
    then the end: the source (a generator) has ended, and a consumer that
    only saw the end would take a broken input for a whole one.

    Arguments: ``source`` (an iterable), ``n`` (the number of consumers),
    ``bound`` [default: None, no bound] (an int >= 1, see above).
    """

    def __init__(self, source: Iterable[Any], n: int, bound: int | None = None) -> None:
        if bound is not None and bound < 1:
            raise ValueError(f"Tee: 'bound' must be None or >= 1, got {bound!r}")
        self._source = iter(source)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._queues: list[deque[Any]] = [deque() for _ in range(n)]
        self._abandoned = [False] * n
        self._readers: list[threading.Thread | None] = [None] * n
        self._bound = bound
        self._loose = False
        self._exhausted = False
        self._pulling = False

    def branch(self, i: int) -> Iterator[Any]:
        """Consumer i's view of the stream."""
        return _TeeBranch(self, i)

    def release(self) -> None:
        """Lift the bound: from now on no consumer waits for another."""
        with self._lock:
            self._bound = None
            self._changed.notify_all()

    def loosen(self) -> None:
        """Lift the bound until ``tighten()``."""
        with self._lock:
            self._loose = True
            self._changed.notify_all()

    def tighten(self) -> None:
        """Apply the bound again after ``loosen()`` (queues that grew past
        it meanwhile shrink as their consumers read)."""
        with self._lock:
            self._loose = False

    def abandon(self, i: int) -> None:
        """Consumer i reads no more: drop its queue, never wait for it."""
        with self._lock:
            self._abandoned[i] = True
            self._queues[i].clear()
            self._changed.notify_all()

    def queue_lengths(self) -> list[int]:
        """How many items each consumer has not taken yet."""
        with self._lock:
            return [len(queue) for queue in self._queues]

    def _behind(self, i: int) -> bool:
        """Whether a consumer other than i that another thread reads has a
        full queue (under _lock)."""
        if self._bound is None or self._loose:
            return False
        me = threading.current_thread()
        for index, queue in enumerate(self._queues):
            reader = self._readers[index]
            if (
                index != i
                and len(queue) >= self._bound
                and not self._abandoned[index]
                and reader is not None
                and reader is not me
                and reader.is_alive()
            ):
                return True
        return False

    def _next_for(self, i: int) -> Any:
        with self._lock:
            self._readers[i] = threading.current_thread()
            while True:
                queue = self._queues[i]
                if queue:
                    return self._take(queue)
                if self._exhausted or self._abandoned[i]:
                    raise StopIteration
                if not self._pulling and not self._behind(i):
                    break
                # Sliced (see _waits): the caller may be the main thread
                # (a pipeline pulled without a run thread).
                wait_condition(self._changed)
            self._pulling = True
        try:
            item = next(self._source)
        except StopIteration:
            self._pulled(ended=True)
            raise
        except Exception as error:
            # Raised to consumer i now, and queued for the others.
            self._pulled([_Raised(error)], but=i, ended=True)
            raise
        except BaseException:  # a Ctrl-C stops the program, not an input
            self._pulled()
            raise
        self._pulled([item], but=i)
        return item

    def _take(self, queue: deque[Any]) -> Any:
        """The next item of ``queue`` (under _lock), raised if it is an
        exception the source raised."""
        item = queue.popleft()
        if self._bound is not None and len(queue) == self._bound - 1:
            # It was full: a reader may wait for room. (A queue that grew
            # past the bound while loose passes here too as it shrinks.)
            self._changed.notify_all()
        if isinstance(item, _Raised):
            raise item.error
        return item

    def _pulled(
        self, got: Sequence[Any] = (), but: int = -1, ended: bool = False
    ) -> None:
        """End a pull from the source: queue what it ``got`` (an item, or
        the _Raised of its error) for every consumer still reading but
        consumer ``but`` (who pulled it and gets it directly); ``ended``:
        the source has ended."""
        with self._lock:
            for item in got:
                for index, queue in enumerate(self._queues):
                    if index != but and not self._abandoned[index]:
                        queue.append(item)
            if ended:
                self._exhausted = True
            self._pulling = False
            self._changed.notify_all()


class _Raised:
    """In a Tee's queue: the exception that reading the source raised."""

    def __init__(self, error: Exception) -> None:
        self.error = error


class _TeeBranch:
    def __init__(self, tee: Tee, i: int) -> None:
        self._tee = tee
        self._i = i

    def __iter__(self) -> _TeeBranch:
        return self

    def __next__(self) -> Any:
        return self._tee._next_for(self._i)


def stop_source_reading(source: Any) -> None:
    """Ask an input to end a wait for data now, if it takes such a request
    (a ``stop_reading()`` method, as ``make_lines`` has)."""
    stop_reading = getattr(source, "stop_reading", None)
    if callable(stop_reading):
        stop_reading()


def source_waits_for_data(source: Any) -> bool:
    """An input's ``waiting_for_data`` flag (False for inputs without one)."""
    return bool(getattr(source, "waiting_for_data", False))


class Valve:
    """An input stream that can be closed from another thread.

    After ``close()`` the next read raises StopIteration, so a pipeline fed
    from it runs dry and can be stopped without losing buffered items. A
    read already waiting inside the source cannot be taken back: it ends
    when the source gives its next item or ends, unless the source has a
    ``stop_reading()`` method (as ``papy.util.func.make_lines`` has), which
    ``close()`` calls to end that wait at once. ``waiting_for_data`` is the
    source's own flag of that name (False if it has none): True while a
    read waits for data that has not arrived yet.
    """

    def __init__(self, data: Iterable[Any]) -> None:
        self._source = iter(data)
        self._closed = threading.Event()

    def close(self) -> None:
        self._closed.set()
        stop_source_reading(self._source)

    @property
    def waiting_for_data(self) -> bool:
        return source_waits_for_data(self._source)

    def __iter__(self) -> Valve:
        return self

    def __next__(self) -> Any:
        if self._closed.is_set():
            raise StopIteration
        return next(self._source)
