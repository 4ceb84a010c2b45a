"""Worker pools: they run batches of items and deliver batches of results.

A pool receives batches ``(task_id, start, items)`` from the NuMap's feeding
side (one thread at a time: the feeder thread, or a consumer feeding one
batch inline) through :meth:`submit` and hands each batch's results, in item order,
to the ``deliver(task_id, start, values, errors)`` callback it was built
with. A value that stands for an error is wrapped in :class:`Raised`;
``errors`` is False only when none of the values is one (so that the
consumer side need not look). Every item
submitted is delivered exactly once, as a value or as an error, whatever
happens to the workers.

:class:`ThreadPool` runs the functions in threads of this process and never
pickles anything. :class:`ProcessPool` drives :class:`~numap._channel.Channel`
objects (local processes, remote workers); it ships each task's function to
each worker once, sends items in batches (where results are handed out in
order and none is given up, fast items to as few workers as keep up, see
:func:`pick_worker`), tracks which batches each
worker holds, and when a worker is lost, delivers its batches as errors and
replaces it if it can.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import queue
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from multiprocess.connection import wait as wait_for_any

from numap import _protocol, _waits
from numap._channel import (
    Channel,
    ChannelLost,
    ProcessChannel,
    interpreter_exiting,
)
from numap._errors import NuMapError, RemoteError, SerializationError
from numap._watch import HAVE_POLL, Watcher

Deliver = Callable[[int, int, list, bool], None]
# A batch's results as delivered: (task_id, start, values, errors).
Results = tuple[int, int, list, bool]

# How long a graceful close waits for workers to finish the batches they
# hold, before they are terminated.
GRACEFUL_CLOSE_SECONDS = 30.0

# How long the background receiver leaves the pipes to a consumer that
# received results itself and went back to its own work: a consumer that
# comes back sooner finds the receive role free, without a thread hand-off.
RECEIVER_LINGER_SECONDS = 0.005

# The longest single wait of a receiving consumer (longer timeouts are
# waited for in several steps).
MAX_WAIT_SECONDS = 3600.0

# The weight of the newest measurement in the running averages of a
# task's time per item and of the time between batches: a few batches
# are enough to follow a change of pace.
PACE_WEIGHT = 0.25
# A worker takes a batch behind those it holds only if it should be done
# with them within this share of the time to the next batch: it is then
# idle half the time or more, and a second worker would add little. A
# worker busier than that may be what the parent waits for, and a worker
# chosen that way keeps the batches coming at its own pace, which must
# not be taken for the parent's.
KEEP_UP_SHARE = 0.5
# A worker this many gaps between batches past the time it should have
# been done is running late (an item slower than its task's average), and
# is not given more. Less than that is the usual delay of an answer: it
# waits in the pipe until the parent, busy with the other items in
# flight, reads it.
LATE_GAPS = 4.0
# How far one gap between batches may lift their running average, as a
# multiple of it: a pause of the consumer, or of the whole program, then
# does not make a busy worker look free enough to queue items behind (a
# lasting slowdown still lifts it, by up to a quarter per batch).
GAP_CEILING = 2.0


class Raised:
    """An error in the place of a result: ``next`` raises ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


class TaskSpec:
    """What a pool needs to know about a task.

    ``then`` holds the specs of tasks chained after this one in the same
    NuMap whose calls the workers make right after this task's, on the same
    item (the intermediate results never leave the worker).
    """

    __slots__ = ("func", "args", "kwargs", "then")

    def __init__(
        self, func: Callable, args: tuple, kwargs: dict, then: tuple = ()
    ) -> None:
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.then: tuple[TaskSpec, ...] = then

    def stages(self) -> list[_protocol.Stage]:
        """(func, args, kwargs) of this task, then of each task in ``then``."""
        return [(spec.func, spec.args, spec.kwargs) for spec in (self, *self.then)]


def start_thread(thread: threading.Thread, role: str) -> None:
    """Start ``thread``; NuMapError naming its ``role`` when no thread can
    start (out of threads or memory, or the interpreter is exiting)."""
    try:
        thread.start()
    except RuntimeError as error:
        raise NuMapError(
            f"cannot start {role} ({error}); free threads or memory, then start "
            f"the map again"
        ) from error


def errors_for(count: int, error: BaseException) -> list:
    return [Raised(error) for _ in range(count)]


# --------------------------------------------------------------------------
# Threads


