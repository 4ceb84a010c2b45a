"""Channels: one worker process at the end of a byte pipe.

A channel carries the frames of :mod:`numap._protocol` to one worker and
back. The pool sees every worker, local or remote, as a :class:`Channel`;
when a channel breaks, the pool turns the items it held into errors of the
channel's ``lost_error`` type and, if the channel is ``replaceable``, starts
a new one.

This module holds the abstract channel and the local one, a worker process
started with ``multiprocess`` (fork where the platform has it: fast to
start, and lambdas and closures need no pickling to get there) and
connected by a duplex pipe. Remote channels live in :mod:`numap._remote`.
"""

from __future__ import annotations

import abc
import contextlib
import signal
import threading
from typing import Any

import multiprocess
import multiprocess.util

from numap import _protocol
from numap._errors import WorkerLostError

# How long a worker may take to exit after it was asked to, before it is
# terminated (SIGTERM), and again before it is killed (SIGKILL).
EXIT_GRACE_SECONDS = 2.0


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
    # An object multiprocess.connection.wait accepts, readable when a frame
    # (or the end of the channel) can be received; None: only a blocking
    # recv in a thread of its own can receive from this channel.
    waitable: Any = None

    @abc.abstractmethod
    def send(self, data: bytes) -> None:
        """Send one frame. Raises ChannelLost when the worker is gone."""

    @abc.abstractmethod
    def recv(self) -> bytes:
        """Block for the next frame. Raises ChannelLost when the worker is gone."""

    @abc.abstractmethod
    def close(self) -> None:
        """End and reap the worker. Idempotent."""


def interpreter_exiting() -> bool:
    """True once multiprocess's exit handler runs: start no more processes."""
    return bool(getattr(multiprocess.util, "_exiting", False))


def process_context() -> Any:
    """The multiprocess context local workers start in."""
    if "fork" in multiprocess.get_all_start_methods():
        return multiprocess.get_context("fork")
    return multiprocess.get_context("spawn")


def _worker_main(child_end: Any, parent_end: Any) -> None:
    # Ctrl-C in a terminal reaches the whole process group; the parent
    # decides when workers end, so they must not die with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The forked child holds a copy of the parent's end; closing it lets
    # the worker see EOF (and end) when the parent dies.
    if parent_end is not None:
        parent_end.close()
    _protocol.serve(child_end.recv_bytes, child_end.send_bytes)


class ProcessChannel(Channel):
    """A local worker process connected by a multiprocess Pipe.

    State and invariants:
      _conn        parent end of the pipe; only this object closes it
      _send_lock   serialises senders, so frames never interleave
      _closed      set once by close(); later calls return at once
    One thread at a time may call recv, or wait on ``waitable`` (the pool's
    holder of its receive role).
    """

    replaceable = True
    lost_error = WorkerLostError

    def __init__(self, context: Any = None) -> None:
        context = context or process_context()
        parent_end, child_end = context.Pipe(duplex=True)
        forked = context.get_start_method() == "fork"
        self._process = context.Process(
            target=_worker_main,
            args=(child_end, parent_end if forked else None),
            daemon=True,
            name="numap-worker",
        )
        self._process.start()
        # Only the child may hold its end, or EOF would never reach us.
        child_end.close()
        self._conn = parent_end
        self.waitable = parent_end
        self._send_lock = threading.Lock()
        self._close_lock = threading.Lock()
        self._closed = False
        self.pid: int = self._process.pid
        self.label = f"process {self.pid}"

    def send(self, data: bytes) -> None:
        with self._send_lock:
            try:
                self._conn.send_bytes(data)
            except (OSError, EOFError, ValueError) as error:
                raise ChannelLost(self.loss_reason(error)) from error

    def recv(self) -> bytes:
        try:
            return self._conn.recv_bytes()
        except (OSError, EOFError, ValueError) as error:
            raise ChannelLost(self.loss_reason(error)) from error

    def loss_reason(self, error: BaseException | None = None) -> str:
        """Say why the worker is gone: its signal or exit code."""
        self._process.join(timeout=1.0)
        code = self._process.exitcode
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

    def is_alive(self) -> bool:
        return self._process.is_alive()

    def ask_to_stop(self) -> None:
        """Send the stop frame: the worker ends after its queued batches."""
        with contextlib.suppress(ChannelLost):
            self.send(_protocol.encode_stop())

    def wait(self, timeout: float | None) -> bool:
        """Wait for the worker to exit; True when it has."""
        self._process.join(timeout)
        return self._process.exitcode is not None

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
                self._process.join()
        with self._send_lock:
            self._conn.close()
