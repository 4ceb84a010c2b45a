"""Piper: one processing node of a pipeline, linear or on a NuMap."""

from __future__ import annotations

import inspect
import itertools
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from numap import NuMap
from papy.core import _numaps
from papy.core._errors import PiperError, WorkerError
from papy.core._log import get_logger
from papy.core._streams import (
    Splitter,
    Tee,
    group,
    input_items,
    is_iterable,
    merge,
    tee_bound,
    unroll,
    zip_inputs,
)
from papy.core._waits import timeout_seconds
from papy.core._worker import Worker, find_error


def _as_item(result: Any, piper_name: str) -> Any:
    """A Worker's result as a stream item: a WorkerError becomes a PiperError
    (an upstream PiperError it carries is passed on as the same object)."""
    if not isinstance(result, WorkerError):
        return result
    if isinstance(result.exception, PiperError):
        return result.exception
    return PiperError(f"Piper {piper_name!r}: {result}", result)


class Timed:
    """Calls a Worker and returns ``(result, seconds spent)``.

    Runs wherever the Worker runs (a NuMap process included), so the Piper
    learns its busy time without sharing memory with the workers.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def __call__(self, inbox: Any) -> tuple[Any, float]:
        begin = time.perf_counter()
        result = self.worker(inbox)
        return result, time.perf_counter() - begin


class Chained:
    """Calls a Worker on the raw result of the upstream Piper's NuMap task.

    Used when a Piper reads its only upstream Piper inside the same NuMap
    (native NuMap chaining: the items never leave the worker pool's buffer
    and the feeder never waits). Does in the worker what the upstream
    Piper would have done in the parent (turn a WorkerError into a
    PiperError) and returns ``(result, seconds, passed)``, where ``passed``
    holds ``(seconds, error message or None)`` of each chained upstream
    Piper, nearest first, so the parent can keep their counters and logs.
    """

    def __init__(self, worker: Worker, upstream_name: str) -> None:
        self.worker = worker
        self.upstream_name = upstream_name

    def __call__(self, raw: tuple[Any, ...]) -> tuple[Any, float, tuple[Any, ...]]:
        upstream_result, upstream_seconds = raw[0], raw[1]
        further = raw[2] if len(raw) == 3 else ()
        failed = isinstance(upstream_result, WorkerError)
        item = _as_item(upstream_result, self.upstream_name)
        begin = time.perf_counter()
        result = self.worker((item,))
        message = str(item) if failed else None
        passed = ((upstream_seconds, message), *further)
        return result, time.perf_counter() - begin, passed


class _RaisedUpstream(PiperError):
    """The error a ``debug=True`` Piper raised for an item, carried on in
    that item's slot to the Pipers it feeds.

    Raising it inside them would end the generators that read their inboxes
    (and, read by a NuMap's feeder, it would only become that item's error):
    the rest of the stream would be lost, and a NuMap task nobody reads any
    more can fill a shared buffer and stall the other tasks. Carried as an
    item, it is counted like any error, and the ``next()`` of the output
    Piper it reaches raises the original error (``original``). A Worker
    whose inbox holds it and other errors passes it on (``passed_on_first``,
    see ``find_error``), so a join cannot swap it for an ordinary error.

    Arguments: ``message`` (the original's), ``original`` (the PiperError
    raised) and ``token`` (a number naming this raise, given a new one by
    default; see ``__reduce__``).
    """

    passed_on_first = True
    _tokens = itertools.count()

    def __init__(
        self, message: str, original: PiperError, token: int | None = None
    ) -> None:
        super().__init__(message, original)
        self.original = original
        self.token = next(self._tokens) if token is None else token

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled to go to a worker process, which only passes it back. The
        # original may not unpickle there (an exception class whose __init__
        # takes other arguments than its args), and that would turn the
        # raise into an ordinary error of the item: a plain PiperError with
        # its message stands in for it, and the Piper that sent it puts the
        # original back by token when the result returns (_with_original).
        stand_in = PiperError(str(self.original))
        return (_RaisedUpstream, (str(self), stand_in, self.token))


class _Failure:
    """A result slot that the map engine filled with an exception."""

    def __init__(self, error: PiperError) -> None:
        self.error = error


def _takes_slot(item: Any) -> bool:
    """Whether a result (raw or made an item) stands for an input item; the
    error a timeout puts ahead of a late result does not."""
    error = item.error if isinstance(item, _Failure) else item
    return not (isinstance(error, PiperError) and error._ahead_of_late_result)


class _Deferred:
    """An iterator built on first use (upstream streams exist only after start)."""

    def __init__(self, build: Callable[[], Iterator[Any]]) -> None:
        self._build = build
        self._iterator: Iterator[Any] | None = None

    def __iter__(self) -> _Deferred:
        return self

    def __next__(self) -> Any:
        if self._iterator is None:
            self._iterator = self._build()
        return next(self._iterator)


def _checked_timeout(timeout: Any, name: str | None, imap: Any) -> float | None:
    """The Piper's ``timeout`` argument checked (see ``timeout_seconds``:
    ``inf`` and timeouts too long to wait for become None, no timeout).

    Raises PiperError for nan, a negative number or anything but a number
    or None. A timeout on a linear Piper (``imap`` None) is ignored, with
    a warning (only a NuMap's ``next`` can time out; 1.x ignored it
    silently, and pipeline files saved before may hold one).
    """
    try:
        seconds = timeout_seconds("Piper: 'timeout'", timeout)
    except (TypeError, ValueError) as error:
        raise PiperError(str(error)) from None
    if seconds is not None and imap is None:
        label = "Piper" if name is None else f"Piper {name!r}"
        warnings.warn(
            f"{label}: 'timeout' ({timeout!r} s) applies only to a Piper on a "
            "NuMap and is ignored here; give it parallel=NuMap(...), or leave "
            "timeout=None",
            stacklevel=3,
        )
        return None
    return seconds


def _flag(name: str, value: Any) -> bool:
    """``value`` of the argument ``name``, which must be True or False, or
    1 or 0 as 1.x scripts write them (a string such as "no" would be
    taken as True)."""
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise PiperError(f"Piper: '{name}' must be True or False, got {value!r}")


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PiperError(f"Piper: '{name}' must be an int >= 1, got {value!r}")
    return value


class Piper:
    """A processing node: evaluates a Worker on the items of its inbox.

    Arguments:
      - worker: a Worker, a Piper (its Worker is reused), a callable or a
        sequence of callables/Workers (made into a Worker).
      - parallel [default: False]: False for a linear Piper (built-in lazy
        ``map``) or a NuMap to evaluate items on.
      - consume [default: 1]: input items taken from every upstream Piper per
        evaluation. With n > 1, inbox entry j is a tuple of n items from the
        j-th upstream Piper.
      - produce [default: 1]: output items made from each result: the result
        must be a sequence of that many items, or with ``repeat=True`` it is
        repeated that many times.
      - spawn [default: 1]: how many copies of the worker (NuMap tasks) share
        the inbox; the output keeps input order.
      - timeout [default: None]: seconds to wait for a result of a parallel
        Piper; on expiry a PiperError wrapping TimeoutError is returned in
        the stream (not raised). If the NuMap has ``skip=True`` the late result
        is dropped, so the error takes its slot; otherwise one error comes
        per timeout that passes, then the late result (so a Dagger refuses
        such a Piper upstream of a join or a consume>1 Piper); such an error
        stands for no item, and with spawn or produce > 1 comes ahead of its
        block, whose order it leaves alone. ``inf``, or
        more than ``threading.TIMEOUT_MAX`` seconds, means None (no
        timeout); nan and a negative number are refused; a linear Piper
        ignores a timeout, with a warning. A Piper
        with a timeout is never natively chained (see ``can_chain_from``).
      - branch [default: None]: sort key among Pipers that are not upstream
        or downstream of each other (see Dagger).
      - debug [default: False]: raise errors instead of returning them:
        ``next()`` of the output Piper that the failed item reaches raises
        its PiperError in its place (the Pipers in between pass it on).
      - name [default: None]: a label (defaults to the Worker's name).
      - track [default: False]: keep results in the NuMap (``_tasks_tracked``);
        ignored for linear Pipers.
      - repeat [default: False]: see ``produce``.

    The product ``produce * spawn`` of an upstream Piper must equal
    ``consume * spawn`` of each downstream Piper (a Dagger checks this).

    Raises PiperError for invalid arguments.

    Attributes: ``imap`` is the NuMap (None for a linear Piper; stopping
    passes ``ends`` on to it); ``parallel`` gives the same NuMap, or False,
    as the argument is documented (derived from ``imap``, read-only).

    States: new -> connect -> connected -> start -> started -> stop ->
    stopped -> disconnect -> new. Every method checks the state it needs and
    raises a PiperError naming the Piper and the call to make instead.
    """

    def __init__(
        self,
        worker: Any,
        parallel: Any = False,
        consume: int = 1,
        produce: int = 1,
        spawn: int = 1,
        timeout: float | None = None,
        branch: Any = None,
        debug: bool = False,
        name: str | None = None,
        track: bool = False,
        repeat: bool = False,
    ) -> None:
        self.worker: Worker
        self.imap: Any
        if isinstance(worker, Piper):
            worker = worker.worker
        try:
            self.worker = worker if isinstance(worker, Worker) else Worker(worker)
        except WorkerError as error:
            raise PiperError(f"Piper: cannot make a Worker: {error}", error) from None
        linear = parallel in (False, None)
        if not linear and not hasattr(parallel, "add_task"):
            raise PiperError(
                f"Piper: 'parallel' must be False or a NuMap, got {parallel!r}"
            )
        self.imap = None if linear else parallel
        self.consume = _positive_int("consume", consume)
        self.produce = _positive_int("produce", produce)
        self.spawn = _positive_int("spawn", spawn)
        self.timeout = _checked_timeout(timeout, name, self.imap)
        self.branch = branch
        self.debug = _flag("debug", debug)
        if name is not None and not isinstance(name, str):
            raise PiperError(f"Piper: 'name' must be a str or None, got {name!r}")
        self.name = name or self.worker.name
        self.track = _flag("track", track)
        self.repeat = _flag("repeat", repeat)
        self.log = get_logger(piper=self.name)
        self.inbox: list[Any] = []
        self.state = "new"
        self._consumers: list[Piper] = []
        self._tasks: list[int] = []
        self._task_iterators: list[Any] = []
        self._copies: list[Iterator[Any]] = []
        self._chained_from: Piper | None = None
        # Set by a Dagger: native NuMap chaining from the upstream Piper is
        # safe for this Piper (see _chain_source).
        self._chain_allowed = False
        self._outbox: Iterator[Any] | None = None
        self._tee: Tee | None = None
        # Set by a Dagger before start: the queue bound of the Tee of a
        # Piper read by several Pipers (see tee_bound; None: worked out
        # from the Pipers reading it directly).
        self._tee_bound: int | None = None
        self._stages: set[int] = set()
        # Counters: ``stats`` (items_in, items_out, errors, busy seconds),
        # read as a whole through ``counters()``, which copies the dict under
        # ``_stats_lock``. The hot path takes that lock at most once per item:
        #   - items_in of a Piper that reads its own inbox is written, without
        #     the lock, only by the thread running the inbox generator
        #     (``_counted_rows``): a generator never runs in two threads at
        #     once, so it has one writer at a time, and under the GIL a copy
        #     of the dict sees it before or after an increment, never torn.
        #   - items_out, errors and busy change together under the lock, once
        #     per output item (``_count_out``), or once per item a chained
        #     downstream Piper reports for this one (``_passed``).
        #   - ``_pending_busy`` (busy seconds of evaluations whose items are
        #     not yet out) and ``_pending_in`` (items in of a natively chained
        #     Piper, which reads no inbox) are written only by the thread
        #     running the outbox generator (and reset_stats, before a run);
        #     ``_count_out`` moves them into ``stats`` with the next output
        #     item, and the outbox's end moves whatever is left (nothing,
        #     when every evaluation gave items).
        # So every snapshot has errors <= items_out, and for a Piper with
        # consume = produce = 1, items_out <= items_in (an item is counted in
        # before it can be counted out; a timeout without the NuMap's skip
        # adds items out, see ``timeout``); at the end each counter is exact.
        #
        # An error that ``next()`` raises in its place (debug=True) counts
        # out as an error too, as it does in every Piper it passed through.
        # Not counted out: whatever comes after ``discard_rest()``
        # (``_discarding``, set by the thread that then runs the outbox
        # generator itself).
        self._stats_lock = threading.Lock()
        self._pending_busy = 0.0
        self._pending_in = 0
        self._discarding = False
        # The original errors of the debug raises in this Piper's inboxes,
        # by token, with how many items carrying each are in its NuMap (one
        # raise may fill several slots: produce>1 upstream copies it); see
        # _RaisedUpstream. The thread feeding the NuMap adds, the one
        # reading its results takes away: under _held_lock.
        self._held_originals: dict[int, tuple[PiperError, int]] = {}
        self._held_lock = threading.Lock()
        self.reset_stats()

    # --- statistics -------------------------------------------------------

    def reset_stats(self) -> None:
        """Zero the counters: items in, items out, errors, busy seconds."""
        with self._stats_lock:
            self.stats = {"items_in": 0, "items_out": 0, "errors": 0, "busy": 0.0}
            self._pending_busy = 0.0
            self._pending_in = 0

    def counters(self) -> dict[str, Any]:
        """A consistent copy of ``stats`` (safe while the pipeline runs)."""
        with self._stats_lock:
            return dict(self.stats)

    @property
    def parallel(self) -> Any:
        """The NuMap this Piper evaluates on (``imap``), or False if linear."""
        return False if self.imap is None else self.imap

    @property
    def stride(self) -> int:
        """Items moved per block: the NuMap's stride, 1 for a linear Piper."""
        if self.imap is None:
            return 1
        return int(getattr(self.imap, "stride", 1) or 1)

    def __repr__(self) -> str:
        return f"Piper({self.name!r}, {self.state})"

    # --- connecting -------------------------------------------------------

    def connect(self, inbox: Sequence[Any]) -> None:
        """Connect to upstream Pipers (or input data streams), in this order.

        Each element of ``inbox`` is a Piper or an iterable of input items;
        an Exception that such an iterable raises instead of an item is that
        item's error (a PiperError in its place; after 100 in a row with no
        item between, the input is ended). A parallel Piper adds its
        ``spawn`` tasks to its NuMap here, so upstream Pipers on the same
        NuMap must be connected first.

        Raises PiperError if already connected or ``inbox`` is empty.
        """
        if self.state != "new":
            raise PiperError(
                f"Piper {self.name!r} is already connected; disconnect() it first"
            )
        self._check_inbox(inbox)
        upstream_pipers = [source for source in inbox if isinstance(source, Piper)]
        for source in upstream_pipers:
            if source.state == "new":
                raise PiperError(
                    f"Piper {self.name!r}: upstream Piper {source.name!r} is not "
                    "connected; connect upstream Pipers first"
                )
        # Registered before the tasks are made (native chaining counts the
        # readers of the upstream Piper) and taken back if making them fails:
        # a stale registration would make the upstream Piper fan out to a
        # reader that never reads (its Tee branch would buffer everything).
        for source in upstream_pipers:
            source._consumers.append(self)
        self.inbox = list(inbox)
        try:
            self._make_tasks()
        except BaseException as error:
            self._undo_connect(error)
            raise
        self._tasks = [task.task for task in self._task_iterators]
        self._outbox = self._make_outbox()
        self._discarding = False
        self.state = "connected"

    def _check_inbox(self, inbox: Any) -> None:
        """Raise PiperError unless ``inbox`` is a non-empty sequence of
        Pipers and iterables (checked without calling ``iter()``, which may
        have side effects, e.g. on a file)."""
        if (
            isinstance(inbox, str | bytes)
            or not isinstance(inbox, Sequence)
            or not inbox
        ):
            raise PiperError(
                f"Piper {self.name!r}: connect() needs a non-empty sequence of "
                f"upstream Pipers or input iterables, got {inbox!r}"
            )
        for index, source in enumerate(inbox):
            if not isinstance(source, Piper) and not is_iterable(source):
                raise PiperError(
                    f"Piper {self.name!r}: connect() got inbox[{index}] = "
                    f"{source!r}, which is neither a Piper nor an iterable of "
                    "input items; give e.g. a list, a range or a generator"
                )

    def _make_tasks(self) -> None:
        """Make the map copies or NuMap tasks that evaluate the inbox."""
        self._task_iterators = []
        self._held_originals = {}
        self._chained_from = self._chain_source()
        if self._chained_from is not None:
            upstream = self._chained_from
            chained = Chained(self.worker, upstream.name)
            self._add_task(chained, upstream._task_iterators[0])
            return
        inboxes: Any = _Deferred(self._make_inboxes)
        if self.spawn == 1:
            views = [inboxes]
        else:
            splitter = Splitter(inboxes, self.spawn, self.stride)
            views = [splitter.view(t) for t in range(self.spawn)]
        timed = Timed(self.worker)
        if self.imap is None:
            self._copies = [map(timed, view) for view in views]
            return
        for view in views:
            self._add_task(timed, view)

    def _add_task(self, func: Callable[..., Any], iterable: Any) -> None:
        """Add one task to the NuMap; its errors become a PiperError."""
        try:
            task = self.imap.add_task(func, iterable, track=self.track)
        except Exception as error:
            numap = getattr(self.imap, "name", repr(self.imap))
            raise PiperError(
                f"Piper {self.name!r}: cannot add its task to NuMap {numap!r}: {error}",
                error,
            ) from error
        self._task_iterators.append(task)

    def _undo_connect(self, error: BaseException) -> None:
        """Take back what a connect() that failed with ``error`` did (the
        tasks it added too).

        ``error`` is what the caller must see: should popping the tasks fail
        as well, that failure is added to it as a note instead of replacing
        it, and the rest is still undone.
        """
        added = len(self._task_iterators)
        try:
            if added and self.imap is not None:
                self.imap.pop_task(added)
        except Exception as cleanup:
            numap = getattr(self.imap, "name", repr(self.imap))
            error.add_note(
                f"Piper {self.name!r}: undoing the failed connect() also failed: "
                f"NuMap {numap!r}.pop_task({added}) raised {cleanup!r}, so the "
                f"NuMap may still hold {added} task(s) of this Piper; make a "
                "new NuMap before connecting again"
            )
        finally:
            self._release_inbox()

    def _release_inbox(self) -> None:
        """Stop reading the upstream Pipers and drop what connect() made."""
        for source in self.inbox:
            if isinstance(source, Piper) and self in source._consumers:
                source._consumers.remove(self)
        self.inbox = []
        self._tasks = []
        self._task_iterators = []
        self._copies = []
        self._chained_from = None
        self._outbox = None
        self._tee = None
        self._tee_bound = None
        self._stages = set()

    def can_chain_from(self, upstream: Piper, readers: int) -> bool:
        """Whether this Piper could read ``upstream`` by native NuMap chaining.

        Only when nothing in between needs the parent: both on the same
        NuMap, ``upstream`` read by this Piper only (``readers`` == 1), all
        of consume, produce and spawn 1 across the pipe, no upstream
        timeout or debug (both act in the parent), and no timeout of this
        Piper: its results would come with the upstream Piper's, so a
        result late in either would be charged to both (NuMap also warns
        against timeouts on chained tasks).
        """
        if self.imap is None or upstream.imap is not self.imap or readers != 1:
            return False
        settings = (upstream.spawn, upstream.produce, self.consume, self.spawn)
        no_timeouts = upstream.timeout is None and self.timeout is None
        return settings == (1, 1, 1, 1) and not upstream.debug and no_timeouts

    def _chain_source(self) -> Piper | None:
        """The upstream Piper to read through native NuMap chaining, if any.

        A Dagger allows it (``_chain_allowed``) only where no Piper on the
        same NuMap reads this one's results through the parent: the NuMap's
        feeder never waits for a natively chained task, so such a reader
        could wait for results that are never fed.
        """
        if not self._chain_allowed or len(self.inbox) != 1:
            return None
        upstream = self.inbox[0]
        if not isinstance(upstream, Piper):
            return None
        if not self.can_chain_from(upstream, len(upstream._consumers)):
            return None
        return upstream

    def disconnect(self, forced: bool = False) -> None:
        """Disconnect from the upstream Pipers or input data.

        A parallel Piper removes its tasks from its NuMap; they must be the
        last tasks added to it (disconnect downstream Pipers first), unless
        ``forced`` is True, which removes all tasks of the NuMap.

        Raises PiperError if not connected, or started and not stopped.
        """
        if self.state == "new":
            raise PiperError(f"Piper {self.name!r} is not connected")
        if self.state == "started" and self.imap is not None:
            raise PiperError(
                f"Piper {self.name!r} is running on a NuMap; stop() it before "
                "disconnect()"
            )
        if self.imap is not None:
            self._pop_tasks(forced)
            _numaps.forget(self.imap)
        # Raises whose items never came back (given up to a timeout, or
        # left in the map by a stop) are kept no longer.
        self._held_originals = {}
        self._release_inbox()
        self.state = "new"

    def _pop_tasks(self, forced: bool) -> None:
        tasks = getattr(self.imap, "_tasks", None)
        if forced:
            if tasks:
                self.imap.pop_task(True)
            return
        last = max(self._tasks) + 1 if self._tasks else 0
        if tasks is not None and len(tasks) != last:
            raise PiperError(
                f"Piper {self.name!r}: its NuMap tasks {self._tasks} are not the "
                "last ones added; disconnect downstream Pipers first or use "
                "forced=True"
            )
        if self._tasks:
            self.imap.pop_task(len(self._tasks))

    # --- starting and stopping -------------------------------------------

    def start(self, stages: Sequence[int] | None = None) -> None:
        """Make the Piper ready to return results.

        Stage 0 prepares the fan-out to downstream Pipers; stage 1 starts the
        NuMap's pool; stage 2 its feeder and collector. Default: (0,) for a
        linear Piper, (0, 1, 2) for a parallel one. Pipers sharing a NuMap are
        started upstream first with (0, 1), then all with (2,). A NuMap is
        started only once whatever the number of Pipers on it. Stages 1 and 2
        do nothing for a linear Piper.

        Raises PiperError if not connected, ``stages`` is not a sequence of
        them, or a stage is repeated.
        """
        if stages is None:
            stages = (0,) if self.imap is None else (0, 1, 2)
        if isinstance(stages, str | bytes) or not isinstance(stages, Sequence):
            raise PiperError(
                f"Piper {self.name!r}: start() takes a sequence of stages "
                f"(0, 1, 2), e.g. (0,) or (0, 1, 2), got {stages!r}"
            )
        if self.state not in ("connected", "started"):
            raise PiperError(
                f"Piper {self.name!r} is {self.state}; only a connected Piper can "
                "be started (connect() it first)"
            )
        for stage in stages:
            if stage not in (0, 1, 2):
                raise PiperError(f"Piper {self.name!r}: unknown start stage {stage!r}")
            if stage in self._stages:
                raise PiperError(f"Piper {self.name!r}: stage {stage} already started")
        for stage in sorted(stages):
            if stage == 0:
                if len(self._consumers) > 1:
                    assert self._outbox is not None
                    self._tee = Tee(
                        self._outbox, len(self._consumers), self._bound_of_tee()
                    )
            elif self.imap is not None:
                _numaps.start_stage(self.imap, stage)
            self._stages.add(stage)
        if 0 in self._stages:
            self.state = "started"

    def _bound_of_tee(self) -> int:
        """How many items one reader of this Piper may lag behind another:
        ``_tee_bound`` set by a Dagger (which looks further downstream, see
        ``Dagger._set_tee_bounds``), or else enough for the Pipers reading
        it directly to give a result each."""
        if self._tee_bound is not None:
            return self._tee_bound
        return tee_bound(max(reads_needed(r, 1) for r in self._consumers))

    def stop(self, forced: bool = False, **kwargs: Any) -> None:
        """Stop the Piper; for a parallel one, stop its NuMap (once).

        ``forced`` and the keyword arguments are passed on to the NuMap's
        ``stop``: for a NuMap, ``ends`` are the task ids not consumed inside
        the NuMap and ``forced`` must be True if results are still pending
        (see ``NuMap.stop``). A linear Piper checks them the same way and
        ignores them. Raises TypeError naming a keyword the NuMap's ``stop``
        does not take, PiperError if the Piper was not started.
        """
        self._check_stop_keywords(forced, kwargs)
        if self.state != "started":
            raise PiperError(
                f"Piper {self.name!r} is {self.state}; only a started Piper can "
                "be stopped"
            )
        if self.imap is not None:
            _numaps.stop(self.imap, forced=forced, **kwargs)
        self.state = "stopped"

    def _check_stop_keywords(self, forced: bool, kwargs: dict[str, Any]) -> None:
        """Raise TypeError if the NuMap's ``stop`` would not take ``kwargs``."""
        stop = NuMap.stop if self.imap is None else self.imap.stop
        try:
            signature = inspect.signature(stop)
        except (TypeError, ValueError):
            return  # a stop without a readable signature checks for itself
        try:
            signature.bind_partial(forced=forced, **kwargs)
        except TypeError as error:
            names = [name for name in signature.parameters if name != "self"]
            raise TypeError(
                f"Piper {self.name!r}: stop() {error} (keywords go to the "
                f"NuMap's stop, which takes {', '.join(names)})"
            ) from None

    # --- results ----------------------------------------------------------

    def _stream_for(self, consumer: Piper) -> Iterator[Any]:
        """The items ``consumer`` reads, errors to raise carried as
        ``_RaisedUpstream`` items (see there)."""
        if 0 not in self._stages or self._outbox is None:
            raise PiperError(
                f"Piper {self.name!r} was not started but {consumer.name!r} reads "
                "from it; start upstream Pipers first"
            )
        if self._tee is None:
            stream: Iterator[Any] = self._outbox
        else:
            stream = self._tee.branch(self._consumers.index(consumer))
        # Only a debug=True Piper has errors to turn into raises; any other
        # passes its items, _RaisedUpstream ones included, as they are.
        return map(self._for_downstream, stream) if self.debug else stream

    def _error_to_raise(self, item: Any) -> PiperError | None:
        """The error that reading ``item`` must raise, or None: this Piper's
        own errors with ``debug=True``, and the original of an error that a
        debug=True Piper upstream raised."""
        if isinstance(item, _RaisedUpstream):
            return item.original
        if self.debug and isinstance(item, PiperError):
            return item
        return None

    def _for_downstream(self, item: Any) -> Any:
        """``item`` as a downstream Piper reads it: an error to raise goes
        on as a ``_RaisedUpstream`` in its slot."""
        error = self._error_to_raise(item)
        if error is None or isinstance(item, _RaisedUpstream):
            return item
        return _RaisedUpstream(str(error), error)

    def _make_inboxes(self) -> Iterator[Any]:
        sources = []
        for index, source in enumerate(self.inbox):
            if isinstance(source, Piper):
                sources.append(source._stream_for(self))
            else:
                sources.append(input_items(iter(source), self._input_error(index)))
        rows = self._counted_rows(zip_inputs(sources, self._uneven_inputs))
        inboxes = rows if self.consume == 1 else group(rows, self.consume, self.stride)
        if self.imap is None or not self._debug_upstream():
            return inboxes
        return map(self._hold_original, inboxes)

    def _input_error(self, index: int) -> Callable[[Exception], PiperError]:
        """The error item for an exception that input ``index`` (an
        iterable, not a Piper) raised instead of giving an item: the same
        whether this Piper is linear or parallel."""

        def error_item(error: Exception) -> PiperError:
            return PiperError(
                f"Piper {self.name!r}: input {index} raised {error!r} "
                "instead of giving an item",
                error,
            )

        return error_item

    def _debug_upstream(self) -> bool:
        """Whether a Piper upstream, direct or not, has ``debug=True``: only
        such a Piper puts ``_RaisedUpstream`` items in the stream (which
        ``_hold_original`` looks for in every inbox)."""
        seen: set[int] = set()
        pending = [source for source in self.inbox if isinstance(source, Piper)]
        while pending:
            piper = pending.pop()
            if id(piper) in seen:
                continue
            seen.add(id(piper))
            if piper.debug:
                return True
            pending.extend(p for p in piper.inbox if isinstance(p, Piper))
        return False

    def _let_go_of_inputs(self) -> None:
        """Tell the Tees upstream that this Piper reads no more: a join
        ends with its shortest input, and a Tee must not keep its other
        readers waiting for it to read the rest of a longer one. Through
        an upstream Piper that only this one reads, which is then read by
        nobody, the Tees further up are told too."""
        for source in self.inbox:
            if not isinstance(source, Piper) or self not in source._consumers:
                continue
            if source._tee is not None:
                source._tee.abandon(source._consumers.index(self))
            elif source._consumers == [self]:
                source._let_go_of_inputs()

    def _hold_original(self, inbox: Any) -> Any:
        """``inbox`` as the NuMap gets it. If the Worker will pass on a debug
        raise from it, that raise alone (the Worker reads nothing else of
        it, and the rest, another branch's error say, may not unpickle in
        a worker process), its original error kept until the item's
        result comes back (see ``_RaisedUpstream.__reduce__``)."""
        error = find_error(inbox)
        if not isinstance(error, _RaisedUpstream):
            return inbox
        with self._held_lock:
            _, count = self._held_originals.get(error.token, (None, 0))
            self._held_originals[error.token] = (error.original, count + 1)
        return (error,)

    def _take_original(self, token: int) -> PiperError | None:
        """The original error held under ``token`` for one item that came
        back, or None."""
        with self._held_lock:
            entry = self._held_originals.get(token)
            if entry is None:
                return None
            original, count = entry
            if count == 1:
                del self._held_originals[token]
            else:
                self._held_originals[token] = (original, count - 1)
            return original

    def _with_original(self, item: Any) -> Any:
        """``item``; for a debug raise back from the NuMap, that raise with
        the original error that this Piper, or the head of the natively
        chained run it ends, kept when it sent the item."""
        if not isinstance(item, _RaisedUpstream):
            return item
        holder: Piper | None = self
        while holder is not None:
            original = holder._take_original(item.token)
            if original is item.original:
                return item  # it never left this process
            if original is not None:
                return _RaisedUpstream(str(item), original, item.token)
            holder = holder._chained_from
        return item

    def _uneven_inputs(self, ended: int, rows: int, left: list[int]) -> None:
        """Warn that input ``ended`` ran out while inputs ``left`` had more."""
        items = "item" if rows == 1 else "items"
        others = ", ".join(str(index) for index in left)
        verb = "has" if len(left) == 1 else "have"
        self.log.warning(
            f"input {ended} of Piper {self.name!r} ended after {rows} {items} "
            f"while input {others} still {verb} items; the rest of input "
            f"{others} is not read (a join's inputs differ in length: a "
            "mistake, or a last group cut short by consume)",
            ended_input=ended,
            rows=rows,
            unread_inputs=left,
        )

    def _counted_rows(self, rows: Iterator[Any]) -> Iterator[Any]:
        """``rows``, counted in; once they end (or are dropped), this Piper
        lets go of its inputs (see ``_let_go_of_inputs``)."""
        try:
            for row in rows:
                self.stats["items_in"] += 1  # one writer, no lock: see __init__
                yield row
        finally:
            self._let_go_of_inputs()

    def _next_of_copy(self, copy: int) -> Any:
        if self.imap is None:
            return next(self._copies[copy])
        try:
            # (NuMap.next pulls no input of a Piper's task on this thread: it
            # feeds inline only from sequences in memory, and a Piper's inbox
            # is a generator, whose pull could re-enter a lock held here.)
            return self.imap.next(timeout=self.timeout, task=self._tasks[copy])
        except StopIteration:
            raise
        except TimeoutError as error:
            failure = PiperError(
                f"Piper {self.name!r}: no result within {self.timeout} s", error
            )
            # Without skip the late result still comes, in its item's slot.
            failure._ahead_of_late_result = not self.imap.skip
            return _Failure(failure)
        except Exception as error:
            return _Failure(
                PiperError(f"Piper {self.name!r}: the NuMap failed: {error!r}", error)
            )

    def _to_item(self, raw: Any) -> Any:
        if isinstance(raw, _Failure):
            item: Any = raw.error
            if self._chained_from is not None:
                self._count_lost_in_chain(str(item))
        else:
            if self._chained_from is not None:
                result, seconds, passed = raw
                upstream: Piper | None = self._chained_from
                for upstream_seconds, upstream_failed in passed:
                    assert upstream is not None
                    upstream._passed(upstream_seconds, upstream_failed)
                    upstream = upstream._chained_from
                self._pending_in += 1
            else:
                result, seconds = raw
            self._pending_busy += seconds
            item = self._with_original(_as_item(result, self.name))
        return item

    def _count_lost_in_chain(self, error: str) -> None:
        """Count an item the map engine lost (e.g. with a worker process
        that died) in a natively chained run of Pipers: its result never
        left the worker, and which Piper of the run was evaluating it is not
        known, so every upstream Piper of the run counts it in and out as
        an error ``error``, and this one counts it in (and out with the
        error item it returns)."""
        self._pending_in += 1
        upstream = self._chained_from
        while upstream is not None:
            upstream._passed(0.0, error)
            upstream = upstream._chained_from

    def _passed(self, seconds: float, failed: str | None) -> None:
        """Count an item this Piper made that went on inside its NuMap
        (``failed``: the error message if it was an error)."""
        items_in = 0 if self._chained_from is None else 1
        self._add_counts(1, failed, seconds, items_in)

    def _take_pending(self) -> tuple[float, int]:
        """The pending busy seconds and items in, now zeroed."""
        pending = self._pending_busy, self._pending_in
        self._pending_busy, self._pending_in = 0.0, 0
        return pending

    def _count_out(self, item: Any) -> None:
        """Count ``item`` out, with the pending busy seconds and items in."""
        failed = str(item) if isinstance(item, PiperError) else None
        self._add_counts(1, failed, *self._take_pending())

    def _flush_pending(self) -> None:
        """Add what is pending without an item (the outbox has ended)."""
        if self._pending_busy or self._pending_in:
            self._add_counts(0, None, *self._take_pending())

    def _add_counts(
        self, items_out: int, failed: str | None, busy: float, items_in: int
    ) -> None:
        """One locked update of the counters (``failed``: the error message
        of the item out, if it is an error). A failed item is logged with
        its place in this Piper's output (``item_out``, from 0), which is
        its input item's place along 1:1 Pipers."""
        with self._stats_lock:
            stats = self.stats
            if items_in:  # never rewrite the lock-free items_in of an inbox
                stats["items_in"] += items_in
            stats["items_out"] += items_out
            stats["busy"] += busy
            if failed is not None:
                stats["errors"] += 1
                place = stats["items_out"] - 1
        if failed is not None:
            self.log.warning("item failed", error=failed, item_out=place)

    def _expand(self, item: Any) -> Sequence[Any]:
        n = self.produce
        if self.repeat or isinstance(item, PiperError):
            return [item] * n
        try:
            items = tuple(item)
        except TypeError:
            items = ()
        if len(items) == n:
            return items
        error = PiperError(
            f"Piper {self.name!r}: produce={n} needs each result to be a sequence "
            f"of {n} items (or repeat=True), got {item!r}"
        )
        return [error] * n

    def _single_copy(self) -> Iterator[Any]:
        while True:
            try:
                yield self._next_of_copy(0)
            except StopIteration:
                return

    def _make_outbox(self) -> Iterator[Any]:
        if self.spawn == 1:
            results = self._single_copy()
        else:
            results = merge(self._next_of_copy, self.spawn, self.stride, _takes_slot)
        items: Iterator[Any] = map(self._to_item, results)
        if self.produce > 1:
            items = unroll(items, self.produce, self.stride, self._expand, _takes_slot)
        try:
            for item in items:
                if not self._discarding:
                    self._count_out(item)
                yield item
        finally:
            self._flush_pending()

    def tracked(self) -> dict[int, Any]:
        """Results stored by the NuMap for a tracked Piper, by input position."""
        if self.imap is None or not self.track:
            return {}
        store = getattr(self.imap, "_tasks_tracked", {})
        results: dict[int, Any] = {}
        s, k = self.stride, self.spawn
        for copy, task in enumerate(self._tasks):
            for index, raw in dict(store.get(task, {})).items():
                position = ((index // s) * k + copy) * s + index % s
                results[position] = raw[0] if isinstance(raw, tuple) else raw
        return dict(sorted(results.items()))

    def next(self) -> Any:
        """Return the next result (a PiperError in place of a failed one).

        Raises StopIteration at the end, PiperError if the Piper is not
        started or other Pipers read its output, and the PiperError of a
        failed item in its place with ``debug=True`` here or on a Piper
        upstream. The stream goes on after such a raise: the next call
        returns the next item.
        """
        outbox = self._own_output("next()")
        item = next(outbox)
        error = self._error_to_raise(item)
        if error is not None:
            raise error
        return item

    def discard_rest(self) -> None:
        """Read the rest of this Piper's output to its end and throw it
        away, uncounted (raised errors too: nothing is raised).

        For a run that has failed: an output nobody reads any more keeps
        its NuMap task's results in the buffer that the NuMap's other tasks
        share, and they could then never move. Raises PiperError as
        ``next()`` does if the Piper is not started or feeds other Pipers.
        """
        outbox = self._own_output("discard_rest()")
        self._discarding = True
        for _ in outbox:
            pass

    def _own_output(self, call: str) -> Iterator[Any]:
        """The outbox, for ``call`` to read; raises PiperError unless this
        Piper is started and no other Piper reads its output."""
        if self.state != "started":
            raise PiperError(
                f"Piper {self.name!r} is {self.state}; start() it before {call}"
            )
        if self._consumers:
            raise PiperError(
                f"Piper {self.name!r} feeds downstream Pipers; read their output"
            )
        assert self._outbox is not None
        return self._outbox

    def __iter__(self) -> Piper:
        return self

    def __next__(self) -> Any:
        return self.next()


def reads_needed(piper: Piper, results: int) -> int:
    """How many items ``piper`` may read before it gives ``results``
    results: whole blocks of strides, consume items per produce results
    (see ``Dagger._set_tee_bounds``)."""
    groups = -(-results // piper.produce)  # ceil
    return piper.consume * (groups + piper.stride * piper.spawn)