def _keep_traceback(error: BaseException, traceback_text: str) -> BaseException:
    # In this process the exception keeps its own __traceback__.
    return error


class ThreadPool:
    """``worker_num`` threads that take batches from one queue.

    State: ``_batches`` is a SimpleQueue of batches (``None`` tells one
    thread to end); ``_calls`` (one callable per task, its chained stages
    composed in) is replaced, never mutated, by set_tasks; ``_threads`` is
    appended to by start() (the first worker), then only by the starter
    thread, and close() reads it after joining the starter.
    ``_closed`` (under ``_deliver_lock``, which each delivery holds) is set
    by a close that is not graceful: a thread still running an item then
    delivers nothing, since its map may have been started again, with a
    new pool, and the old result would land among the new ones.
    Threads are daemons so that a program exiting without stop() is not
    held by a function that never returns.

    Each Thread.start() waits until the new thread runs (~0.25 ms here),
    so starting 32 threads in a row held the first item back ~8 ms and
    cost a 32-thread ``sleep(0.01)`` map 3 % of its time. start() starts
    the first thread itself (so that a failure to start any reaches the
    caller as NuMapError) and a starter thread starts the others while the
    first ones already take batches. A worker the starter cannot start
    (out of threads or memory) is warned about (RuntimeWarning), and the
    map runs with the threads it has.
    """

    def __init__(self, worker_num: int, deliver: Deliver) -> None:
        self.size = worker_num
        self._deliver = deliver
        self._batches: queue.SimpleQueue = queue.SimpleQueue()
        self._calls: Sequence[Callable] = ()
        self._threads: list[threading.Thread] = []
        self._starter: threading.Thread | None = None
        # Reentrant: a delivery may free its map, whose input generator's
        # cleanup may then close this very pool (_lifetime) on this thread.
        self._deliver_lock = threading.RLock()
        self._closed = False

    def start(self) -> None:
        try:
            self._start_worker(0)
            self._starter = threading.Thread(
                target=self._start_others, name="numap-thread-starter", daemon=True
            )
            start_thread(self._starter, "the starter of the worker threads")
        except BaseException:
            # (No thread could start, or Ctrl-C.) Every worker that started,
            # or that the starter may still start, takes one None and ends.
            for _ in range(self.size):
                self._batches.put(None)
            raise

    def _start_others(self) -> None:
        for number in range(1, self.size):
            try:
                self._start_worker(number)
            except NuMapError as error:
                # Out of threads, or the interpreter is exiting: the map
                # goes on with the threads it has.
                warnings.warn(
                    f"numap: started {number} of {self.size} worker threads; {error}",
                    RuntimeWarning,
                    stacklevel=1,
                )
                return

    def _start_worker(self, number: int) -> None:
        thread = threading.Thread(
            target=self._work, name=f"numap-thread-worker-{number}", daemon=True
        )
        start_thread(thread, f"worker thread {number}")
        self._threads.append(thread)

    def set_tasks(self, tasks: Sequence[TaskSpec]) -> None:
        self._calls = tuple(_protocol.compose(task.stages()) for task in tasks)

    def runs_on_this_thread(self) -> bool:
        """True when called by one of this pool's worker threads."""
        return threading.current_thread() in self._threads

    def submit(self, task_id: int, start: int, items: list) -> None:
        self._batches.put((task_id, start, items))

    def _work(self) -> None:
        while True:
            batch = self._batches.get()
            if batch is None:
                return
            task_id, start, items = batch
            values, errors = _protocol.run_batch(
                self._calls[task_id], items, _keep_traceback
            )
            for offset, error in errors.items():
                values[offset] = Raised(error)
            with self._deliver_lock:
                if self._closed:
                    return
                self._deliver(task_id, start, values, bool(errors))

    def close(self, graceful: bool = True) -> None:
        """End the threads after the batches already queued; join them.

        graceful=False ends them as soon as it can without waiting for
        them (threads cannot be terminated): the queued batches are
        dropped, and each thread ends after the item it runs, whose result
        is dropped too. A thread stuck in a function that never returns
        cannot be ended.
        """
        if self._starter is not None:
            _waits.join(self._starter)
        if not graceful:
            with self._deliver_lock:
                self._closed = True
            self._drop_queued_batches()
        for _ in self._threads:
            self._batches.put(None)
        if graceful:
            for thread in self._threads:
                _waits.join(thread)
        self._threads = []

    def _drop_queued_batches(self) -> None:
        # Not run: the threads then end as soon as their current item does.
        with contextlib.suppress(queue.Empty):
            while True:
                self._batches.get_nowait()


