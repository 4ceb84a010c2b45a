"""NuMap: the lazy, buffered, multi-task parallel map.

Data flow (one NuMap)::

    task iterables                                        consumers
    (or upstream _NuMapTask)                              (next / iteration)
          |                                                     ^
          v                                                     |
    [feeder thread] --submit(batch)--> [pool] --deliver--> per-task _Output
     takes `stride` items of task 0,    ThreadPool: worker     (ready deque,
     then of task 1, ... while the      threads run batches    pending batches)
     buffer has room; cuts them into    ProcessPool: results of     |
     batches of ceil(stride/workers)    local workers are received  |
          ^                             by a waiting consumer       |
          |                             (or a background receiver); |
          |                             remote: a reader per worker |
          +------------ buffer slot freed when next() hands out ----+

Who owns what:
  - whoever holds ``_feed_role`` pulls from the task iterables, advances
    the weave (:class:`_Weave`) and calls ``pool.submit``: normally the
    feeder thread, which waits on ``_feeder_wakeup`` while the buffer is
    full, and lets the role go while it pulls from an input that may wait
    (the role is never held across a wait on an input); a consumer that frees
    enough space while the feeder waits feeds one batch itself
    (``_feed_inline``), saving a thread hand-off, but only from an
    iterator over an in-memory sequence (a list, a range...): any other
    input may run the user's code, which may wait, even for
    this very consumer (a generator fed by what the consumer does with
    the results), and the result the consumer took would wait with it;
  - pool threads (thread workers, the process pool's background receiver,
    readers of remote channels) call ``_deliver`` with whole batches of
    results; ``_deliver`` wakes consumers (``_notify_results``);
  - consumers (any thread calling ``next`` or iterating) take single
    results; a consumer that takes one under the lock lends up to a batch
    more to the task's ``handed`` iterator, which iteration runs through
    in C (see numap._handout). With local worker processes, the first
    consumer that has to wait receives from the workers' pipes itself
    (``ProcessPool.receive``) and delivers what arrives, then feeds the
    next batch inline (from an in-memory sequence): a round trip to a
    worker then costs no thread hand-off in the parent.
The buffer accounting and the per-task outputs live under one lock,
``_lock``, shared by both conditions; the invariants are written next to
that state in NuMap.__init__ and in :class:`_Output`.

A chained task whose iterable is a task of the same NuMap (a task feeds
at most one task of its own map) is, unless that task is tracked, fused
into it: its function runs in the same worker call (see
:meth:`NuMap._fuse_chains`).
Otherwise it takes its input from that task's output directly, and only
results that are ready (the feeder never waits on its own map): the item
keeps the buffer slot it holds (a result handed to the next task is still
inside the map), so a chain cannot deadlock on its own buffer. The holder
of ``_feed_role`` makes those moves; while the feeder pulls from an input
that may wait (and may be waiting for such a chained task, read back
through another map), it lets the role go and any consumer waiting in this
map makes them instead.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import itertools
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import length_hint
from typing import Any

from numap import _handout, _interrupts, _lifetime, _pool, _waits
from numap._errors import NuMapError
from numap._hosts import parse_host_spec, ssl_plan
from numap._pool import ProcessPool, Raised, TaskSpec, ThreadPool, start_thread

# The main thread's Ctrl-C state, read on the per-result fast paths.
_CTRL_C = _interrupts.STATE

WORKER_TYPES = ("process", "thread")

# An input that raises this many times in a row, with no item between, is
# ended (see NuMap._input_failed).
INPUT_ERRORS_IN_A_ROW = 100

# How long a stop waits for a feeder that was still busy after the workers'
# grace time, once the workers are terminated.
STUCK_FEEDER_SECONDS = 1.0


# The iterators a consumer may pull from when it feeds the map inline: over
# sequences held in memory, whose next() runs no Python code of the user's
# and never waits.
_IN_MEMORY_SEQUENCES: tuple[Iterable, ...] = (
    [],
    (),
    range(0),
    range(2**64),  # a range beyond a C long has an iterator of its own
    "",
    "\u00e9",  # a str beyond ASCII has an iterator of its own too
    b"",
    bytearray(),
    {},
    {}.values(),
    {}.items(),
    set(),
    deque(),
)
_IN_MEMORY_ITERATORS = frozenset(
    type(iter(sequence)) for sequence in _IN_MEMORY_SEQUENCES
)


def _input_iterator(iterable: Iterable) -> Iterator:
    """``iter(iterable)``; if that raises, an iterator that raises the same
    error once, then ends.

    An exception raised by the input is that item's error (README): an
    ``__iter__`` that raises gives the task one error item and no more.
    Raised here, it would undo the start, and every next() would start
    the map again and raise it again, for ever. Only an Exception: a
    Ctrl-C while the map starts goes to the caller of start() or next().
    """
    try:
        return iter(iterable)
    except Exception as error:
        return _raising_once(error)


def _raising_once(error: Exception) -> Iterator:
    raise error
    yield  # a generator: raises when first pulled, then ends


def _popleft_many(source: deque, count: int) -> list:
    """The first ``count`` items of ``source``, removed from it.

    starmap calls ``source.popleft`` ``count`` times with no Python loop
    turn per item. On the per-result paths (lending a batch to ``handed``,
    a chained task taking its upstream's results) a list comprehension
    cost the parent ~6 % of its instructions per result with a stride of
    2048 (callgrind, ``bench/probe_latency.py instructions``).
    """
    return list(itertools.starmap(source.popleft, itertools.repeat((), count)))


class _Stopping(Exception):
    """Raised inside the feeder when the NuMap is being stopped."""


# What one feeding step achieved.
_PROGRESS = "progress"  # items entered the map, or a task's input ended
_NO_SPACE = "no space"  # the buffer is full: wait for next() to free slots
_NOTHING_READY = "nothing ready"  # a chained task's upstream has no result
_DONE = "done"  # every input has ended


class _Weave:
    """Whose turn it is to feed: ``stride`` items of each task in turn.

    Owned by the holder of NuMap._feed_role. ``active`` lists the tasks
    whose input has not ended, ``position`` indexes the one whose turn it
    is, ``left`` is what remains of its stride; ``sources`` holds each
    task's input iterator (None for a task chained to one of this map);
    ``in_memory[task]`` says whether that iterator is over a sequence in
    memory, which a consumer may feed from (see NuMap._feed_inline).
    """

    def __init__(
        self, sources: list[Iterator | None], stride: int, batch: int, active: list[int]
    ) -> None:
        self.sources = sources
        self.in_memory = [type(source) in _IN_MEMORY_ITERATORS for source in sources]
        self.stride = stride
        self.batch = batch
        self.active = active
        self.position = 0
        self.left = stride
        # Task -> (index of its input's last error, errors in a row up to
        # it): see NuMap._input_failed.
        self.input_errors: dict[int, tuple[int, int]] = {}

    def chained_tasks(self) -> list[int]:
        return [task for task in self.active if self.sources[task] is None]

    def end_turn(self, finished: bool) -> None:
        if finished:
            del self.active[self.position]
        else:
            self.position += 1
        if self.active:
            self.position %= len(self.active)
        self.left = self.stride

    def remove(self, task: int) -> None:
        """Drop a task whose input ended outside its turn; the turn stays."""
        index = self.active.index(task)
        del self.active[index]
        if index < self.position:
            self.position -= 1
        if self.active:
            self.position %= len(self.active)


class _Output:
    """The results of one task on their way to the consumer.

    Guarded by the NuMap's ``_lock``. Invariants:
      - ``ready`` holds results that may be handed out now, in order;
        entries that stand for errors are :class:`Raised`;
      - ``handed`` (an iterator, see _handout) holds up to a batch of
        results moved out of ``ready`` by a consumer, next in line;
        consumers take from it without the lock (a step of it is atomic),
        it is replaced only under the lock, once empty or to put a result
        back. ``lent`` of them hold buffer slots that
        are freed, all at once, when a consumer or the feeder short of space
        finds ``handed`` empty (so the buffer bound only gets stricter,
        never looser; the one exception: a result put back by a consumer
        that a held-back Ctrl-C stopped has its slot freed already, so
        until it is handed out the map may hold one item more);
      - ordered: ``pending`` maps the start index of a batch that arrived
        early to its values; ``merged`` is the index of the first result not
        yet moved to ``ready`` (no pending key is below it);
      - ``skipped`` (ordered) holds the indices given up by a ``next`` that
        timed out with skip=True whose results have not come yet, all below
        ``merged`` (giving one up moves ``merged`` past it) and, once
        ``total`` is known, below it; ``skip_count`` (unordered) counts such
        results still to be dropped, at most the ``total - arrived`` still
        to come (``arrived``: results delivered, unordered only); dropped
        results free their buffer slot;
      - ``maybe_errors`` is True whenever ``ready`` or ``pending`` may
        hold an error: set by a delivery that may hold one, cleared when a
        lend empties both (lends look for errors only while it is set);
      - ``entered`` counts items the feeder has pulled into the map; only
        the holder of NuMap._feed_role changes it, without the lock (one
        writer: readers see the old count or the new one);
        ``total`` is None until the task's input ends, then ``entered``;
      - ``taken`` counts results handed out, moved to ``handed``, passed to
        a chained task, or skipped; the task is
        finished when ``total is not None and taken >= total``.
    """

    __slots__ = (
        "ready",
        "handed",
        "lent",
        "pending",
        "merged",
        "skipped",
        "skip_count",
        "arrived",
        "entered",
        "total",
        "taken",
        "tracked",
        "lock",
        "maybe_errors",
        "ran",
        "popped",
    )

    def __init__(self, tracked: dict | None, lock: threading.Lock) -> None:
        # Whether the task ran in a start of its map: one added after the
        # map stopped has not, and reading it asks for a start().
        self.ran = False
        # Set by pop_task: an iterator made for this task must not read the
        # task added since under its id.
        self.popped = False
        self.ready: deque = deque()
        self.handed: Iterator = _handout.NOTHING
        self.pending: dict[int, list] = {}
        self.skipped: set[int] = set()
        self.tracked = tracked
        self.lock = lock  # the NuMap's _lock
        self.reset()

    def reset(self) -> None:
        self.ready.clear()
        self.drop_handed()
        self.pending.clear()
        self.skipped.clear()
        self.lent = 0
        self.maybe_errors = False
        self.merged = 0
        self.skip_count = 0
        self.arrived = 0
        self.entered = 0
        self.total: int | None = None
        self.taken = 0

    def finished(self) -> bool:
        return (
            self.total is not None
            and self.taken >= self.total
            and not self.ready
            and not length_hint(self.handed)
        )

    def lend(self, values: list) -> None:
        """(Holding lock, ``handed`` empty.) Lend ``values``, taken from the
        front of ``ready``, to ``handed``."""
        self.handed = _handout.lend(values, self.put_back, self.maybe_errors)
        if not self.ready and not self.pending:
            self.maybe_errors = False

    def put_back(self, value: Any) -> None:
        """Put ``value``, just taken, back first in line (a consumer that a
        held-back Ctrl-C stopped)."""
        with self.lock:
            self.handed = _handout.with_first(value, self.handed, self.put_back)

    def drop_handed(self) -> None:
        """(Holding lock.) Drop the results in ``handed``; iterators over
        it see them no more."""
        _handout.drain(self.handed)
        self.handed = _handout.NOTHING

    def end_input(self) -> None:
        """(Holding lock.) The task's input has ended: ``total`` is what
        entered. Results given up for items that never entered (timeouts
        while the input was about to end) will never come, so they are
        forgotten: waiting for them would keep the map from stopping
        itself at its end."""
        total = self.total = self.entered
        if self.skipped:
            self.skipped = {index for index in self.skipped if index < total}
        self.skip_count = min(self.skip_count, total - self.arrived)


class _Task:
    """A task as added: function, input, and where its results go."""

    __slots__ = ("spec", "iterable", "upstream", "output", "tracked")

    def __init__(
        self,
        spec: TaskSpec,
        iterable: Iterable | None,
        upstream: int | None,
        track: bool,
        lock: threading.Lock,
    ) -> None:
        self.spec = spec
        # None for a task reading a task of its own map: its iterable, a
        # _NuMapTask, holds the map, and the map would be in a reference
        # cycle that only Python's cyclic collector frees (see _lifetime).
        self.iterable = iterable
        self.upstream = upstream  # task id in the same NuMap, or None
        self.tracked: dict | None = {} if track else None
        self.output = _Output(self.tracked, lock)


class _NuMapTask:
    """Iterator over the results of one task of a NuMap.

    ``task`` is the task id; ``timeout`` and ``block`` apply to every step
    as to :meth:`NuMap.next`. Usable as the iterable of another
    task, in the same NuMap (chaining) or in another one.
    """

    def __init__(
        self, numap: NuMap, task: int, timeout: float | None = None, block: bool = True
    ) -> None:
        self.numap = numap
        self.task = task
        self.timeout = timeout
        self.block = block
        # Where results next in line are taken without the NuMap's lock.
        self._output = numap._tasks[task].output

    def __iter__(self) -> Iterator:
        """The task's results, in C from one to the next (see _handout);
        each step as a call of next() would be."""
        timeout = self.timeout if self.block else 0.0
        self._refuse_if_popped()
        return _handout.results(
            functools.partial(self.numap._next_run, self.task, timeout, self._output)
        )

    def __next__(self) -> Any:
        # As NuMap.__next__: one frame when a result is handed already; else
        # straight to _take_slowly once the map has started (next() would
        # add two frames and a second look at handed).
        # Also a fast path of _interrupts, as NuMap.__next__.
        output = self._output
        value = next(output.handed, _handout.NONE)
        if value is not _handout.NONE:
            if _CTRL_C.pending:
                _interrupts.raise_held_back(output.put_back, value)
            return value
        numap = self.numap
        if output.popped:
            raise _popped(numap.name, self.task)
        if not numap._ever_started:
            return numap.next(timeout=self.timeout, task=self.task, block=self.block)
        value = numap._take_slowly(self.task, self.timeout if self.block else 0.0)
        if type(value) is Raised:
            raise value.error
        return value

    def next(self) -> Any:
        return self.__next__()

    def _refuse_if_popped(self) -> None:
        """Raise NuMapError if this task was popped (pop_task): a task
        added since may have its id, and this iterator would take its
        results."""
        if self._output.popped:
            raise _popped(self.numap.name, self.task)

    def __repr__(self) -> str:
        return f"<_NuMapTask {self.task} of {self.numap.name}>"


def _popped(name: str, task_id: int) -> NuMapError:
    return NuMapError(
        f"{name}: task {task_id} of this iterator was popped (pop_task); use "
        "the iterator that add_task returned for the task now there, or "
        "get_task(id)"
    )


_live_numaps: weakref.WeakSet = weakref.WeakSet()


def _forget_the_parents_maps() -> None:
    # A process forked from one running maps (os.fork() in the program)
    # gets copies of them; ending those at its exit would end the
    # parent's workers.
    _live_numaps.clear()


os.register_at_fork(after_in_child=_forget_the_parents_maps)


@atexit.register
def _stop_live_numaps() -> None:
    # Registered after multiprocess.util (imported by numap._channel) has
    # registered its own exit handler, so this one runs first (atexit runs
    # in reverse order): workers are ended here while the pool still
    # knows them, and lost ones are not replaced during the exit.
    for numap in list(_live_numaps):
        numap._abandon()
    _lifetime.end_abandoned_maps()


class _DefaultTaskId(int):
    """The int 0, as get_task's default task id: ``task is _TASK_ZERO``
    tells the default from a task=0 given with task_id. Its repr is 0, as
    the contract's signature shows it."""

    def __repr__(self) -> str:
        return "0"


_TASK_ZERO = _DefaultTaskId(0)


def _check_positive(name: str, value: Any, minimum: int = 1, advice: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"NuMap({name}=...): expected an int, got {value!r}")
    if value < minimum:
        raise ValueError(f"NuMap({name}={value}): must be at least {minimum}{advice}")
    return value


def _task_args(args: Any, caller: str) -> tuple:
    if args is None:
        return ()
    if isinstance(args, Mapping):
        # tuple() of a dict would pass its keys as positional arguments.
        raise TypeError(
            f"{caller}(args={args!r}): args are extra positional arguments, "
            "e.g. args=(5,); give keyword arguments as kwargs, e.g. "
            "kwargs={'n': 5}"
        )
    if isinstance(args, str | bytes) or not isinstance(args, Iterable):
        raise TypeError(
            f"{caller}(args={args!r}): expected a sequence of extra "
            "positional arguments, e.g. args=(5,)"
        )
    return tuple(args)


def _task_kwargs(kwargs: Any, caller: str) -> dict:
    if kwargs is None:
        return {}
    if not isinstance(kwargs, Mapping):
        raise TypeError(
            f"{caller}(kwargs={kwargs!r}): expected a dict of keyword "
            "arguments, e.g. kwargs={'n': 5}"
        )
    return dict(kwargs)


def _check_timeout(method: str, timeout: Any) -> float | None:
    """``timeout`` as the waits take it: None (no limit) for None and for
    anything beyond threading.TIMEOUT_MAX, infinity included (a lock's
    wait refuses those: OverflowError). Raises TypeError for a timeout
    that is not a number, ValueError for a negative one or nan."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise TypeError(
            f"NuMap.{method}(timeout={timeout!r}): expected seconds as a number, "
            "or None to wait as long as it takes"
        )
    if not timeout >= 0:  # also refuses nan
        raise ValueError(
            f"NuMap.{method}(timeout={timeout!r}): must be 0 or more seconds"
        )
    if timeout > threading.TIMEOUT_MAX:
        return None
    return timeout


def _stage_numbers(stages: Any) -> set[int]:
    if isinstance(stages, str | bytes) or not isinstance(stages, Iterable):
        raise TypeError(
            f"NuMap.start(stages={stages!r}): expected a sequence of stages "
            "from 1 (workers) and 2 (feeding), e.g. (1, 2)"
        )
    chosen = set(stages)
    if not chosen or not chosen <= {1, 2}:
        raise ValueError(
            f"NuMap.start(stages={stages!r}): stages are 1 (workers) and 2 "
            "(feeding), e.g. (1, 2)"
        )
    return chosen


def _check_flag(name: str, value: Any, caller: str = "NuMap") -> bool:
    # A string is true whatever it says: ordered="no" would be ordered.
    if isinstance(value, str | bytes):
        raise TypeError(f"{caller}({name}={value!r}): expected True or False")
    return bool(value)


def _check_remote(worker_remote: Any) -> list[tuple[str, int]]:
    if isinstance(worker_remote, str | bytes):
        raise TypeError(
            "NuMap(worker_remote=...): expected a sequence of (host, n) pairs, "
            f"e.g. [('127.0.0.1', 2)], got the string {worker_remote!r}"
        )
    if (
        isinstance(worker_remote, Sequence)
        and len(worker_remote) == 2
        and isinstance(worker_remote[0], str)
        and not isinstance(worker_remote[1], Sequence)
    ):
        raise TypeError(
            "NuMap(worker_remote=...): expected a sequence of (host, n) pairs, "
            f"got the single pair {tuple(worker_remote)!r}; wrap it in a list: "
            f"worker_remote=[{tuple(worker_remote)!r}]"
        )
    hosts = []
    for entry in worker_remote:
        if not (isinstance(entry, Sequence) and len(entry) == 2):
            raise TypeError(
                "NuMap(worker_remote=...): each entry must be a (host, n) pair "
                f"like ('127.0.0.1:18812', 2), got {entry!r}"
            )
        host, number = entry
        if not isinstance(host, str) or not host:
            raise TypeError(
                f"NuMap(worker_remote=...): host must be 'host' or 'host:port', "
                f"got {host!r}"
            )
        parse_host_spec(host)  # a bad port is a ValueError now, not at start
        _check_positive(f"worker_remote[{host!r}] worker count", number)
        hosts.append((host, number))
    if hosts and importlib.util.find_spec("rpyc") is None:
        raise _rpyc_missing("it is not installed here")
    return hosts


def _check_remote_ssl(ssl: Any, hosts: list[tuple[str, int]] | None) -> Any:
    # Checked now, as worker_remote is: a misspelled option or a missing
    # certificate file would otherwise surface only at start.
    if ssl is None:
        return None
    if hosts is None:
        raise ValueError(
            "NuMap(worker_remote_ssl=...) was given without worker_remote: "
            "its SSL options are for remote hosts; give worker_remote=[(host, "
            "n)] too, or drop worker_remote_ssl"
        )
    ssl_plan([host for host, _ in hosts], ssl)  # raises naming the problem
    return ssl


def _start_interrupted() -> bool:
    # A Ctrl-C held back during the outermost start on the main thread is
    # raised once stage 1 ends. Remote workers, whose hosts may take many
    # seconds to answer, give their start up at once instead: the start is
    # undone and raises it, as it would have (see NuMap.start).
    return _interrupts.on_main_thread() and _CTRL_C.pending and _CTRL_C.depth == 1


def _rpyc_missing(why: str) -> ImportError:
    return ImportError(
        f"NuMap(worker_remote=...): remote workers need rpyc ({why}): pip "
        "install rpyc, or install papy-numap with its 'remote' extra (e.g. "
        "pip install './packages/numap[remote]')"
    )


class NuMap:
    """A lazy, buffered, multi-task parallel map over threads or processes.

    Arguments (all optional):
      func, iterable, args, kwargs: a first task, as in :meth:`add_task`;
        ``iterable`` is required when ``func`` is given (an empty one is
        fine).
      worker_type: 'process' [default] or 'thread'. Process workers are
        started with multiprocess, so lambdas and closures work.
      worker_num: number of local workers [default: the CPU count, min 1];
        may be 0 only with remote workers.
      worker_remote: ('host' or 'host:port', n) pairs: n worker processes
        on each host running an rpyc classic server; needs worker_type
        'process', and rpyc here (papy-numap's 'remote' extra).
      worker_remote_ssl: SSL options for the remote hosts (beyond 1.x; see
        the README); needs worker_remote. Checked here: unknown keys,
        missing files or a check_hostname that is not a bool raise
        ValueError or TypeError naming worker_remote_ssl and the key.
      stride: items taken from one task before moving to the next
        [default: total number of workers].
      buffer: most items inside the map at once, from input to the
        result handed out by next [default: stride x number of tasks,
        computed at start]; at least stride.
      ordered: results of each task in input order [default: True], or as
        they finish.
      skip: when next() times out, drop that result when it arrives
        [default: False: a later next() returns it].
      name: [default: "imap_<id>"].

    ``arguments`` (beyond 1.x) holds these settings as given, None where
    the default applies.

    Raises TypeError or ValueError naming the argument when one is invalid,
    ImportError when remote workers are asked for and rpyc is missing.
    """

    def __init__(
        self,
        func: Callable | None = None,
        iterable: Iterable | None = None,
        args: Sequence | None = None,
        kwargs: dict | None = None,
        worker_type: str | None = None,
        worker_num: int | None = None,
        worker_remote: Iterable[tuple[str, int]] | None = None,
        stride: int | None = None,
        buffer: int | None = None,
        ordered: bool = True,
        skip: bool = False,
        name: str | None = None,
        worker_remote_ssl: dict | None = None,
    ) -> None:
        self.worker_type = "process" if worker_type is None else worker_type
        if self.worker_type not in WORKER_TYPES:
            raise ValueError(
                f"NuMap(worker_type={worker_type!r}): must be 'process' or 'thread'"
            )
        self.worker_remote = (
            None if worker_remote is None else _check_remote(worker_remote)
        )
        if self.worker_remote is not None and self.worker_type != "process":
            raise ValueError(
                "NuMap(worker_remote=...) needs worker_type='process', got "
                f"worker_type={self.worker_type!r}"
            )
        remote_num = sum(n for _, n in self.worker_remote or ())
        worker_num_given = worker_num
        if worker_num is None:
            worker_num = max(1, os.cpu_count() or 1)
        self.worker_num = _check_positive(
            "worker_num",
            worker_num,
            minimum=0 if remote_num else 1,
            advice=(
                "; a map without local workers needs remote ones "
                "(worker_remote=[(host, n)])"
                if self.worker_type == "process"
                else "; a thread map runs on threads of this process only"
            ),
        )
        self.worker_remote_ssl = _check_remote_ssl(
            worker_remote_ssl, self.worker_remote
        )
        total_workers = self.worker_num + remote_num
        self.stride = (
            total_workers if stride is None else _check_positive("stride", stride)
        )
        if buffer is not None:
            _check_positive("buffer", buffer)
            if buffer < self.stride:
                raise ValueError(
                    f"NuMap(buffer={buffer}): must be at least stride "
                    f"({self.stride}); raise buffer or lower stride"
                )
        self._buffer_arg = buffer
        self.buffer = buffer
        self.ordered = _check_flag("ordered", ordered)
        self.skip = _check_flag("skip", skip)
        if name is not None and not isinstance(name, str):
            raise TypeError(
                f"NuMap(name={name!r}): expected a string, e.g. name='hashing'"
            )
        self.name = name if name is not None else f"imap_{id(self)}"
        # The settings as given, None where the default applies: what a copy
        # of this map elsewhere (papy's saved pipelines) should be built
        # with, so that defaults that depend on the machine (worker_num,
        # stride, buffer) are computed there again.
        self.arguments: dict[str, Any] = {
            "worker_type": worker_type,
            "worker_num": worker_num_given,
            "worker_remote": self.worker_remote,
            "stride": stride,
            "buffer": buffer,
            "ordered": self.ordered,
            "skip": self.skip,
            "name": name,
            "worker_remote_ssl": worker_remote_ssl,
        }
        self._started = threading.Event()

        self._tasks: list[_Task] = []
        self._tasks_tracked: dict[int, dict] = {}
        # Fixed at stage 2 (see _fuse_chains).
        self._result_task: list[int] = []
        self._fused_into: dict[int, int] = {}

        # Run state. Guarded by _lock (both conditions share it):
        #   _free         buffer slots not held by an item; 0 <= _free <= buffer;
        #                 taken by the feeder before it pulls from an input,
        #                 given back when next() hands a result out
        #   _feeder_wants slots the feeder waits for (0: not waiting for
        #                 space); it is woken when that many are free, or
        #                 when a consumer waits for a result and any is free
        #   _feeder_awaits_delivery  the feeder waits for any delivery (a
        #                 chained task's upstream had no result ready)
        #   _notifications  counts calls of _notify_results (results or the
        #                 end changed; every _deliver makes one): the
        #                 lost-wakeup guard of the feeder waiting for a
        #                 delivery and of a thread that lets the lock go to
        #                 move chained tasks
        #   _feeder_pulling  thread id of the feeder while it pulls from an
        #                 input that may wait (not a sequence in memory),
        #                 having let _feed_role go: meanwhile any consumer
        #                 waiting in this map may take the role to move the
        #                 chained tasks (_move_chained_while_feeder_pulls),
        #                 which that input may be waiting for; else None.
        #                 Written by the feeder without _lock (see
        #                 _pull_waiting_input)
        #   _consumers_waiting  threads inside next() waiting for a result
        #   _condition_waiters  those of them waiting on _result_ready (the
        #                 others receive from the pool); notify only if > 0
        #   _receiving    thread id of the one consumer that waits by
        #                 receiving results from the pool itself
        #                 (ProcessPool.receive, in _receiving_pool) instead of
        #                 on _result_ready; whoever else delivers a result or
        #                 changes what it waits for wakes it with pool.wake()
        #                 (_notify_results)
        #   _feeder_error the exception that ended the feeder thread, if any;
        #                 next() raises NuMapError from it instead of
        #                 StopIteration at the end of a truncated task, once
        #                 per task (_told_feeding_failed)
        #   _stopping     the feeder must end; set by stop()
        #   _stopped      stop() finished; next() raises StopIteration
        #   _ever_started start() ran once: next() no longer starts the map
        self._lock = threading.Lock()
        self._result_ready = threading.Condition(self._lock)
        # The feeder thread waits on it without holding the map (_lifetime).
        self._feeder_wakeup = _lifetime.FeederWakeup(self._lock)
        self._free = 0
        self._feeder_wants = 0
        self._feeder_awaits_delivery = False
        self._notifications = 0
        self._feeder_pulling: int | None = None
        self._consumers_waiting = 0
        self._condition_waiters = 0
        self._receiving: int | None = None
        self._receiving_pool: ProcessPool | None = None
        self._feeder_error: BaseException | None = None
        # The tasks whose reader next() told of _feeder_error already.
        self._told_feeding_failed: set[int] = set()
        # The weave (whose turn, how much of its stride is left) and the
        # inputs belong to whoever holds _feed_role.
        self._feed_role = threading.Lock()
        # The thread ident of _feed_role's holder while it feeds (None
        # otherwise): stop() from inside an input iterator would wait for
        # the role its own thread holds.
        self._feed_role_holder: int | None = None
        self._weave = _Weave([], 1, 1, [])
        self._stopping = False
        self._stopped = False
        self._ever_started = False
        self._pool: ThreadPool | ProcessPool | None = None
        # A pool whose closing a Ctrl-C interrupted: the next _stop (another
        # stop(), or the one at exit) closes it again.
        self._pool_closing: ThreadPool | ProcessPool | None = None
        self._feeder: threading.Thread | None = None
        # A feeder a stop had to leave behind, waiting in its input: the map
        # starts again only once it has ended (see _finish_stopping).
        self._feeder_left: threading.Thread | None = None
        # Stops the map if it is collected while started (_lifetime).
        self._end_if_collected: weakref.finalize | None = None
        self._start_lock = threading.Lock()
        # Held while a thread finishes stopping (_stop): a stop() or the end
        # of iteration in another thread waits for it, so that a start()
        # after them finds the map stopped, not half way there.
        self._stop_lock = threading.Lock()
        # Task 0's output, for __next__; set (under _lock) when the pool
        # starts, as tasks change only while the map is stopped.
        self._first_output = _Output(None, self._lock)

        if func is not None:
            if iterable is None:
                raise ValueError(
                    "NuMap(func=..., iterable=None): a function needs an iterable "
                    "(an empty one is fine)"
                )
            self._add_task("NuMap", func, iterable, args, kwargs)
        elif iterable is not None or args is not None or kwargs is not None:
            raise ValueError(
                "NuMap(iterable=..., args=..., kwargs=...) make a first task only "
                "with func: give func too, or add tasks with add_task"
            )

    # -- tasks -------------------------------------------------------------

    def add_task(
        self,
        func: Callable,
        iterable: Iterable,
        args: Sequence | None = None,
        kwargs: dict | None = None,
        timeout: float | None = None,
        block: bool = True,
        track: bool = False,
    ) -> _NuMapTask:
        """Add a task: ``func(item, *args, **kwargs)`` for each item.

        iterable may be the result iterator of an earlier task of this or
        another NuMap (chaining). timeout and block are the defaults of the
        returned iterator's next calls. With track=True, results (or
        exceptions) are kept in ``_tasks_tracked[task_id]`` as
        {index: result}. Returns the task's result iterator (a _NuMapTask
        whose ``task`` attribute is the task id). Raises NuMapError once
        the NuMap has started.
        """
        return self._add_task(
            "NuMap.add_task", func, iterable, args, kwargs, timeout, block, track
        )

    def _add_task(
        self,
        caller: str,
        func: Callable,
        iterable: Iterable,
        args: Sequence | None = None,
        kwargs: dict | None = None,
        timeout: float | None = None,
        block: bool = True,
        track: bool = False,
    ) -> _NuMapTask:
        # ``caller`` names what the user called (the constructor or
        # add_task) in the errors.
        if not callable(func):
            raise TypeError(f"{caller}(func={func!r}): func must be callable")
        if iterable is None:
            raise TypeError(f"{caller}(iterable=None): an iterable is required")
        self._refuse_while_started("add tasks")
        upstream = None
        if isinstance(iterable, _NuMapTask) and iterable.numap is self:
            upstream = iterable.task
            self._refuse_second_reader(upstream)
        elif not (hasattr(iterable, "__iter__") or hasattr(iterable, "__getitem__")):
            # Checked without calling iter(): that may have side effects.
            raise TypeError(f"{caller}(iterable={iterable!r}): not an iterable")
        spec = TaskSpec(func, _task_args(args, caller), _task_kwargs(kwargs, caller))
        timeout = _check_timeout("add_task", timeout)
        block = _check_flag("block", block, caller)
        track = _check_flag("track", track, caller)
        task = _Task(
            spec,
            None if upstream is not None else iterable,
            upstream,
            track,
            self._lock,
        )
        task_id = len(self._tasks)
        self._tasks.append(task)
        if task.tracked is not None:
            self._tasks_tracked[task_id] = task.tracked
        return _NuMapTask(self, task_id, timeout, block)

    def _refuse_second_reader(self, upstream: int) -> None:
        # Two tasks reading one task of their own map would each take part
        # of its results (neither sees them all), and one waiting for what
        # the other took can wait forever.
        for task_id, task in enumerate(self._tasks):
            if task.upstream == upstream:
                raise ValueError(
                    f"NuMap.add_task(iterable=<results of task {upstream}>): "
                    f"task {task_id} of this NuMap already reads task "
                    f"{upstream}; a task's results can feed one task of the "
                    "same NuMap. Give each reader its own copy "
                    "(itertools.tee(...) of the task's results) or its own "
                    "task computing the same"
                )

    def get_task(
        self,
        task: int = _TASK_ZERO,
        timeout: float | None = None,
        block: bool = True,
        *,
        task_id: int | None = None,
    ) -> _NuMapTask:
        """An iterator over the results of task ``task`` [default: 0] only.

        ``timeout`` and ``block`` apply to each step as to :meth:`next`.
        ``task_id`` is another name for ``task``: the contract's own
        examples spell it so (``get_task(task_id=1)``). Giving both is a
        TypeError; a task id that does not exist is an IndexError.
        """
        if task_id is not None:
            if task is not _TASK_ZERO:  # given, even as 0
                raise TypeError(
                    "get_task: give the task id once, as task or as task_id "
                    f"(got task={task!r} and task_id={task_id!r})"
                )
            task = task_id
        self._check_task(task)
        timeout = _check_timeout("get_task", timeout)
        return _NuMapTask(self, int(task), timeout, block)

    def pop_task(self, number: int | bool) -> None:
        """Remove the last ``number`` tasks (True: all). Not while started.

        Raises ValueError for a number that is not a positive int or True,
        and IndexError, removing nothing, for more tasks than there are.
        """
        self._refuse_while_started("pop tasks")
        if number is True:
            if not self._tasks:
                return
            number = len(self._tasks)
        if isinstance(number, bool) or not isinstance(number, int) or number < 1:
            raise ValueError(
                f"NuMap.pop_task(number={number!r}): a positive int or True"
            )
        if number > len(self._tasks):
            raise IndexError(
                f"NuMap.pop_task(number={number}): {self.name} has only "
                f"{len(self._tasks)} task(s); pop_task(True) removes all"
            )
        for _ in range(number):
            self._tasks.pop().output.popped = True
            self._tasks_tracked.pop(len(self._tasks), None)

    def _refuse_while_started(self, action: str) -> None:
        if self._stopping:
            # Another thread may be finishing a stop (e.g. its read reached
            # the end of the map): wait for it rather than refuse.
            self._wait_for_other_stops()
        if not self._started.is_set():
            return
        if self._stopping:
            raise NuMapError(
                f"{self.name}: stopping began but did not finish "
                f"(stop(forced=True) returns at once); call stop() again to "
                f"finish it, then {action}"
            )
        raise NuMapError(f"{self.name}: stop() the NuMap first, then {action}")

    def _check_task(self, task: int) -> None:
        # A bool is an int, but next(task=True) reading task 1 is a mistake.
        if isinstance(task, bool) or not isinstance(task, int):
            raise TypeError(
                f"{self.name}: a task id is an int (0 for the first task), "
                f"not {task!r}; add_task returns the task's iterator, "
                "get_task(id) gives it again"
            )
        if not 0 <= task < len(self._tasks):
            if not self._tasks:
                raise IndexError(
                    f"{self.name}: no task {task}; this NuMap has no tasks "
                    "(add one with add_task, or give func and iterable)"
                )
            raise IndexError(
                f"{self.name}: no task {task}; task ids are 0..{len(self._tasks) - 1}"
            )

    # -- start -------------------------------------------------------------

    def start(self, stages: Sequence[int] = (1, 2)) -> None:
        """Start the workers (stage 1) and the feeding threads (stage 2).

        After stage 1 ``_started`` is set and next() blocks until stage 2
        runs. The stages may be run by separate calls, each once. A start
        that an exception or Ctrl-C ends before the feeder runs is undone,
        stage 1 too (no worker is left); start again, or call next().
        Raises NuMapError if the map is started already.
        """
        chosen = _stage_numbers(stages)
        with self._start_lock:
            self._start_stages(chosen)

    def _start_stages(self, stages: set[int]) -> None:
        """Run the chosen stages (the caller holds _start_lock).

        A start that fails before the feeder runs is undone (also a stage 2
        after a separate stage-1 call): an exception or a Ctrl-C then stops
        what had started, so the next next() or start() begins afresh. (A
        Ctrl-C raised between the stages used to leave workers without a
        feeder, and every later next() waited for results that never
        came.) Once the feeder runs, it may have pulled items from a
        generator, which a new start could not pull again: a Ctrl-C then
        leaves the map running.

        On the main thread the start is a section of _interrupts. A Ctrl-C
        held back during stage 1 is raised before stage 2, after the undo;
        one held back during stage 2 is raised once the map runs.
        """
        if 1 in stages:
            self._refuse_second_start()
        else:
            self._refuse_feeder_start()
        guarded = _interrupts.protects_this_thread()
        if guarded:
            _CTRL_C.depth += 1
        try:
            if 1 in stages:
                self._start_pool()
                if guarded and _CTRL_C.pending and _CTRL_C.depth == 1:
                    raise KeyboardInterrupt
            if 2 in stages:
                self._start_feeder()
        except BaseException as error:
            undone = not self._feeder_ran()
            try:
                if undone:
                    self._undo_start()
            finally:
                # Also when the undo itself is cut short (a second Ctrl-C
                # after ABORT_SECONDS raises at once).
                if guarded:
                    _CTRL_C.depth -= 1
            if not guarded:
                raise
            interrupted = _CTRL_C.depth == 0 and _CTRL_C.pending
            if interrupted:
                _CTRL_C.pending = False
            if undone and not _live_numaps:
                # As stop() does: no started map is left.
                _interrupts.release()
            if interrupted and not isinstance(error, KeyboardInterrupt):
                raise KeyboardInterrupt from error
            raise
        if guarded:
            _CTRL_C.depth -= 1
            if _CTRL_C.depth == 0 and _CTRL_C.pending:
                _CTRL_C.pending = False
                raise KeyboardInterrupt

    def _undo_start(self) -> None:
        self._ever_started = False
        self._stop(graceful=False)

    def _feeder_ran(self) -> bool:
        # (A program's own SIGINT handler can raise inside Thread.start,
        # after the thread began.)
        return self._feeder is not None and self._feeder.ident is not None

    def _refuse_second_start(self) -> None:
        if self._started.is_set() and self._stopping:
            self._refuse_while_started("start it again")
        if self._started.is_set() and self._feeder is None:
            raise NuMapError(
                f"{self.name}: stage 1 (the workers) is started already; "
                "start(stages=(2,)) starts the feeding"
            )
        if self._started.is_set():
            raise NuMapError(
                f"{self.name}: already started (a map starts at its first "
                "next() too, also one that another map's feeder calls to read "
                "a task of it: start maps before the maps that read them); "
                "stop() it before starting it again"
            )
        left = self._feeder_left
        if left is not None and left.is_alive():
            # It holds the feed role, and would feed the new run what its
            # old input gives next.
            raise NuMapError(
                f"{self.name}: the last run's feeder still waits in its input "
                "(the stop had to leave it there); it ends when that input "
                "gives its next item or ends: start the map again after that"
            )

    def _start_pool(self) -> None:
        _lifetime.end_abandoned_maps()
        # The pool's threads must not keep a map nobody holds alive.
        deliver = _lifetime.deliver_while_alive(weakref.ref(self), type(self)._deliver)
        if self.worker_type == "thread":
            pool: ThreadPool | ProcessPool = ThreadPool(self.worker_num, deliver)
        else:
            pool = ProcessPool(
                self.worker_num,
                deliver,
                remote=self._remote_opener(),
                queue_behind=self.ordered and not self.skip,
            )
        with self._lock:
            self._stopping = False
            self._stopped = False
            self._free = 0
            self._feeder_wants = 0
            self._feeder_awaits_delivery = False
            self._consumers_waiting = 0
            self._feeder_error = None
            self._told_feeding_failed.clear()
            for task in self._tasks:
                task.output.reset()
                task.output.ran = True
            self._first_output = (
                self._tasks[0].output if self._tasks else _Output(None, self._lock)
            )
        pool.start()
        self._pool = pool
        self._ever_started = True
        _live_numaps.add(self)
        self._end_if_collected = weakref.finalize(
            self,
            _lifetime.stop_abandoned,
            os.getpid(),
            self.name,
            pool,
            self._feeder_wakeup,
        )
        self._end_if_collected.atexit = False  # _stop_live_numaps stops it then
        self._started.set()

    def _remote_opener(self) -> Callable[[], list] | None:
        hosts = self.worker_remote
        if hosts is None:
            return None
        ssl = self.worker_remote_ssl

        def open_channels() -> list:
            try:
                from numap import _remote
            except ImportError as error:  # rpyc is there but broken
                raise _rpyc_missing(str(error)) from error
            return _remote.open_remote_channels(
                hosts, ssl=ssl, interrupted=_start_interrupted
            )

        return open_channels

    def _refuse_feeder_start(self) -> None:
        if not self._started.is_set():
            raise NuMapError(f"{self.name}: start stage 1 before stage 2")
        if self._feeder is not None:
            raise NuMapError(f"{self.name}: stage 2 already started")

    def _start_feeder(self) -> None:
        assert self._pool is not None
        ntasks = max(1, len(self._tasks))
        self.buffer = self._buffer_arg or self.stride * ntasks
        self._pool.set_tasks(self._fuse_chains())
        self._weave = _Weave(
            sources=[
                None if task.iterable is None else _input_iterator(task.iterable)
                for task in self._tasks
            ],
            stride=self.stride,
            batch=self._batch_size(),
            active=[t for t in range(len(self._tasks)) if t not in self._fused_into],
        )
        with self._lock:
            self._free = self.buffer
            for task_id, task in enumerate(self._tasks):
                if self._gives_no_results(task_id):
                    task.output.total = 0
        # Set before it starts, so that a stop() after a Ctrl-C during the
        # start joins it.
        self._feeder = threading.Thread(
            target=_lifetime.feed_in_background,
            args=(weakref.ref(self), self._feeder_wakeup),
            name=f"numap-feeder {self.name}",
            daemon=True,
        )
        try:
            start_thread(self._feeder, "the feeder thread")
        except NuMapError as error:
            # Without a feeder no result would ever come: _start_stages
            # undoes the start, and a consumer waiting in next() raises.
            self._feeder = None  # never started: nothing to join
            raise NuMapError(f"{self.name}: {error}; the start was undone") from error

    def _fuse_chains(self) -> list[TaskSpec]:
        """Fuse each chained task into the task it reads, unless that task
        is tracked (its results are kept): the workers then make both calls
        on an item in one go, and the result crosses to the parent once.

        Sets ``_result_task[t]`` (the task whose output receives the
        results of task t's batches: the last task of its fused chain) and
        ``_fused_into`` (task -> first task of its fused chain, for the
        tasks that are never fed themselves). Returns the pool's specs.
        """
        self._fused_into = {}
        followers: dict[int, list[int]] = {}
        for task_id, task in enumerate(self._tasks):
            upstream = task.upstream
            if upstream is None:
                continue
            if self._tasks[upstream].tracked is not None:
                continue
            # Tasks are added after the tasks they read, so the upstream's
            # own place is already known.
            head = self._fused_into.get(upstream, upstream)
            self._fused_into[task_id] = head
            followers.setdefault(head, []).append(task_id)
        self._result_task = list(range(len(self._tasks)))
        specs = [task.spec for task in self._tasks]
        for head, chain in followers.items():
            self._result_task[head] = chain[-1]
            spec = specs[head]
            then = tuple(self._tasks[t].spec for t in chain)
            specs[head] = TaskSpec(spec.func, spec.args, spec.kwargs, then)
        return specs

    def _gives_no_results(self, task_id: int) -> bool:
        """True for a task fused into a chain whose last task is another."""
        head = self._fused_into.get(task_id, task_id)
        return self._result_task[head] != task_id

    # -- feeding -----------------------------------------------------------
    #
    # The holder of _feed_role pulls from the inputs and submits batches: the
    # feeder thread, or, while the feeder waits for buffer space, a consumer
    # that just freed enough of it (one step, saving a thread hand-off).

    def _batch_size(self) -> int:
        assert self._pool is not None
        workers = max(1, self._pool.size)
        return max(1, -(-self.stride // workers))

    def _feed_until_wait(self, progress: _lifetime.FeedProgress) -> int | None:
        """Feed (the feeder thread, see _lifetime.feed_in_background) until
        the feeding must wait: the wakeup count to wait past; None once the
        feeding is over (every input ended, the map stops, or the feeding
        failed)."""
        try:
            wait_past = self._weave_until_wait(progress)
        except BaseException as error:
            self._fail_feeding(error)
            return None
        if wait_past is None:
            # Stopped early (stop(), also forced): after stop(forced=True)
            # consumers take the results of the items that entered, then
            # get StopIteration.
            with self._lock:
                self._end_open_tasks()
        return wait_past

    def _fail_feeding(self, error: BaseException) -> None:
        # Never leave consumers waiting for items that will not come;
        # next() raises NuMapError from this error.
        with self._lock:
            self._feeder_error = error
            self._stopping = True
            self._feeder_wakeup.notify()
            self._end_open_tasks()

    def _end_open_tasks(self) -> None:
        """(Holding _lock.) Nothing more will enter the map: each task whose
        input had not ended ends after the items that did enter."""
        for task in self._tasks:
            if task.output.total is None:
                task.output.end_input()
        self._notify_results()

    def _weave_until_wait(self, progress: _lifetime.FeedProgress) -> int | None:
        """Feed turn by turn from where ``progress`` says: the wakeup count
        to wait past when the feeder must wait, None at the end."""
        # The weave never skips the turn of a task waiting for space: pipers
        # reading this map through the parent rely on every task getting its
        # stride each round (a task skipped while the others fed on would
        # find the buffer full of results only its own input would take).
        # Chained tasks need no space, so they move while the turn waits.
        this_thread = threading.get_ident()
        try:
            while True:
                if progress.awaiting is not None:
                    wait_past = self._wakeups_to_wait_past(*progress.awaiting)
                    if wait_past is not None:
                        return wait_past
                    progress.awaiting = None
                    progress.idle_steps = 0
                with self._lock:
                    if progress.idle_steps == 0:
                        progress.notifications_seen = self._notifications
                with self._feed_role:
                    self._feed_role_holder = this_thread
                    try:
                        status, want = self._step()
                        if status is _NO_SPACE and self._feed_chained():
                            status = _PROGRESS
                    finally:
                        self._feed_role_holder = None
                    chained = bool(self._weave.chained_tasks())
                if status is _DONE:
                    return None
                if status is _PROGRESS:
                    progress.idle_steps = 0
                    continue
                if status is _NO_SPACE:
                    # Only a chained task can move on a delivery alone;
                    # without one, waking the feeder for every delivery is
                    # wasted.
                    awaited = progress.notifications_seen if chained else None
                    progress.awaiting = (awaited, want)
                else:
                    progress.idle_steps += 1  # a chained turn found nothing
                    if progress.idle_steps >= len(self._weave.active):
                        progress.awaiting = (progress.notifications_seen, 0)
        except _Stopping:
            return None

    def _wakeups_to_wait_past(
        self, notifications_seen: int | None, want: int
    ) -> int | None:
        """None when what the feeder waits for has come: a delivery after
        the map's notification count was ``notifications_seen`` (None:
        deliveries do not matter; any other notification counts too, and
        costs one more look) or ``want`` free slots (0: space does not
        matter). Else the wakeup count to wait past, with the wish written
        down for those who wake the feeder. Raises _Stopping when the map
        stops."""
        with self._lock:
            if not self._stopping:
                if want and self._free < want:
                    self._free_all_lent()
                delivered = (
                    notifications_seen is not None
                    and self._notifications != notifications_seen
                )
                if not delivered and not (want and self._space_enough(want)):
                    self._feeder_awaits_delivery = notifications_seen is not None
                    self._feeder_wants = want
                    return self._feeder_wakeup.count
            self._feeder_awaits_delivery = False
            self._feeder_wants = 0
            if self._stopping:
                raise _Stopping
            return None

    def _space_enough(self, want: int) -> bool:
        return self._free >= want or (self._free > 0 and self._consumers_waiting > 0)

    def _step(self) -> tuple[str, int]:
        """Feed one batch of the task whose turn it is (holding _feed_role).

        Returns (status, slots wanted when status is _NO_SPACE).
        """
        weave = self._weave
        if not weave.active:
            return _DONE, 0
        if self._stopping:
            raise _Stopping
        task_id = weave.active[weave.position]
        # (Not min(): a call per item at the defaults, as in _try_reserve.)
        want = weave.left if weave.left < weave.batch else weave.batch
        source = weave.sources[task_id]
        if source is None:
            items, ended, has_errors = self._pull_upstream(self._tasks[task_id], want)
        else:
            granted = self._try_reserve(want)
            if not granted:
                return _NO_SPACE, want
            if weave.in_memory[task_id]:  # never waits
                items, ended, has_errors = self._pull_input(task_id, source, granted)
            else:
                items, ended, has_errors = self._pull_waiting_input(
                    task_id, source, granted
                )
                if (
                    self._stopped
                    or self._pool is None
                    or self._feeder_error is not None
                ):
                    # The stop left this feeder waiting in the input (see
                    # _finish_stopping): the map, and its pool, are gone.
                    # Or a consumer moving chained tasks meanwhile failed
                    # the feeding, and ended the tasks where they were.
                    raise _Stopping
        self._enter(task_id, items, has_errors)
        weave.left -= len(items)
        if ended:
            self._end_input(task_id)
            weave.end_turn(finished=True)
            return _PROGRESS, 0
        if weave.left <= 0 or (source is None and len(items) < want):
            weave.end_turn(finished=False)
        return (_PROGRESS if items else _NOTHING_READY), 0

    def _enter(self, task_id: int, items: list, has_errors: bool) -> None:
        """Count ``items`` into task ``task_id`` and submit them."""
        if not items:
            return
        output = self._tasks[self._result_task[task_id]].output
        start = output.entered
        if has_errors:
            self._submit_around_errors(task_id, start, items)
        else:
            assert self._pool is not None
            self._pool.submit(task_id, start, items)
        # Counted once submitted: if the submit raises (the feeding fails),
        # the task ends before these items, whose results will not come.
        output.entered = start + len(items)

    def _end_input(self, task_id: int) -> None:
        output = self._tasks[self._result_task[task_id]].output
        with self._lock:
            output.end_input()
            self._notify_results()

    def _feed_chained(self) -> bool:
        """Move every ready upstream result into its chained task, outside
        the weave's turns (holding _feed_role); True if anything moved."""
        moved = False
        batch = self._weave.batch
        for task_id in self._weave.chained_tasks():
            task = self._tasks[task_id]
            while True:
                items, ended, has_errors = self._pull_upstream(task, batch)
                self._enter(task_id, items, has_errors)
                moved = moved or bool(items) or ended
                if ended:
                    self._end_input(task_id)
                    self._weave.remove(task_id)
                if ended or len(items) < batch:
                    break
        return moved

    def _pull_waiting_input(
        self, task_id: int, source: Iterator, granted: int
    ) -> tuple[list, bool, bool]:
        """_pull_input (holding _feed_role) from an input that may wait,
        with the role let go meanwhile.

        So the role is never held across a wait on an input, and a thread
        may wait for it: the input may itself be waiting, through another map or a
        generator, for a chained task of this map (one chained to a
        tracked task), which only the role's holder moves. Consumers
        waiting in this map take the role to move it while the feeder is
        away (see _move_chained_while_feeder_pulls); the weave's turn stays
        with ``task_id``, which nobody else feeds (consumers feed inline
        only from sequences in memory)."""
        feeder = threading.get_ident()
        chained = bool(self._weave.chained_tasks())
        # Set without _lock: a consumer that reads None and waits misses
        # nothing, as the feeder moves what is ready after setting it.
        self._feeder_pulling = feeder
        self._feed_role_holder = None
        self._feed_role.release()
        try:
            if chained:
                self._move_chained_outside_turns()
                if self._stopping:  # a failed move ended the feeding
                    raise _Stopping
            return self._pull_input(task_id, source, granted)
        finally:
            self._feed_role.acquire()
            self._feed_role_holder = feeder
            self._feeder_pulling = None

    def _move_chained_outside_turns(self, guarded: bool = False) -> bool:
        """(Holding neither _lock nor _feed_role.) Take the feed role,
        waiting for it, and move the chained tasks' ready inputs; True if
        anything moved, or if the move failed and ended the feeding.

        Waiting, not trying: a thread that gave up while another held the
        role could miss results delivered meanwhile, and go back to sleep
        with them unmoved. Nobody holds the role across a wait on an input
        (the feeder lets it go while it pulls from one that may wait, see
        _pull_waiting_input), but a send to a worker whose pipe is full
        holds it until the worker reads: with ``guarded`` (the main
        thread's section of _interrupts), the wait is sliced, and a Ctrl-C
        held back meanwhile is raised between slices, with nothing taken.
        Unguarded, a with statement takes it: a Ctrl-C cannot come between
        taking it and the block that gives it back."""
        if not guarded:
            with self._feed_role:
                return self._move_chained_holding_role()
        while not self._feed_role.acquire(timeout=_interrupts.CHECK_SECONDS):
            if _CTRL_C.pending and _CTRL_C.depth == 1:
                _CTRL_C.pending = False
                raise KeyboardInterrupt
        try:
            return self._move_chained_holding_role()
        finally:
            self._feed_role.release()

    def _move_chained_holding_role(self) -> bool:
        if self._stopping:  # a stop may have taken the pool away
            return False
        try:
            return self._feed_chained()
        except BaseException as error:
            # Results taken from upstream but not submitted are lost: the
            # consumers learn of it (see _fail_feeding), as from
            # _feed_inline.
            self._fail_feeding(error)
            if isinstance(error, KeyboardInterrupt):
                raise
            return True

    def _try_reserve(self, want: int) -> int:
        with self._lock:
            if self._stopping:
                raise _Stopping
            if self._free < want:
                self._free_all_lent()
            # Whatever is free is used (so that exactly `buffer` items enter
            # before the first result is taken); the waiting feeder is only
            # woken once a whole batch fits, which keeps batches full.
            granted = self._free if self._free < want else want
            self._free -= granted
            return granted

    def _free_lent(self, output: _Output) -> None:
        """(Holding _lock.) Once ``handed`` is empty, every result lent to
        it has been handed out: free their slots."""
        if output.lent and not length_hint(output.handed):
            self._free += output.lent
            output.lent = 0

    def _free_all_lent(self) -> None:
        """(Holding _lock.) _free_lent for every task. A task's lent slots
        are otherwise freed only by its next take, and when the feeder
        itself is that task's reader (a Piper's inbox reading this map),
        the take comes only after the feeder found space: without this the
        feeder could wait for slots that only it would free."""
        for task in self._tasks:
            self._free_lent(task.output)

    def _pull_input(
        self, task_id: int, source: Iterator, granted: int
    ) -> tuple[list, bool, bool]:
        """Pull up to ``granted`` items of task ``task_id`` from ``source``:
        (items, input ended, any errors). An exception the input raises is
        that item's error (see _input_failed)."""
        if granted == 1:
            # Batches of one item (the defaults): next() costs a fraction of
            # building an islice, and needs no loop.
            try:
                return [next(source)], False, False
            except StopIteration:
                with self._lock:
                    self._free += 1
                return [], True, False
            except BaseException as error:
                entered = self._tasks[self._result_task[task_id]].output.entered
                item, ended = self._input_failed(task_id, entered, error)
                return [item], ended, True
        entered = self._tasks[self._result_task[task_id]].output.entered
        items: list = []
        has_errors = False
        ended = False
        while not ended and len(items) < granted:
            wanted = granted - len(items)
            try:
                before = len(items)
                # list.extend keeps what it got before an exception.
                items.extend(itertools.islice(source, wanted))
                ended = len(items) - before < wanted
            except StopIteration:
                ended = True
            except BaseException as error:
                # A failing input is that item's error; the map goes on.
                item, ended = self._input_failed(task_id, entered + len(items), error)
                items.append(item)
                has_errors = True
        if ended:
            with self._lock:
                self._free += granted - len(items)
        return items, ended, has_errors

    def _input_failed(
        self, task_id: int, index: int, error: BaseException
    ) -> tuple[Raised, bool]:
        """The error item for item ``index`` of task ``task_id``, whose input
        raised ``error`` instead of giving it, and whether the input ends
        there.

        The input goes on after an error (a csv.reader can read on after a
        bad line), but one that raises INPUT_ERRORS_IN_A_ROW times with no
        item between is ended: a dict changed while it is read, or any
        iterator that is not a generator, may raise on every pull, and the
        map would give errors for ever. That last error is a NuMapError
        saying so, caused by the input's error. A TimeoutError does not
        count: another map's task iterator read with a timeout raises it
        until its result comes.

        Any BaseException (SystemExit, GeneratorExit...) is the item's
        error: on the feeder thread no real Ctrl-C arrives. On the main
        thread (a consumer feeding from a sequence in memory, see
        _feed_inline) a KeyboardInterrupt is a real Ctrl-C: it is raised
        again, for the consumer.
        """
        if isinstance(error, KeyboardInterrupt) and _waits.on_main_thread():
            raise error
        if isinstance(error, TimeoutError):
            # Not yet, rather than broken: the iterator of another map's
            # task read with a timeout (get_task(timeout=...)) raises it
            # until its result comes, and then gives it.
            return Raised(error), False
        streaks = self._weave.input_errors
        last_index, in_a_row = streaks.get(task_id, (-2, 0))
        in_a_row = in_a_row + 1 if last_index == index - 1 else 1
        streaks[task_id] = (index, in_a_row)
        if in_a_row < INPUT_ERRORS_IN_A_ROW:
            return Raised(error), False
        ended = NuMapError(
            f"{self.name}: the input of task {task_id} raised {in_a_row} "
            f"errors in a row with no item between (the last: "
            f"{type(error).__name__}: {error}); numap ended that input here, "
            "as one that keeps raising would give errors for ever"
        )
        ended.__cause__ = error
        return Raised(ended), True

    def _pull_upstream(self, task: _Task, want: int) -> tuple[list, bool, bool]:
        """Take the upstream results that are ready now, without waiting:
        (items, upstream finished, any errors among them)."""
        assert task.upstream is not None
        upstream = self._tasks[task.upstream].output
        with self._lock:
            items = _popleft_many(upstream.ready, min(want, len(upstream.ready)))
            # Each result keeps its buffer slot: it is this task's input now.
            upstream.taken += len(items)
            ended = upstream.finished()
        return items, ended, any(type(item) is Raised for item in items)

    def _submit_around_errors(self, task_id: int, start: int, items: list) -> None:
        # Errors from the input go straight to the output; the rest runs.
        assert self._pool is not None
        run: list = []
        run_start = start
        for index, item in enumerate(items, start):
            if type(item) is Raised:
                if run:
                    self._pool.submit(task_id, run_start, run)
                    run = []
                self._deliver(task_id, index, [item], True)
                run_start = index + 1
            else:
                run.append(item)
        if run:
            self._pool.submit(task_id, run_start, run)

    def _feed_inline(self) -> None:
        """A consumer freed space the feeder waits for: feed one step here
        if the turn is an in-memory sequence's, else wake the feeder."""
        if not self._feed_role.acquire(blocking=False):
            return
        self._feed_role_holder = threading.get_ident()
        try:
            weave = self._weave
            if weave.active and not weave.in_memory[weave.active[weave.position]]:
                # The input may wait (a chained task's turn is never fed
                # here either: its source is None).
                status = _NOTHING_READY
            else:
                status, _ = self._step()
        except _Stopping:
            return
        except BaseException as error:
            self._fail_feeding(error)
            if isinstance(error, KeyboardInterrupt):
                raise
            return
        finally:
            self._feed_role_holder = None
            self._feed_role.release()
        # Usually the step used up the space (free is 0): then the lock is
        # not taken at all. The unlocked reads cannot miss a wake-up: a
        # consumer that freed slots while this thread held the feed role
        # did so before the role was released, so the reads see it; one
        # that frees them later finds the role free and feeds itself (or,
        # waiting with a timeout, wakes the feeder).
        if status is not _NO_SPACE and self._feeder_wants and self._free:
            with self._lock:
                if self._feeder_wants and self._space_enough(self._feeder_wants):
                    self._feeder_wakeup.notify()

    # -- results -----------------------------------------------------------

    def _deliver(self, task_id: int, start: int, values: list, errors: bool) -> None:
        """Store a batch of results of task ``task_id``'s batches (delivered
        to the last task of its fused chain); ``errors``: whether any of
        ``values`` may be an error (Raised). Called by whoever receives
        results: a consumer reading the pipes, a pool thread, or the feeder
        for errors of the input."""
        with self._lock:
            output = self._tasks[self._result_task[task_id]].output
            if errors:
                output.maybe_errors = True
            if output.tracked is not None:
                for index, value in enumerate(values, start):
                    output.tracked[index] = (
                        value.error if type(value) is Raised else value
                    )
            if self.ordered:
                dropped = self._merge_ordered(output, start, values)
            else:
                output.arrived += len(values)
                dropped = 0
                if output.skip_count:
                    dropped = min(output.skip_count, len(values))
                    output.skip_count -= dropped
                    values = values[dropped:]
                output.ready.extend(values)
            self._free += dropped
            # (_space_enough needs a free slot: with none, skip the call.)
            if self._feeder_awaits_delivery or (
                self._feeder_wants
                and self._free
                and self._space_enough(self._feeder_wants)
            ):
                self._feeder_wakeup.notify()
            self._notify_results()

    def _merge_ordered(self, output: _Output, start: int, values: list) -> int:
        """(Holding _lock.) Move ``values``, the results from index
        ``start`` on, and the pending batches that follow them to
        ``ready``; a batch that comes early waits in ``pending``. Results
        given up by a timeout with skip=True (below ``merged``) are
        dropped: returns how many, whose buffer slots are free now."""
        dropped = 0
        if start < output.merged:
            # Only given-up results lie below merged (see _timed_out).
            dropped = min(len(values), output.merged - start)
            output.skipped.difference_update(range(start, start + dropped))
            values = values[dropped:]
            start += dropped
            if not values:
                return dropped
        if start != output.merged:
            output.pending[start] = values
            return dropped
        output.ready.extend(values)
        merged = start + len(values)
        pending = output.pending
        while merged in pending:
            values = pending.pop(merged)
            output.ready.extend(values)
            merged += len(values)
        output.merged = merged
        return dropped

    def next(
        self, timeout: float | None = None, task: int = 0, block: bool = True
    ) -> Any:
        """Return the next result of task ``task`` [default: 0].

        timeout: seconds to wait; then the built-in TimeoutError is raised
          (with skip=True that result is dropped when it arrives; otherwise
          a later next returns it). block=False is timeout=0.
        Raises the exception the function raised for that item (with the
        worker's traceback as a note), a numap error for an item lost with
        its worker or that could not be pickled, or StopIteration when the
        task has no more results. Starts the NuMap if it never ran.
        Raises IndexError, before starting anything, for a task id that
        does not exist (negative ones included).
        """
        self._check_task(task)
        timeout = _check_timeout("next", timeout)
        if not self._ever_started:
            self._start_unless_started()
        return self._take(task, 0.0 if not block else timeout)

    def _start_unless_started(self) -> None:
        # Two consumers' first next() at once: one starts the map, the
        # other waits for that under the lock, then finds it started.
        with self._start_lock:
            if not self._ever_started:
                self._start_stages({1, 2})

    def __next__(self) -> Any:
        # next(numap): one Python frame when a result of task 0 is handed
        # already (as in _take). Otherwise, once started,
        # straight to _take_slowly (next() and _take would only add frames
        # and a second look at handed); a map never started goes through
        # next(), which starts it.
        # A fast path of _interrupts: Python may raise a Ctrl-C right after
        # next(); numap's handler holds it back here, and it is raised
        # with the result put back. No other call after that check: a
        # Ctrl-C coming later is raised in the caller, once the result is
        # out. (An error among the handed results is raised by next().)
        output = self._first_output
        value = next(output.handed, _handout.NONE)
        if value is not _handout.NONE:
            if _CTRL_C.pending:
                _interrupts.raise_held_back(output.put_back, value)
            return value
        if not self._ever_started:
            return self.next()
        value = self._take_slowly(0, None)
        if type(value) is Raised:
            raise value.error
        return value

    def __iter__(self) -> Iterator:
        """The results of task 0, in C from one to the next (see _handout);
        each step as a call of next() would be."""
        return _handout.results(functools.partial(self._next_run, 0, None))

    def _next_run(
        self, task_id: int, timeout: float | None, made_for: _Output | None = None
    ) -> Iterable | None:
        """The next run of results for an iterator of _handout.results:
        ``handed`` if it holds results, else a result taken as by next()
        followed by the results then lent to ``handed``; None at the end.
        ``made_for``: the output of the task the iterator was made for
        (a _NuMapTask's), if any: once that task is popped, each step
        raises NuMapError.

        Never raises: an error (the item's, a timeout, a Ctrl-C) comes as
        a _handout.Raising, which raises it in the consumer; the iterator
        goes on after it. A fast path of _interrupts: a Ctrl-C held back
        meanwhile comes so too, with the result taken put back. Between
        the take and that check only C code runs (length_hint of any
        ``handed`` included), where no Ctrl-C is raised.
        """
        try:
            if made_for is not None and made_for.popped:
                raise _popped(self.name, task_id)
            if not self._ever_started:
                self._check_task(task_id)
                self._start_unless_started()
            try:
                output = self._tasks[task_id].output
            except IndexError:
                self._check_task(task_id)  # raises, naming the task
                raise
            run: Iterable = output.handed
            if length_hint(run):
                # Nothing taken yet; the take below checks for itself.
                if _CTRL_C.pending:
                    _interrupts.raise_pending()
                return run
            value = self._take_slowly(task_id, timeout)
            if value.__class__ is Raised:
                # Made here, not by a function: no Python code may run
                # between the take and the check below.
                run = _handout.WithErrors((value,))
                run.put_back = output.put_back
            else:
                run = (value,)
            if length_hint(output.handed):
                run = itertools.chain(run, output.handed)
            if _CTRL_C.pending:
                _interrupts.raise_held_back(output.put_back, value)
        except StopIteration:
            return None
        except BaseException as error:
            raising = _handout.Raising()
            raising.error = error
            return raising
        return run

    def _take(self, task_id: int, timeout: float | None) -> Any:
        # As __next__, also a fast path of _interrupts.
        output = self._tasks[task_id].output
        value = next(output.handed, _handout.NONE)
        if value is not _handout.NONE:
            if _CTRL_C.pending:
                _interrupts.raise_held_back(output.put_back, value)
            return value
        value = self._take_slowly(task_id, timeout)
        if type(value) is Raised:
            raise value.error
        return value

    def _take_slowly(self, task_id: int, timeout: float | None) -> Any:
        """Take a result under the lock, waiting for it if need be.

        Moves up to a batch of further ready results to ``output.handed``,
        where the next calls find them without the lock; their slots are
        freed in one go once ``handed`` is empty again.

        On the main thread this is a section of _interrupts: a Ctrl-C that
        comes meanwhile is raised before its next wait (waits last at most
        CHECK_SECONDS at a time) or at its end, after the result it took
        is put back in ``handed``.
        """
        # protects_this_thread() written out for its usual answer (installed,
        # main thread), which saves a call on every take.
        if (
            not (_CTRL_C.installed and threading.get_ident() == _CTRL_C.main_ident)
            and not _interrupts.protects_this_thread()
        ):
            try:
                return self._take_and_feed(task_id, timeout, guarded=False)
            except StopIteration:
                self._stop_once_exhausted()
                raise
        # The section's bookkeeping is written out, without calls: see
        # _interrupts.
        _CTRL_C.depth += 1
        try:
            value = self._take_and_feed(task_id, timeout, guarded=True)
        except BaseException as error:
            try:
                if isinstance(error, StopIteration):
                    # Still inside the section: a Ctrl-C during the stop is
                    # held back and raised below, once the map has stopped
                    # (an abort, a Ctrl-C held back too long, raises at once).
                    self._stop_once_exhausted()
            finally:
                _CTRL_C.depth -= 1
            if (
                _CTRL_C.depth == 0
                and _CTRL_C.pending
                and not isinstance(error, KeyboardInterrupt)
            ):
                _CTRL_C.pending = False
                # The error stays in the traceback as its context: a
                # TimeoutError with skip=True has dropped a result.
                raise KeyboardInterrupt  # noqa: B904
            raise
        _CTRL_C.depth -= 1
        if _CTRL_C.pending:
            # Put back, its slot is free already: until it is handed out
            # again, the map may hold one item more than its buffer.
            _interrupts.raise_held_back(self._tasks[task_id].output.put_back, value)
        return value

    def _take_and_feed(self, task_id: int, timeout: float | None, guarded: bool) -> Any:
        with self._lock:
            try:
                output = self._tasks[task_id].output
            except IndexError:  # popped since its iterator was made
                self._check_task(task_id)
                raise
            deadline = None
            direct = True
            while True:
                # Another consumer may have lent results there.
                if length_hint(output.handed):
                    value = _handout.take(output.handed)
                    if value is not _handout.NONE:
                        return value
                if output.lent:  # as _free_lent checks: saves a call per take
                    self._free_lent(output)
                if output.ready:
                    break
                if (
                    output.finished()
                    or self._stopped
                    or (self._stopping and self._feeds_on_this_thread())
                ):
                    if not self._ever_started:
                        raise NuMapError(
                            f"{self.name}: the start of the map, in another "
                            "thread, failed and was undone; call next() again "
                            "to start it afresh"
                        )
                    if not output.ran:
                        raise NuMapError(
                            f"{self.name}: task {task_id} was added after the "
                            "map stopped and has not run: call start() to run "
                            "it (only a map never started starts at its first "
                            "next())"
                        )
                    if (
                        self._feeder_error is not None
                        and task_id not in self._told_feeding_failed
                    ):
                        # Once per task, then the end: a consumer that
                        # catches errors and reads on must terminate.
                        self._told_feeding_failed.add(task_id)
                        raise NuMapError(
                            f"{self.name}: feeding the map failed, results of "
                            f"task {task_id} may be missing"
                        ) from self._feeder_error
                    raise StopIteration
                if (
                    self._feeder_pulling is not None
                    and self._move_chained_while_feeder_pulls(guarded)
                ):
                    continue
                if self._feeder_wants and self._free:
                    self._feeder_wakeup.notify()  # we wait: let it use what is free
                wait = None
                if timeout is not None:
                    if deadline is None:
                        deadline = time.monotonic() + timeout
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        self._timed_out(output)
                        raise TimeoutError(
                            f"{self.name}: no result of task {task_id} within "
                            f"{timeout} s"
                        )
                # Nothing is taken yet: a held-back Ctrl-C is raised here
                # (by the outermost section only).
                if guarded and _CTRL_C.pending and _CTRL_C.depth == 1:
                    _CTRL_C.pending = False
                    raise KeyboardInterrupt
                # Short waits on the main thread let a Ctrl-C act soon: a
                # held-back one, or one that another thread received (see
                # _waits). Decided here, where the take waits, so that a
                # take finding its result ready pays nothing for it.
                if guarded:
                    longest_wait: float | None = _interrupts.CHECK_SECONDS
                elif _waits.on_main_thread():  # a SIGINT handler of its own
                    longest_wait = _waits.SLICE_SECONDS
                else:
                    longest_wait = None
                if longest_wait is not None and (wait is None or wait > longest_wait):
                    wait = longest_wait
                direct = self._wait_for_result(wait, direct)
            ready = output.ready
            value = ready.popleft()
            output.taken += 1
            self._free += 1
            if ready and self._weave.batch > 1:
                self._lend(output, min(len(ready), self._weave.batch - 1))
            else:
                # Empty (looked at above): drop what a put-back may have
                # left there, whose steps run Python code.
                output.handed = _handout.NOTHING
            feed_here = self._feeder_wants > 0 and self._free >= self._feeder_wants
        if feed_here:
            if timeout is None:
                self._feed_inline()
            else:
                with self._lock:
                    self._feeder_wakeup.notify()
        return value

    def _move_chained_while_feeder_pulls(self, guarded: bool) -> bool:
        """(Holding _lock; the feeder is away in an input that may wait.)
        Move the chained tasks here: the input may be waiting for them,
        through this very consumer (see _pull_waiting_input). ``guarded``:
        as for _move_chained_outside_turns.

        True if anything moved, or if results or the end changed while
        the lock was let go for it: their wake-up found nobody waiting, so
        the caller must look again before it waits."""
        # (chained_tasks() read without the feed role: tasks only leave
        # that list during a run, so a stale answer is a needless move.)
        if self._stopping or not self._weave.chained_tasks():
            return False  # (a stopping map takes no more batches)
        notifications = self._notifications
        self._lock.release()
        try:
            moved = self._move_chained_outside_turns(guarded)
        finally:
            self._lock.acquire()
        return moved or self._notifications != notifications

    def _lend(self, output: _Output, count: int) -> None:
        """(Holding _lock.) Move ``count`` ready results to ``handed``, where
        the next takes find them without the lock; _free_lent frees their
        slots once all of them are handed out."""
        ready = output.ready
        if count == len(ready):
            lent = list(ready)
            ready.clear()
        else:
            lent = _popleft_many(ready, count)
        output.lend(lent)
        output.lent = count
        output.taken += count

    def _wait_for_result(self, timeout: float | None, direct: bool) -> bool:
        """Wait (holding _lock) until results may have changed.

        With ``direct`` and worker processes of this machine, the first
        consumer to wait receives from the workers' pipes itself: a result
        then reaches it without a thread hand-off. Returns whether the next
        wait of this call may still receive directly.
        """
        self._consumers_waiting += 1
        try:
            pool = self._pool
            if (
                direct
                and self._receiving is None
                and isinstance(pool, ProcessPool)
                and self.worker_num > 0
            ):
                self._receiving = threading.get_ident()
                self._receiving_pool = pool
                wakes_seen = pool.wakes  # _notify_results wakes under _lock
                self._lock.release()
                try:
                    return pool.receive(timeout, wakes_seen)
                finally:
                    self._lock.acquire()
                    self._receiving = None
                    self._receiving_pool = None
            self._condition_waiters += 1
            try:
                self._result_ready.wait(timeout)
            finally:
                self._condition_waiters -= 1
            return direct
        finally:
            self._consumers_waiting -= 1

    def _notify_results(self) -> None:
        """Wake the consumers (holding _lock): results or the end changed."""
        self._notifications += 1
        if self._condition_waiters:
            self._result_ready.notify_all()
        receiving = self._receiving
        if receiving is not None and receiving != threading.get_ident():
            assert self._receiving_pool is not None
            self._receiving_pool.wake()

    def _timed_out(self, output: _Output) -> None:
        """(Holding _lock, nothing ready.) With skip=True, give up the
        result the timed-out take waited for, as 1.x does: the next one in
        order (any one, unordered), also when its item has not entered the
        map yet (a slow input); it is dropped when it comes. So each
        timeout stands for one result, and the others keep their places.
        Ordered, the results after it come as soon as they are ready."""
        if not self.skip:
            return
        output.taken += 1
        if self.ordered:
            output.skipped.add(output.merged)
            output.merged += 1
            self._merge_ordered(output, output.merged, [])
            if output.ready:
                self._notify_results()
        else:
            output.skip_count += 1

    # -- stop --------------------------------------------------------------

    def stop(self, ends: Sequence[int] | None = None, forced: bool = False) -> None:
        """Stop the NuMap: the feeder, the workers, every thread it started.

        ends: ids of the tasks whose results nobody inside the map consumes;
          stop blocks, lets the workers finish what they hold and discards
          those results. forced (used only when ends is None): only trigger
          stopping and return at once; call ``_stop()`` later to finish.
        With neither, stop behaves as with ends=all tasks. Pending results
        that were not taken are discarded. A map whose every task has
        handed out its last result has stopped itself already; stop then
        does nothing more. Worker processes get 30 s to finish what they
        hold, then they are terminated (SIGTERM, and SIGKILL 2 s later: a
        worker stuck in its function makes stop last ~32 s). A feeder
        still busy after 30 s (stuck in the input, or sending to a stuck
        worker) makes the stop forced: worker processes are terminated at
        once and the items queued for worker threads are dropped; a feeder
        stuck in the input is left behind, to end when the input gives its
        next item (stop returns about a second later).
        """
        self._refuse_stop_from_inside()
        if ends is not None:
            if isinstance(ends, str | bytes) or not isinstance(ends, Iterable):
                raise TypeError(
                    f"NuMap.stop(ends={ends!r}): expected a sequence of task "
                    "ids, e.g. ends=[0]"
                )
            for task_id in ends:
                self._check_task(task_id)
        with self._lock:
            self._stopping = True
            self._feeder_wakeup.notify()
            self._notify_results()
        if ends is None and forced:
            return
        self._stop()
        self._give_back_sigint()

    def _give_back_sigint(self) -> None:
        # Only after stop() (or a with block), not when the map stops itself
        # at its end: a program that catches Ctrl-C while it reads keeps
        # numap's handling of it until it stops the map.
        if not _live_numaps:
            _interrupts.release()

    def _stop_once_exhausted(self) -> None:
        """Stop the map when every task has handed out its last result and
        no item is left inside it, so that a map read to its end
        (``list(NuMap(f, xs))``) leaves no worker behind without a stop()
        call. Not from a thread the map itself runs (its feeder reading a
        chained task, one of its thread workers), where stopping would wait
        for itself; not while results given up with skip=True are still
        being computed (stop() decides about those). If another thread is
        stopping the map, returns once that stop has ended.
        """
        if self._feeds_on_this_thread():
            return
        pool = self._pool
        if isinstance(pool, ThreadPool) and pool.runs_on_this_thread():
            return
        with self._lock:
            under_way = self._stopping or self._stopped
            if not under_way:
                for task in self._tasks:
                    output = task.output
                    if not output.finished() or output.skipped or output.skip_count:
                        return
                self._stopping = True  # this thread stops it
        if under_way:
            self._wait_for_other_stops()
        else:
            self._stop()

    def _feeds_on_this_thread(self) -> bool:
        """Whether this thread is feeding the map (and may be running its
        input iterator)."""
        this_thread = threading.get_ident()
        return this_thread in (self._feed_role_holder, self._feeder_pulling)

    def _refuse_stop_from_inside(self) -> None:
        # Stopping waits for the feeding and for the workers: a thread
        # doing either would wait for itself.
        if self._feeds_on_this_thread():
            raise NuMapError(
                f"{self.name}: stop() was called by the map's own input "
                "iterator, which runs while the map feeds itself; end the "
                "iterator (return) instead, or call stop() where the results "
                "are read"
            )
        pool = self._pool
        if isinstance(pool, ThreadPool) and pool.runs_on_this_thread():
            raise NuMapError(
                f"{self.name}: stop() was called by the map's own function, "
                "on one of its worker threads, which stop() waits for; call "
                "stop() where the results are read"
            )

    def _stop(self, graceful: bool = True) -> None:
        """Finish stopping: join the feeder, close the pool, drop results.

        One thread at a time: a stop waits for another thread's stop to
        end, then finds little left to do.
        """
        self._wait_for_other_stops()
        # A with statement, not a sliced acquire: a Ctrl-C cannot come
        # between taking the lock and the block that gives it back.
        with self._stop_lock:
            self._finish_stopping(graceful)

    def _wait_for_other_stops(self) -> None:
        """Wait until no thread is finishing a stop, looking every 10 ms;
        without taking the lock, so an interrupted wait leaves nothing
        held."""
        while self._stop_lock.locked():
            time.sleep(_waits.SLICE_SECONDS / 10)

    def _finish_stopping(self, graceful: bool) -> None:
        with self._lock:
            self._stopping = True
            self._feeder_wakeup.notify()
            self._notify_results()
        feeder, self._feeder = self._feeder, None
        if feeder is threading.current_thread():
            feeder = None
        stuck_feeder = None
        if feeder is not None:
            _waits.join(feeder, _pool.GRACEFUL_CLOSE_SECONDS if graceful else 1.0)
            if graceful and feeder.is_alive():
                # Still sending to a worker whose pipe is full (a worker
                # stuck in its function, big items): ending the workers
                # breaks the pipe, which ends the send (joined below).
                stuck_feeder = feeder
                graceful = False
        # A consumer may be feeding one step inline: let it finish first.
        # It pulls from a sequence in memory, but may be sending to a worker
        # whose pipe is full, as a feeder may (see above).
        got_role = _waits.acquire(
            self._feed_role, _pool.GRACEFUL_CLOSE_SECONDS if graceful else 1.0
        )
        if not got_role:
            graceful = False
        try:
            pool, self._pool = self._pool or self._pool_closing, None
        finally:
            if got_role:
                self._feed_role.release()
        if pool is not None:
            self._pool_closing = pool
            pool.close(graceful=graceful)
            self._pool_closing = None
        if stuck_feeder is not None:
            # A send to a terminated worker has failed by now; a feeder stuck
            # in the input cannot be ended (a thread): it is left to end when
            # the input gives its next item, and then feeds no more (_step).
            _waits.join(stuck_feeder, STUCK_FEEDER_SECONDS)
        if feeder is not None and feeder.is_alive():
            self._feeder_left = feeder
        with self._lock:
            self._stopped = True
            for task in self._tasks:
                task.output.ready.clear()
                task.output.drop_handed()
                task.output.pending.clear()
            self._notify_results()
        _live_numaps.discard(self)
        if self._end_if_collected is not None:
            self._end_if_collected.detach()
            self._end_if_collected = None
        self._started.clear()

    def _abandon(self) -> None:
        # At interpreter exit: end the workers now, without waiting for them.
        self._stop(graceful=False)

    def __enter__(self) -> NuMap:
        """Start the NuMap unless it is started already; after a separate
        start(stages=(1,)), start its feeding (stage 2). A start that
        raises (also a Ctrl-C raised once the map runs) stops the map:
        ``__exit__`` is not called when ``__enter__`` raises."""
        stages = self._stages_not_started()
        if stages:
            try:
                self.start(stages)
            except BaseException:
                self._stop(graceful=False)
                self._give_back_sigint()
                raise
        return self

    def _stages_not_started(self) -> tuple[int, ...]:
        # A stopping map counts as started: start() says what to do.
        if not self._started.is_set():
            return (1, 2)
        if self._feeder is None and not self._stopping:
            return (2,)
        return ()

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        """Stop the NuMap. Left normally (also by ``break``): as stop(),
        the workers first finish the items inside the map. Left by an
        exception (also Ctrl-C): worker processes are terminated at once
        and the items inside the map are dropped, as Pool's ``with`` does."""
        if exc_type is None:
            self.stop()
        else:
            self._stop(graceful=False)
            self._give_back_sigint()

    def __repr__(self) -> str:
        state = "started" if self._started.is_set() else "not started"
        return (
            f"<NuMap {self.name} {self.worker_type} x{self.worker_num} "
            f"tasks={len(self._tasks)} {state}>"
        )


_interrupts.FAST_PATHS.update(
    {
        NuMap.__next__.__code__,
        NuMap._take.__code__,
        NuMap._next_run.__code__,
        _NuMapTask.__next__.__code__,
    }
)
