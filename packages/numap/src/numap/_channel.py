"""Channels: one worker process at the end of a byte pipe.

A channel carries the frames of :mod:`numap._protocol` to one worker and
back. The pool sees every worker, local or remote, as a :class:`Channel`;
when a channel breaks, the pool turns the items it held into errors of the
channel's ``lost_error`` type and, if the channel is ``replaceable``, starts
a new one.

This module holds the abstract channel and the local one, a worker process
started with ``multiprocess`` (fork where the platform has it: fast to
start, and lambdas and closures need no pickling to get there) and
connected by two pipes, one each way (one duplex Pipe when spawned). Remote
channels live in :mod:`numap._remote`.
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import os
import signal
import threading
import time
from collections import deque
from typing import Any

import multiprocess
import multiprocess.util

from numap import _protocol
from numap._errors import WorkerLostError
from numap._held_signals import HeldSignals
from numap._watch import HAVE_POLL, Watcher

# How long a worker may take to exit after it was asked to, before it is
# terminated (SIGTERM), and again before it is killed (SIGKILL).
EXIT_GRACE_SECONDS = 2.0
# How often a worker looks whether its parent is still there (see
# _end_with_parent).
PARENT_CHECK_SECONDS = 1.0


class ChannelLost(Exception):
    """The worker at the end of a channel is gone; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Channel(abc.ABC):
    """One worker at the end of a byte pipe that speaks numap._protocol."""

    label: str
    replaceable: bool
    lost_error: type[BaseException]
    # A file descriptor, readable when a frame (or the end of the channel)
    # can be received, unless has_frame() says one is buffered already;
    # None: only a blocking recv in a thread of its own can receive from
    # this channel.
    waitable: int | None = None

    @abc.abstractmethod
    def send(self, data: bytes) -> None:
        """Send one frame. Raises ChannelLost when the worker is gone."""

    @abc.abstractmethod
    def recv(self) -> bytes | bytearray:
        """Block for the next frame. Raises ChannelLost when the worker is gone."""

    def has_frame(self) -> bool:
        """True when a frame is buffered here, where waiting on ``waitable``
        would not see it (only channels with a ``waitable`` buffer)."""
        return False

    @abc.abstractmethod
    def close(self) -> None:
        """End and reap the worker. Idempotent."""

    def terminate(self) -> None:
        """Make the worker end now, without finishing what it holds, so
        that close() need not wait for it. By default nothing: close()
        ends the worker as it always does."""
        return None


def interpreter_exiting() -> bool:
    """True once multiprocess's exit handler runs: start no more processes."""
    return bool(getattr(multiprocess.util, "_exiting", False))


def process_context() -> Any:
    """The multiprocess context local workers start in."""
    if "fork" in multiprocess.get_all_start_methods():
        return multiprocess.get_context("fork")
    return multiprocess.get_context("spawn")


def _worker_main(
    inbound: Any, outbound: Any, parent_ends: tuple, parent_pid: int
) -> None:
    """Serve frames: ``inbound`` and ``outbound`` are file descriptors, or
    one duplex Connection (spawned workers); ``parent_ends`` are the
    parent's ends a forked child holds copies of; ``parent_pid`` is the
    process that started this worker."""
    # Ctrl-C in a terminal reaches the whole process group; the parent
    # decides when workers end, so they must not die with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # From here on, a SIGTERM ends the worker quietly (a map whose start
    # is undone terminates workers still setting up). The handler is
    # installed inside the try: a SIGTERM that is already pending runs it
    # as soon as it is installed, before signal.signal() returns.
    try:
        # A forked worker starts with the parent's Python handlers; ours
        # replaces a program's SIGTERM handler (which would run inside the
        # user's function).
        signal.signal(signal.SIGTERM, _raise_terminated)
        # Closing the copies of the parent's ends lets the worker see EOF
        # (and end) when the parent dies.
        for end in parent_ends:
            _close_end(end)
        if not isinstance(inbound, int):
            inbound = outbound = inbound.fileno()
        _watch_parent(parent_pid)
        reader = FdFrames(inbound, watch=True)
        writer = FdFrames(outbound)
        _protocol.serve(reader.recv, writer.send)
    except _protocol.Terminated:
        _end_of_sigterm()