# --------------------------------------------------------------------------
# Processes


class _Worker:
    """One channel as the pool sees it.

    State, guarded by the pool's ``_lock``:
      inflight  batch_id -> (task_id, start, count, seconds) sent and not
                answered; seconds: the work expected of the batch, count
                times its task's time per item when it was sent (None
                while that was unknown: the batch is unpaced)
      load      total items in inflight
      unpaced   how many inflight batches are unpaced
      expected  total seconds of the paced inflight batches
      free_at   when (time.perf_counter()) the worker should be done with
                its inflight batches: set when a batch reaches an idle
                worker and when an answer comes (the batches left started
                by then), pushed back by each batch sent. Not moved by
                time, so it falls behind a worker stuck on a slow item.
                Both 0.0 once inflight is empty; free_at is meaningless
                while unpaced
      local     a worker process on this machine, whose pipe the parent
                waits on (see pick_worker)
      sent      task ids whose function this worker has received
      lost      set once, when the channel broke or was closed; a lost
                worker is never chosen again and its inflight is empty
    """

    __slots__ = (
        "channel",
        "inflight",
        "load",
        "unpaced",
        "expected",
        "free_at",
        "local",
        "sent",
        "lost",
        "reader",
    )

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.inflight: dict[int, tuple[int, int, int, float | None]] = {}
        self.load = 0
        self.unpaced = 0
        self.expected = 0.0
        self.free_at = 0.0
        self.local = channel is not None and channel.waitable is not None
        self.sent: set[int] = set()
        self.lost = False
        self.reader: threading.Thread | None = None


class ProcessPool:
    """Batches to worker channels, results back to whoever receives them.

    Threads: one thread at a time calls submit (the holder of the NuMap's
    feed role: its feeder, or a consumer feeding inline). Results of
    channels with a ``waitable`` (local worker processes) are received by
    the holder of the receive role, ``_role``: a consumer waiting in
    ``next`` (:meth:`receive`, so that a result reaches it without a thread
    hand-off), or else the background receiver thread, which takes the role
    once no consumer has received for RECEIVER_LINGER_SECONDS, so that
    results, lost workers and full pipes are always attended to. The holder
    (consumer or background receiver) watches the pipes briefly before it
    blocks on them (:mod:`numap._watch`), as the workers do on theirs. Other
    channels (remote workers) have a reader thread each. A lost channel is
    handled by whichever thread sees it first (receiver or submitter);
    :meth:`_lose` is idempotent.

    State, guarded by ``_lock``:
      _workers   live workers (lost ones are removed at once, before their
                 channel is closed, so a receiver never waits on a closed one)
      _closing   set by close(): lost workers are no longer replaced, the
                 background receiver ends once no waitable worker is left
      _replacing replacements being started; while it is > 0 and no worker
                 is live, _dispatch waits on _worker_added instead of failing
      _readers   every reader thread ever started, for close() to join
      _receivers consumers inside receive() that found the receive role
                 taken; with _consumer_receiving and _last_receive it keeps
                 the background receiver parked on _receiver_idle
      _background_receiving  the background receiver holds _role; a
                 consumer that wants the role wakes it through _wake_write
      _item_seconds  per task, the running average of its time per item
                 in a worker (None until its first result; always None
                 where batches do not queue behind others, which has no
                 use for it), from the
                 seconds each result frame carries; written by receivers,
                 read by the submitter
    Written without the lock (single stores; read under it):
      _consumer_receiving  a consumer holds _role (receive()'s usual case,
                 which takes no lock); written by that holder only
      _last_receive  when a consumer last left receive()
    The submitter's own (one thread at a time submits): _batch_gap, the
    running average of the seconds between batches (None until a second
    batch), and _last_batch, when the last batch was sent (None before the
    first). See :func:`pick_worker` for what they decide.
    Only the holder of _role waits on or receives from waitable channels.
    """

    def __init__(
        self,
        worker_num: int,
        deliver: Deliver,
        remote: Callable[[], list[Channel]] | None = None,
        context: Any = None,
        queue_behind: bool = True,
    ) -> None:
        """``queue_behind``: a batch may queue behind the batches a busy
        worker holds (see :func:`pick_worker`); for a map that hands its
        results out in input order and never gives one up."""
        self.size = worker_num
        self._queue_behind = queue_behind
        self._deliver = deliver
        self._open_remote = remote
        self._context = context
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._readers: list[threading.Thread] = []
        self._closing = False
        self._replacing = 0  # lost workers whose replacement is starting
        self._worker_added = threading.Condition(self._lock)
        self._batch_ids = itertools.count()
        self._item_seconds: list[float | None] = []
        self._batch_gap: float | None = None
        self._last_batch: float | None = None
        self._task_frames: list[bytes | None] = []
        self._task_broken: list[str | None] = []
        self._role = threading.Lock()
        self._receiver_idle = threading.Condition(self._lock)
        self._receivers = 0
        self._consumer_receiving = False
        self._last_receive = 0.0
        self._background_receiving = False
        self._background: threading.Thread | None = None
        # Counts wake() calls; a wake's byte in the pipe is drained by
        # whichever thread holds the receive role then (see receive()).
        self.wakes = 0
        self._wake_lock = threading.Lock()
        # Bumped under _lock whenever _workers changes; the receive role's
        # holder then rebuilds what it polls: _polled maps file descriptors
        # to workers, _watcher waits on them and the wake pipe.
        self._workers_version = 0
        self._polled_version = -1
        self._polled: dict[int, _Worker] = {}
        self._watcher: Watcher | None = None
        # Closed only when the pool is collected: a thread that still holds
        # the pool may write to or wait on them at any time before that.
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        finalizer = weakref.finalize(
            self, _close_fds, self._wake_read, self._wake_write
        )
        finalizer.atexit = False  # threads may still use them during the exit

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> None:
        channels: list[Channel] = []
        try:
            for _ in range(self.size):
                channels.append(ProcessChannel(self._context))
            if self._open_remote is not None:
                channels.extend(self._open_remote())
            self._background = threading.Thread(
                target=self._receive_in_background,
                name="numap-receiver",
                daemon=True,
            )
            start_thread(self._background, "the thread that receives results")
        except BaseException:
            # (Also when no thread can be started.) No worker outlives a
            # pool that failed to start.
            for channel in channels:
                channel.close()
            raise
        # Inside the try: a Ctrl-C raised by a program's own SIGINT handler
        # right after len() would leave these workers to nobody.
        try:
            self.size = len(channels)
            for channel in channels:
                self._add_worker(channel)
        except BaseException:
            self.close(graceful=False)
            for channel in channels:  # the ones not added yet
                channel.close()
            raise

    def _add_worker(self, channel: Channel) -> None:
        worker = _Worker(channel)
        if channel.waitable is None:
            reader = threading.Thread(
                target=self._read,
                args=(worker,),
                name=f"numap-reader {channel.label}",
                daemon=True,
            )
            worker.reader = reader
            # Listed first: the reader may lose the worker at once.
            with self._lock:
                self._workers.append(worker)
                self._workers_version += 1
            try:
                start_thread(reader, f"the reader thread of {channel.label}")
            except NuMapError:
                with self._lock:
                    self._workers.remove(worker)
                    self._workers_version += 1
                worker.reader = None  # never started: nothing to join
                raise
            with self._lock:
                self._readers.append(reader)
        else:
            with self._lock:
                self._workers.append(worker)
                self._workers_version += 1
            self.wake()  # the receiver waits on the channels it knew

    def set_tasks(self, tasks: Sequence[TaskSpec]) -> None:
        """Pickle each task's function once; workers receive it on first use."""
        frames: list[bytes | None] = []
        broken: list[str | None] = []
        for task_id, task in enumerate(tasks):
            try:
                payload = _protocol.dumps_task(task.stages())
            except _protocol.PayloadError as error:
                frames.append(None)
                broken.append(
                    f"the function, args or kwargs of task {task_id} cannot be "
                    f"pickled for a worker process: {error}; use "
                    "worker_type='thread' or a picklable function"
                )
            else:
                frames.append(_protocol.encode_task(task_id, payload))
                broken.append(None)
        self._task_frames = frames
        self._task_broken = broken
        with self._lock:
            self._item_seconds = [None] * len(tasks)

    def close(self, graceful: bool = True) -> None:
        """Stop every worker and join every reader thread.

        graceful: workers first finish the batches they hold (their results
        are still delivered); otherwise they are terminated at once.
        """
        with self._lock:
            self._closing = True
            self._receiver_idle.notify_all()
            workers = list(self._workers)
        self.wake()
        background = self._background
        if graceful:
            for worker in workers:
                with contextlib.suppress(ChannelLost):
                    worker.channel.send(_protocol.encode_stop())
            deadline = time.monotonic() + GRACEFUL_CLOSE_SECONDS
            for worker in workers:
                if worker.reader is not None:
                    _waits.join(worker.reader, max(0.0, deadline - time.monotonic()))
            if background is not None:
                _waits.join(background, max(0.0, deadline - time.monotonic()))
        else:
            # All at once: closed one by one, each busy worker would first
            # get the time to stop on its own.
            for worker in workers:
                worker.channel.terminate()
        self._lose_all(workers, "the NuMap was stopped")
        self.wake()
        with self._lock:
            readers = list(self._readers)
        if background is not None:
            readers.append(background)
        for reader in readers:
            if reader is not threading.current_thread():
                _waits.join(reader)

    # -- sending -----------------------------------------------------------

    def submit(self, task_id: int, start: int, items: list) -> None:
        broken = self._task_broken[task_id]
        if broken is not None:
            self._deliver(
                task_id,
                start,
                errors_for(len(items), SerializationError(broken)),
                True,
            )
            return
        try:
            self._dispatch(task_id, start, items)
        except _protocol.PayloadError:
            self._submit_picklable_runs(task_id, start, items)

    def _submit_picklable_runs(self, task_id: int, start: int, items: list) -> None:
        # Some item does not pickle: it alone gets an error; the runs of
        # items around it are sent as batches of their own.
        run: list = []
        run_start = start
        for index, item in enumerate(items, start):
            try:
                _protocol.dumps(item)
            except _protocol.PayloadError as error:
                if run:
                    self._dispatch(task_id, run_start, run)
                    run = []
                message = (
                    f"item {index} of task {task_id} ({type(item).__name__}) "
                    f"cannot be pickled for a worker process: {error}"
                )
                self._deliver(
                    task_id, index, [Raised(SerializationError(message))], True
                )
                run_start = index + 1
                continue
            run.append(item)
        if run:
            self._dispatch(task_id, run_start, run)

    def _dispatch(self, task_id: int, start: int, items: list) -> None:
        """Send ``items`` as one batch to the worker :func:`pick_worker`
        chooses (if batches may queue behind others; else to the least
        loaded).

        Raises PayloadError, having sent nothing, when they do not pickle.
        """
        count = len(items)
        # The frame is built whole (one copy of the payload) before a worker
        # is chosen; only one thread submits, so ids still rise in order.
        batch_id = next(self._batch_ids)
        prefix = _protocol.batch_prefix(batch_id, task_id, start, count)
        frame = _protocol.dumps(items, prefix=prefix)
        with self._lock:
            # _workers holds live workers only (_lose removes them).
            while not self._workers and self._replacing:
                self._worker_added.wait()
            if self._queue_behind:
                now = time.perf_counter()  # after the wait for a worker
                gap = self._count_gap(now)
                worker = pick_worker(self._workers, now, gap)
            else:
                # Results are handed out as they come, or one may be given
                # up (skip=True): an item queued behind a slow one would
                # wait for it for nothing, or be given up with it. No pace is kept
                # either (every batch is unpaced): ``now`` goes unread.
                now = 0.0
                worker = least_loaded(self._workers)
            if worker is not None:
                pace = self._item_seconds[task_id]
                seconds = None if pace is None else count * pace
                worker.inflight[batch_id] = (task_id, start, count, seconds)
                if seconds is None:
                    worker.unpaced += 1
                else:
                    if not worker.load:
                        worker.free_at = now  # idle: it starts on it now
                    worker.free_at += seconds
                    worker.expected += seconds
                worker.load += count
                announce = task_id not in worker.sent
                if announce:
                    worker.sent.add(task_id)
        if worker is None:
            error = NuMapError(
                f"no worker is left to run items {start}..{start + count - 1} of "
                f"task {task_id}: every worker was lost and none could be "
                "replaced (remote workers are not; the errors of the items "
                "they held say why each was lost). stop() the map, restart "
                "the hosts or give it local workers, and start it again"
            )
            self._deliver(task_id, start, errors_for(count, error), True)
            return
        try:
            if announce:
                task_frame = self._task_frames[task_id]
                assert task_frame is not None
                worker.channel.send(task_frame)
            worker.channel.send(frame)
        except ChannelLost as lost:
            # The batch was registered, so _lose delivers it as errors.
            self._lose(worker, lost.reason)

    def _count_gap(self, now: float) -> float:
        """Count the batch sent at ``now`` into the running average of the
        gaps between batches (submitter only); return that average (0.0
        before a second batch)."""
        last, self._last_batch = self._last_batch, now
        if last is None:
            return 0.0
        gap = now - last
        average = self._batch_gap
        if average is not None and gap > GAP_CEILING * average:
            gap = GAP_CEILING * average
        self._batch_gap = _running_average(average, gap)
        return self._batch_gap

    # -- receiving ---------------------------------------------------------

    def receive(self, timeout: float | None, wakes_seen: int) -> bool:
        """Receive and deliver result frames in the calling thread.

        Waits up to ``timeout`` seconds (None: no limit) until at least one
        frame arrived, a channel was lost, or :meth:`wake` was called; does
        not wait at all if :meth:`wake` was called since ``wakes`` was
        ``wakes_seen`` (read by the caller when it decided to wait: the byte
        of such a wake may have been drained by the previous holder of the
        receive role). Returns False at once, receiving nothing, when
        another consumer holds the receive role: the caller must then wait
        for a delivery.
        """
        if timeout is not None and timeout > MAX_WAIT_SECONDS:
            # Lock and poll timeouts have a ceiling; the caller looks again.
            timeout = MAX_WAIT_SECONDS
        if not self._role.acquire(blocking=False):
            return self._receive_after_the_holder(timeout, wakes_seen)
        # The usual case, one consumer: no lock taken.
        self._receive_holding_the_role(timeout, wakes_seen)
        return True

    def _receive_holding_the_role(self, timeout: float | None, wakes_seen: int) -> None:
        """receive()'s work, by a consumer that took _role (given back
        here). While it holds the role, _consumer_receiving keeps the
        background receiver parked, and _last_receive does so for
        RECEIVER_LINGER_SECONDS after."""
        try:
            self._consumer_receiving = True
            if self.wakes == wakes_seen:
                self._receive_once(timeout)
        finally:
            self._last_receive = time.monotonic()
            self._consumer_receiving = False
            self._role.release()

    def _receive_after_the_holder(self, timeout: float | None, wakes_seen: int) -> bool:
        """receive() when another thread held the role a moment ago."""
        with self._lock:
            self._receivers += 1
            background = self._background_receiving
        try:
            if not self._role.acquire(blocking=False):
                if not background:
                    return False
                self.wake()  # let the background receiver hand the role over
                if not self._role.acquire(timeout=-1 if timeout is None else timeout):
                    return True  # the time is up; the caller looks again
            self._receive_holding_the_role(timeout, wakes_seen)
        finally:
            with self._lock:
                self._receivers -= 1
        return True

    def wake(self) -> None:
        """Make the holder of the receive role return from its wait."""
        with self._wake_lock:
            self.wakes += 1
        with contextlib.suppress(BlockingIOError):  # full: already woken
            os.write(self._wake_write, b"!")

    def _receive_in_background(self) -> None:
        while True:
            with self._lock:
                while not self._closing:
                    idle = time.monotonic() - self._last_receive
                    if (
                        not self._receivers
                        and not self._consumer_receiving
                        and idle >= RECEIVER_LINGER_SECONDS
                    ):
                        break
                    self._receiver_idle.wait(RECEIVER_LINGER_SECONDS)
                if self._nothing_left_to_receive():
                    return
            if not self._role.acquire(timeout=RECEIVER_LINGER_SECONDS):
                continue
            try:
                with self._lock:
                    # Again, now that this thread holds the role: a consumer
                    # that held it until now may have received the end of
                    # the last worker, and drained close()'s wake with it.
                    # Waiting then would wait for a wake that already came
                    # (until close() gave up on this thread, 30 s later).
                    if self._nothing_left_to_receive():
                        return
                    self._background_receiving = True
                self._receive_once(None)
            finally:
                with self._lock:
                    self._background_receiving = False
                self._role.release()

    def _nothing_left_to_receive(self) -> bool:
        """(Holding _lock.) Closing, and no worker with a pipe is left."""
        return self._closing and not any(worker.local for worker in self._workers)

    def _receive_once(self, timeout: float | None) -> None:
        # Holder of _role only: the poll state (_polled, _polled_version,
        # _watcher) belongs to it.
        if self._polled_version != self._workers_version:  # read without the lock
            self._refresh_polled()
        polled = self._polled
        try:
            ready = self._wait(polled, timeout)
        except (OSError, ValueError):
            return  # a channel was closed meanwhile (and left _workers first)
        for fd, _ in ready:
            worker = polled.get(fd)
            if worker is None:
                with contextlib.suppress(OSError):
                    os.read(self._wake_read, 4096)
                continue
            self._receive_from(worker)

    def _refresh_polled(self) -> None:
        # Holder of _role only.
        with self._lock:
            self._polled_version = self._workers_version
            self._polled = {
                worker.channel.waitable: worker
                for worker in self._workers
                if worker.channel.waitable is not None
            }
            self._watcher = None

    def _receive_from(self, worker: _Worker) -> None:
        # The worker's one receiver: the holder of _role, or the worker's
        # reader thread. Frames that came with the same read are taken now:
        # polling the pipe would not report them. The results of batches
        # that follow on in one task (a worker's usual answers) are
        # delivered together: one pass through the map's lock and merge
        # for them all. Results held are delivered however the loop ends.
        channel = worker.channel
        held: Results | None = None  # taken, not delivered yet
        try:
            while True:
                try:
                    frame = channel.recv()
                except ChannelLost as lost:
                    reason = lost.reason
                    break
                results = self._handle_result(worker, frame)
                if results is not None:
                    # Held before the delivery: if it raises, the finally
                    # delivers the new results, not these again.
                    ready, held = _join_results(held, results)
                    if ready is not None:
                        self._deliver(*ready)
                if not channel.has_frame():
                    return
        finally:
            if held is not None:
                self._deliver(*held)
        self._lose(worker, reason)

    def _wait(
        self, polled: dict[int, _Worker], timeout: float | None
    ) -> list[tuple[int, int]]:
        """(fd, events) for the descriptors of ``polled`` and the wake pipe
        that are ready (events 0 where select.poll is missing)."""
        if not HAVE_POLL:
            return [(fd, 0) for fd in wait_for_any([self._wake_read, *polled], timeout)]
        if self._watcher is None:
            self._watcher = Watcher([self._wake_read, *polled])
        return self._watcher.wait(timeout)

    def _read(self, worker: _Worker) -> None:
        # The reader thread of a channel without a ``waitable``: its recv
        # blocks, until the channel is lost (lost is read without the lock:
        # this thread set it, or its channel is closed and recv will fail).
        while not worker.lost:
            self._receive_from(worker)

    def _handle_result(
        self, worker: _Worker, frame: bytes | bytearray
    ) -> Results | None:
        """Account for a result frame of ``worker``: the (task_id, start,
        values, errors) to deliver, None for a stray frame."""
        batch_id, seconds, payload = _protocol.decode_result(frame)
        with self._lock:
            entry = worker.inflight.pop(batch_id, None)
            if entry is not None:
                task_id, start, count, expected = entry
                worker.load -= count
                if expected is None:
                    worker.unpaced -= 1
                else:
                    worker.expected -= expected
                if not worker.load:
                    worker.expected = worker.free_at = 0.0
                elif not worker.unpaced:
                    worker.free_at = time.perf_counter() + worker.expected
                if self._queue_behind:
                    self._item_seconds[task_id] = _running_average(
                        self._item_seconds[task_id], seconds / count
                    )
        if entry is None:
            return None  # already delivered as lost, or a stray frame
        values, errors = _decode_values(payload, task_id, start, count)
        return task_id, start, values, errors

    def _lose_all(self, workers: list[_Worker], reason: str) -> None:
        """``_lose`` every one of ``workers``, side by side: closing a
        worker may wait (a remote one for its host, seconds when the host
        froze; a local one that ignores SIGTERM for its grace before
        SIGKILL), and one after another that wait would be paid once per
        worker."""
        _waits.side_by_side(
            (
                f"numap-close {worker.channel.label}",
                functools.partial(self._lose, worker, reason),
            )
            for worker in workers
        )

    def _lose(self, worker: _Worker, reason: str) -> None:
        with self._lock:
            if worker.lost:
                return
            worker.lost = True
            self._workers.remove(worker)
            self._workers_version += 1
            held = list(worker.inflight.values())
            worker.inflight.clear()
            worker.load = 0
            worker.unpaced = 0
            worker.expected = worker.free_at = 0.0
            replace = (
                worker.channel.replaceable
                and not self._closing
                and not interpreter_exiting()
            )
            if replace:
                self._replacing += 1
        try:
            worker.channel.close()
            if replace:
                self._replace()
        finally:
            if replace:
                with self._lock:
                    self._replacing -= 1
                    self._worker_added.notify_all()
        # Delivered last, so that the items these errors free in the buffer
        # find the replacement already in place.
        for task_id, start, count, _ in held:
            values = [
                Raised(
                    worker.channel.lost_error(
                        f"{reason} while it held item {index} of task {task_id}"
                    )
                )
                for index in range(start, start + count)
            ]
            self._deliver(task_id, start, values, True)

    def _replace(self) -> None:
        try:
            channel = ProcessChannel(self._context)
        except OSError:
            return  # no replacement: the other workers carry on
        with self._lock:
            closing = self._closing
        if closing:
            channel.close()
        else:
            self._add_worker(channel)