def _watch_parent(parent_pid: int) -> None:
    """Start the thread of _end_with_parent; without it (no thread can be
    started here) the worker still ends, at the end of its item."""
    watcher = threading.Thread(
        target=_end_with_parent,
        args=(parent_pid,),
        name="numap-parent-watch",
        daemon=True,
    )
    with contextlib.suppress(RuntimeError):
        watcher.start()


def _end_with_parent(parent_pid: int) -> None:
    """End this worker once its parent is gone (killed, e.g. by SIGKILL or
    the OOM killer, so that it could not end its workers).

    A worker waiting for a batch sees its pipe close, but one in the middle
    of a long item would run it to the end, for nobody. So this thread
    looks every PARENT_CHECK_SECONDS: a parent that died leaves this
    process to another (init, or a subreaper), which changes
    ``os.getppid()``. It then sends this worker SIGTERM, which unwinds the
    item's function and runs the exit cleanups (see _end_of_sigterm), and
    SIGKILL EXIT_GRACE_SECONDS later in case the main thread is stuck in
    code that does not get back to Python. (``prctl``'s parent-death
    signal would fire when the parent's *thread* that started the worker
    ends, which for a replacement worker is any thread of the map.)
    """
    while os.getppid() == parent_pid:
        time.sleep(PARENT_CHECK_SECONDS)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(EXIT_GRACE_SECONDS)
    os.kill(os.getpid(), signal.SIGKILL)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _protocol.Terminated