def pick_worker(workers: Sequence[_Worker], now: float, gap: float) -> _Worker | None:
    """The worker for the batch sent at ``now`` (time.perf_counter()), None
    when ``workers`` is empty.

    The first local worker, in order, that is idle or should be done with
    the batches it holds within KEEP_UP_SHARE of ``gap``, the time between
    batches: all of them paced, and its ``free_at`` before that deadline.
    A worker more than LATE_GAPS gaps past its ``free_at`` is running late
    and is passed over. Failing that, the least loaded worker, the first of
    equals.

    Items much faster than the parent's pace (tiny ones, or any kind behind
    a slow consumer) thus queue on as few workers as keep up with the
    parent, and the others sleep on their pipes. Spread over all of them,
    every worker would be idle between items and watch its pipe meanwhile,
    taking CPU from the parent, which is what limits the pace of such
    items. Slower items go to the least loaded worker, which is idle if any
    is. Each batch's expected work comes from its own task's pace, so that
    the tasks of one map (pipelines run functions of any speed side by
    side) are each judged by their own. Remote workers do not watch a pipe
    of the parent's: they always get the least loaded choice.

    The pool uses it only for maps that hand results out in order and give
    none up. There, an item queued behind a slow one loses nothing: its
    result would wait for the slow one's anyway. Unordered results are
    handed out as they come, and would wait for nothing; with skip=True, a
    timeout gives the slow one up and the consumer wants the next, which
    would be stuck behind it and be given up too.
    """
    deadline = now + KEEP_UP_SHARE * gap
    late = now - LATE_GAPS * gap
    for worker in workers:
        if worker.local and (
            not worker.load
            or (not worker.unpaced and late <= worker.free_at < deadline)
        ):
            return worker
    return least_loaded(workers)


def _running_average(average: float | None, sample: float) -> float:
    """``average`` moved towards ``sample`` by PACE_WEIGHT (the sample
    itself when there is no average yet)."""
    if average is None:
        return sample
    return average + PACE_WEIGHT * (sample - average)


def _join_results(
    held: Results | None, results: Results
) -> tuple[Results | None, Results]:
    """(results to deliver now, results to hold): ``results`` join ``held``
    when they are the next items of its task; else ``held`` is ready."""
    if held is None:
        return None, results
    task_id, start, values, errors = held
    if results[0] != task_id or results[1] != start + len(values):
        return held, results
    values.extend(results[2])
    return None, (task_id, start, values, errors or results[3])


def least_loaded(workers: Sequence[_Worker]) -> _Worker | None:
    """The worker holding the fewest items, the first of equals; None when
    ``workers`` is empty."""
    # A plain loop: min() with a key function costs a call per worker.
    least = None
    for worker in workers:
        if least is None or worker.load < least.load:
            least = worker
    return least


def _close_fds(*fds: int) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


_FAILURE_TYPES: dict[str, type[BaseException]] = {
    _protocol.SERIALIZATION_ERROR: SerializationError,
    _protocol.REMOTE_ERROR: RemoteError,
}


def _decode_values(
    payload: bytes | memoryview, task_id: int, start: int, count: int
) -> tuple[list, bool]:
    """(values, whether any of them is an error) of a result payload."""
    try:
        values, errors = _protocol.loads(payload)
    except _protocol.PayloadError as error:
        message = (
            f"the results of items {start}..{start + count - 1} of task "
            f"{task_id} could not be unpickled: {error}"
        )
        return errors_for(count, SerializationError(message)), True
    if not errors:
        return values, False
    for offset, failure in errors.items():
        if isinstance(failure, tuple):
            kind, message = failure
            failure = _FAILURE_TYPES.get(kind, RemoteError)(message)
        values[offset] = Raised(failure)
    return values, True