def _end_of_sigterm() -> None:
    """End the worker as SIGTERM's default action would, after the exit
    cleanups a normal exit runs.

    The user's function has unwound (its ``finally`` blocks ran). The
    cleanups are multiprocess's finalizers, e.g. papy's removal of the
    FIFOs this worker wrote and nobody read; killed at once, the worker
    left them behind. Then the worker dies of SIGTERM, as terminate()
    expects and as the parent reports a worker that got one.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one ending is enough
    multiprocess.util._exit_function()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _close_end(end: Any) -> None:
    # A pipe end: a file descriptor (fork) or a multiprocess Connection.
    if isinstance(end, int):
        os.close(end)
    else:
        end.close()


def _widen(fd: int) -> None:
    # A bigger pipe lets a worker write a big result while the parent is
    # busy elsewhere (Linux only; the default of 64 KiB works, slower).
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, set_size, _PIPE_SIZE)


# Frames on a local worker's pipe: an 8-byte big-endian length, then the
# frame (the same framing as _protocol.write_frame on streams).
_LENGTH = _protocol.FRAME_LENGTH
_READ_SIZE = 1 << 16
_PIPE_SIZE = 1 << 20


class FdFrames:
    """Length-prefixed frames on a file descriptor, with raw os calls.

    Per frame this costs one write (header and frame without joining them),
    and usually one read: a read takes what the pipe holds, so small frames
    arrive whole and several frames may arrive at once (:meth:`has_frame`
    says one is waiting, where polling the descriptor would not see it).
    Not thread-safe: the owner serialises senders, and has one receiver at
    a time.
    """

    # Of the bytes read but not returned yet: _frames holds the whole
    # frames among them, in order, _rest the start of the frame after those
    # (empty when the reads ended where a frame did). A read is split into
    # frames at once: one pass over it, and has_frame only looks at
    # _frames.
    __slots__ = ("fd", "_frames", "_rest", "_watcher")

    def __init__(self, fd: int, watch: bool = False) -> None:
        """``watch``: before a read that would block, watch the descriptor
        briefly (see :mod:`numap._watch`); for a worker waiting for its
        next batch."""
        self.fd = fd
        self._frames: deque[bytes | bytearray] = deque()
        self._rest: bytes | bytearray = b""
        self._watcher: Watcher | None = None
        if watch and HAVE_POLL:
            self._watcher = Watcher([fd])

    def send(self, data: bytes) -> None:
        """Write one frame. Raises OSError when the other end is gone."""
        size = len(data)
        header = _LENGTH.pack(size)
        written = os.writev(self.fd, (header, data))
        if written < _LENGTH.size + size:  # rare: a partial write
            rest = memoryview(header + data)[written:]
            while rest:
                rest = rest[os.write(self.fd, rest) :]

    def has_frame(self) -> bool:
        """True when a whole frame was read already (recv returns it at
        once)."""
        return bool(self._frames)

    def recv(self) -> bytes | bytearray:
        """Read one frame. Raises EOFError at the end of input, OSError
        when the descriptor fails."""
        frames = self._frames
        while not frames:
            rest = self._rest
            if len(rest) >= _LENGTH.size:
                (size,) = _LENGTH.unpack_from(rest)
                if size > _READ_SIZE:
                    return self._recv_big(size)
            if self._watcher is not None:
                self._watcher.wait(None)
            chunk = os.read(self.fd, _READ_SIZE)
            if not chunk:
                raise EOFError("the other end of the pipe was closed")
            if not rest and len(chunk) >= _LENGTH.size:
                # The usual case at small buffers: the pipe held one whole
                # frame, cut from the chunk as read.
                (size,) = _LENGTH.unpack_from(chunk)
                if len(chunk) == _LENGTH.size + size:
                    return chunk[_LENGTH.size :]
            self._split(rest + chunk if rest else chunk)
        return frames.popleft()

    def _split(self, data: bytes | bytearray) -> None:
        """Append the whole frames at the start of ``data`` to _frames and
        keep the rest in _rest."""
        position = 0
        available = len(data)
        while available - position >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(data, position)
            end = position + _LENGTH.size + size
            if end > available:
                break
            self._frames.append(data[position + _LENGTH.size : end])
            position = end
        self._rest = data[position:]

    def _recv_big(self, size: int) -> bytearray:
        # The frame begun in _rest is bigger than a read: the rest of it is
        # read straight into its own buffer (the frames read before it were
        # all returned first, so a writer that dies inside it loses no
        # other).
        frame = bytearray(size)
        got = len(self._rest) - _LENGTH.size
        frame[:got] = memoryview(self._rest)[_LENGTH.size :]
        self._rest = b""
        view = memoryview(frame)
        while got < size:
            count = os.readv(self.fd, [view[got:]])
            if not count:
                raise EOFError("the other end of the pipe was closed inside a frame")
            got += count
        return frame


# Held by a thread while it starts a local worker: workers are started one
# at a time in this process (see ProcessChannel._start). Each worker is
# forked while its starter holds it, so a child gets a new one (a worker's
# function may start maps of its own).
_STARTING_A_WORKER = threading.Lock()


def _new_start_lock_in_child() -> None:
    global _STARTING_A_WORKER
    _STARTING_A_WORKER = threading.Lock()


os.register_at_fork(after_in_child=_new_start_lock_in_child)


class ProcessChannel(Channel):
    """A local worker process connected by two pipes (one each way).

    Forked workers get two os.pipe()s, the cheapest way through the kernel
    (an AF_UNIX socket costs more per read and write); spawned ones one
    duplex multiprocess Pipe (its descriptor is passed to the child).

    State and invariants:
      _reader, _writer  frames on the parent's ends (``waitable`` is the
                   reader's); only close() closes the ends, under _send_lock,
                   and marks them closed first (_fds_closed), so a
                   descriptor number is never used after it was released
      _send_lock   serialises senders, so frames never interleave
      _join_lock   one thread at a time joins the process (see _join)
      _closed      set once by close(); later calls return at once
    One thread at a time may call recv, or wait on ``waitable`` (the pool's
    holder of its receive role).
    """

    replaceable = True
    lost_error = WorkerLostError

    def __init__(self, context: Any = None) -> None:
        held = HeldSignals()
        try:
            self._start(context or process_context())
        except BaseException:
            held.release()
            raise
        try:
            held.release()
        except BaseException:
            # A Ctrl-C (or a SIGTERM the program turns into an exception)
            # came during the start: nobody else knows this worker yet.
            self.close()
            raise

    def _start(self, context: Any) -> None:
        self._conn: Any = None
        # From the pipes' creation until the child's ends are closed here,
        # a process forked by another thread would get copies of them, and
        # its copy of the child's write end would keep EOF (the sign of
        # this worker's death) from ever reaching us.
        with _STARTING_A_WORKER:
            if context.get_start_method() == "fork":
                child_in, parent_out = os.pipe()
                parent_in, child_out = os.pipe()
                _widen(parent_out)
                _widen(parent_in)
                args: tuple = (
                    child_in,
                    child_out,
                    (parent_out, parent_in),
                    os.getpid(),
                )
                child_ends: tuple = (child_in, child_out)
            else:
                self._conn, child_end = context.Pipe(duplex=True)
                parent_in = parent_out = self._conn.fileno()
                args = (child_end, None, (), os.getpid())
                child_ends = (child_end,)
            self._process = context.Process(
                target=_worker_main, args=args, daemon=True, name="numap-worker"
            )
            try:
                self._process.start()
            finally:
                # Only the child may hold its ends, or EOF would never
                # reach us.
                for end in child_ends:
                    _close_end(end)
        self.waitable = parent_in
        self._reader = FdFrames(parent_in)
        self._writer = FdFrames(parent_out)
        self._fds_closed = False
        self._send_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._join_lock = threading.Lock()
        self._closed = False
        self.pid: int = self._process.pid
        self.label = f"process {self.pid}"

    def send(self, data: bytes) -> None:
        with self._send_lock:
            try:
                if self._fds_closed:
                    raise OSError("the channel was closed")
                self._writer.send(data)
            except (OSError, EOFError, ValueError) as error:
                raise ChannelLost(self.loss_reason(error)) from error

    def has_frame(self) -> bool:
        """True when recv returns a frame without reading the pipe."""
        return self._reader.has_frame()

    def recv(self) -> bytes | bytearray:
        try:
            if self._fds_closed:
                raise OSError("the channel was closed")
            return self._reader.recv()
        except (OSError, EOFError, ValueError) as error:
            raise ChannelLost(self.loss_reason(error)) from error

    def loss_reason(self, error: BaseException | None = None) -> str:
        """Say why the worker is gone: its signal or exit code."""
        code = self._join(1.0)
        if code is None:
            detail = f" ({type(error).__name__}: {error})" if error else ""
            return f"{self.label} stopped answering{detail}"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"{self.label} was killed by {name}"
        return f"{self.label} exited with code {code}"

    def _join(self, timeout: float | None) -> int | None:
        """Wait up to ``timeout`` seconds (None: no limit) for the process
        to end: its exit code, None while it runs (or while another thread
        waits for it all that time)."""
        # Two threads that reap the process at once race: the loser's
        # waitpid() fails before the winner has stored the exit code, and
        # the loser reads "still running" (a worker killed while the
        # submitter wrote to it and the receiver read from it was then
        # said to have stopped answering). Reading exitcode reaps too, so
        # it is read under the lock as well.
        if not self._join_lock.acquire(timeout=-1 if timeout is None else timeout):
            return None
        try:
            self._process.join(timeout)
            code: int | None = self._process.exitcode
            return code
        finally:
            self._join_lock.release()

    def is_alive(self) -> bool:
        # Asking reaps an ended process: under the join lock, as _join.
        return self._join(0) is None

    def terminate(self) -> None:
        # SIGTERM (the worker unwinds its function, runs its exit cleanups
        # and dies of it: _end_of_sigterm); a worker that ended already but
        # was not reaped yet still holds its pid, so no other process can
        # get the signal.
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self._process.terminate()

    def ask_to_stop(self) -> None:
        """Send the stop frame: the worker ends after its queued batches."""
        with contextlib.suppress(ChannelLost):
            self.send(_protocol.encode_stop())

    def wait(self, timeout: float | None) -> bool:
        """Wait for the worker to exit; True when it has."""
        return self._join(timeout) is not None

    def close(self) -> None:
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.ask_to_stop()
        if not self.wait(EXIT_GRACE_SECONDS):
            self._process.terminate()
            if not self.wait(EXIT_GRACE_SECONDS):
                self._process.kill()
                self._join(None)
        with self._send_lock:
            self._fds_closed = True
            if self._conn is not None:
                self._conn.close()
            else:
                os.close(self._reader.fd)
                os.close(self._writer.fd)
