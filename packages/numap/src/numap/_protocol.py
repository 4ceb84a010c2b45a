"""The byte protocol between a NuMap and one worker process.

This module is the whole worker side. It imports only the standard library
(and ``dill`` when it is installed) and nothing of ``numap``: the remote
workers ship its source text to hosts where numap is not installed and run
:func:`serve_stdio` there in a fresh interpreter.

Frames (one ``bytes`` object each; the transport delimits them)::

    parent -> worker
      b"T" + task_id:Q                              + dumps(stages)
      b"B" + batch_id:Q task_id:Q start:Q count:Q   + dumps(list of items)
      b"S"                                          stop: finish and return
    worker -> parent
      b"R" + batch_id:Q seconds:d                   + dumps((values, errors))

A task's function is sent once per worker, before that worker's first batch
of the task. ``stages`` is a list of (func, args, kwargs): one for a plain
task, several for tasks chained inside one NuMap, which run one after the
other on each item without leaving the worker.

``values`` is a list with one entry per item of the batch; ``errors`` maps
an offset in the batch to the exception that replaces the value there (so
that a function may return an exception object as a plain value).
``seconds`` is how long the worker spent on the batch, from its frame to
its answer (unpickling, the calls, not the answer's pickling): the parent
learns from it how fast items go (see numap._pool).
Exceptions carry the worker's traceback text as a note; failures of numap
itself travel as ``(kind, message)`` pairs, kind being the name of a numap
exception type (this module cannot import numap on a remote host).

Payloads start with one flag byte: plain pickle (fast) or dill (for lambdas,
closures and other objects plain pickle refuses).
"""

from __future__ import annotations

import importlib
import os
import pickle
import socket
import struct
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, BinaryIO

try:
    import dill
except ImportError:  # the worker host may not have dill; plain pickle still works
    dill = None

# An entry of a result's error map: the user's exception itself, or a
# (kind, message) pair for a failure numap reports with its own exception
# type (built by the parent, since numap may not be importable here).
SERIALIZATION_ERROR = "SerializationError"
REMOTE_ERROR = "RemoteError"
Failure = BaseException | tuple[str, str]

PICKLE_FLAG = b"P"
DILL_FLAG = b"D"
_PICKLE_BYTE = PICKLE_FLAG[0]
_DILL_BYTE = DILL_FLAG[0]

TASK = b"T"
BATCH = b"B"
STOP = b"S"
RESULT = b"R"

_TASK_HEADER = struct.Struct(">Q")
_BATCH_HEADER = struct.Struct(">QQQQ")
_RESULT_HEADER = struct.Struct(">Qd")
# The length prefix of a frame on a byte stream or pipe (also numap._channel).
FRAME_LENGTH = struct.Struct(">Q")


class Terminated(BaseException):
    """Raised in a local worker process by SIGTERM (``terminate()``): it
    ends the worker, not only the item it interrupts."""


class PayloadError(Exception):
    """Data could not be pickled or unpickled; the message says which and why."""


# --------------------------------------------------------------------------
# Serialisation


# What pickling and unpickling let through rather than turn into a
# PayloadError (see dumps).
_PASS_THROUGH = (Terminated, KeyboardInterrupt)


def dumps(obj: Any, prefer_dill: bool = False, prefix: bytes = b"") -> bytes:
    """Serialise ``obj``: plain pickle first, dill only when pickle fails.

    ``prefer_dill`` tries dill first; used for task functions, which are sent
    once and must survive on hosts whose ``__main__`` lacks their definitions.
    ``prefix`` (a frame's kind and header) is put in front of the payload in
    the same copy. Raises :class:`PayloadError` when neither can serialise
    the object.

    Any exception the object's pickling raises is a PayloadError, also one
    that is not an Exception (a ``__reduce__`` calling sys.exit()): it is
    that item's or result's error, and escaping it would end the feeder or
    the worker. Only :class:`Terminated` (SIGTERM in a worker) and
    KeyboardInterrupt pass: the main thread pickles and unpickles too
    (feeding inline, receiving), and a Ctrl-C landing there, held back or
    not by numap's handler, belongs to the program, not to an item.
    """
    dill_error: BaseException | None = None
    if prefer_dill and dill is not None:
        try:
            return _dumps_with_dill(obj, prefix, with_globals=True)
        except _PASS_THROUGH:
            raise
        except BaseException:  # a global that does not pickle: see _dumps_with_dill
            pass
        try:
            return _dumps_with_dill(obj, prefix)
        except _PASS_THROUGH:
            raise
        except BaseException as error:  # dill refused; plain pickle may manage
            dill_error = error
    try:
        return b"".join(
            (prefix, PICKLE_FLAG, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
        )
    except _PASS_THROUGH:
        raise
    except BaseException as pickle_error:
        if dill_error is not None:
            # dill's reason: pickle's is only that it cannot pickle lambdas
            # and closures at all, which dill can.
            raise PayloadError(_describe(dill_error)) from dill_error
        if dill is None:
            raise PayloadError(_describe(pickle_error)) from pickle_error
        try:
            return _dumps_with_dill(obj, prefix)
        except _PASS_THROUGH:
            raise
        except BaseException as error:
            raise PayloadError(_describe(error)) from error


def _dumps_with_dill(obj: Any, prefix: bytes, with_globals: bool = False) -> bytes:
    """``with_globals``: a ``__main__`` function takes the globals it uses
    along (modules by name, functions and values by value); without it they
    are looked up in the worker's own ``__main__``, where only a forked
    worker has them (a remote one gets NameError). Not every global pickles
    (a lock, an open file): then the caller goes without."""
    payload = dill.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL, recurse=with_globals)
    return b"".join((prefix, DILL_FLAG, payload))


Stage = tuple[Callable, tuple, dict]


def dumps_task(stages: Sequence[Stage]) -> bytes:
    """Serialise a task's stages, once per task.

    ``stages`` are (function, args, kwargs): the task's own, then those of
    the tasks chained after it, applied in order to each result (args and
    kwargs may be None). Functions defined in ``__main__`` go by value
    (dill) first: plain pickle would name them by reference, and a worker's
    ``__main__`` is not the caller's. That holds also for one that travels
    inside the task (an argument, a partial, an object holding it), which
    shows as a reference to ``__main__`` in the plain pickle. Everything
    else pickles plainly, so a worker without dill can run functions from
    importable modules.
    """
    normalised = [
        (func, tuple(args or ()), dict(kwargs or {})) for func, args, kwargs in stages
    ]
    if any(_defined_in_main(func) for func, _, _ in normalised):
        return dumps(normalised, prefer_dill=True)
    plain = dumps(normalised)
    # A false match (the text "__main__" in an argument) only costs dill.
    if dill is not None and plain[:1] == PICKLE_FLAG and b"__main__" in plain:
        return dumps(normalised, prefer_dill=True)
    return plain


def _defined_in_main(func: Any) -> bool:
    target = getattr(func, "func", func)  # functools.partial
    return getattr(target, "__module__", None) == "__main__"


def loads(data: bytes | memoryview) -> Any:
    """Inverse of :func:`dumps`. Raises :class:`PayloadError` on failure,
    also for an exception that is not an Exception, except Terminated and
    KeyboardInterrupt (as :func:`dumps`)."""
    view = memoryview(data)
    if not view:
        raise PayloadError("empty payload: sender and receiver differ")
    flag, body = view[0], view[1:]  # the flag as an int: no object to build
    try:
        if flag == _PICKLE_BYTE:
            return pickle.loads(body)
        if flag == _DILL_BYTE:
            if dill is None:
                raise PayloadError(
                    "the data was pickled with dill, which is not installed "
                    "here: install dill on this host"
                )
            return dill.loads(body)
    except (PayloadError, *_PASS_THROUGH):
        raise
    except BaseException as error:
        raise PayloadError(_describe(error)) from error
    raise PayloadError(
        f"unknown payload flag {bytes([flag])!r}: sender and receiver differ"
    )


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


# --------------------------------------------------------------------------
# Message encoding, used by both sides


def encode_task(task_id: int, payload: bytes) -> bytes:
    """Frame announcing task ``task_id``; ``payload`` is from dumps_task."""
    return TASK + _TASK_HEADER.pack(task_id) + payload


def encode_batch(
    batch_id: int, task_id: int, start: int, count: int, payload: bytes
) -> bytes:
    """Frame with ``count`` items (``payload`` = dumps(list)) of a task."""
    return batch_prefix(batch_id, task_id, start, count) + payload


def batch_prefix(batch_id: int, task_id: int, start: int, count: int) -> bytes:
    """The kind and header of a batch frame: ``dumps(items, prefix=...)``
    then builds the whole frame with one copy of the payload."""
    return BATCH + _BATCH_HEADER.pack(batch_id, task_id, start, count)


def encode_stop() -> bytes:
    return STOP


def decode_result(frame: bytes | bytearray) -> tuple[int, float, memoryview]:
    """Split a result frame into (batch_id, the worker's seconds on the
    batch, payload); the payload is a view into the frame (no copy), for
    :func:`loads`."""
    if frame[:1] != RESULT:
        raise PayloadError(f"expected a result frame, got kind {frame[:1]!r}")
    batch_id, seconds = _RESULT_HEADER.unpack_from(frame, 1)
    return batch_id, seconds, memoryview(frame)[1 + _RESULT_HEADER.size :]


# --------------------------------------------------------------------------
# Imports attached to functions with numap.imports


def import_into(namespace: dict, modules: Any, forgive: bool = False) -> None:
    """Import ``modules`` (the numap.imports spec) into ``namespace``.

    Each entry is a comma-separated list of alternatives tried in order.
    A plain name ``foo`` binds ``foo``; a dotted name ``foo.oof`` binds the
    last component of the entry's FIRST alternative (``oof``), as
    ``import foo.oof as oof`` would. Raises ImportError when no alternative
    of an entry imports, unless ``forgive`` is true.
    """
    for entry in modules:
        alternatives = [name.strip() for name in entry.split(",") if name.strip()]
        if not alternatives:
            continue
        alias = alternatives[0].rsplit(".", 1)[-1]
        errors = []
        for name in alternatives:
            try:
                module = importlib.import_module(name)
            except ImportError as error:
                errors.append(f"{name}: {error}")
                continue
            namespace[alias if "." in name else name] = module
            break
        else:
            if not forgive:
                raise ImportError(
                    f"none of the alternatives {entry!r} could be imported ("
                    + "; ".join(errors)
                    + ")"
                )


def apply_imports(func: Any) -> None:
    """Run the imports recorded on ``func`` by numap.imports, if any."""
    spec = getattr(func, "__numap_imports__", None)
    if spec is None:
        return
    target = getattr(func, "func", func)  # functools.partial wraps the function
    namespace = getattr(target, "__globals__", None)
    if namespace is None:
        return
    modules, forgive = spec
    import_into(namespace, modules, forgive)


# --------------------------------------------------------------------------
# The worker loop


def _where() -> str:
    return f"worker pid {os.getpid()} on host {socket.gethostname()}"


def _portable_exception(error: BaseException, tb_text: str) -> Failure:
    """The exception as it should travel: a copy of it, made by a pickle
    round trip, with this item's traceback as a note.

    The note goes on the copy: the function may raise one exception object
    for several items (a module-level constant), which would otherwise
    gather the tracebacks of all of them.
    """
    note = f"Traceback in {_where()}:\n{tb_text.rstrip()}"
    try:
        travelling = loads(dumps(error))
    except PayloadError:
        # Not picklable, or its class cannot be rebuilt from its args (a
        # common trait of exceptions with custom __init__): send the text.
        travelling = None
    if not isinstance(travelling, BaseException):  # also a __reduce__ gone odd
        return _remote_error(
            f"{type(error).__module__}.{type(error).__qualname__}: {error}\n{note}"
        )
    travelling.add_note(note)
    return travelling


def _remote_error(message: str) -> tuple[str, str]:
    return (REMOTE_ERROR, message)


def _serialization_error(message: str) -> tuple[str, str]:
    return (SERIALIZATION_ERROR, message)


def run_batch(
    call: Callable,
    items: list,
    on_error: Callable[[BaseException, str], Any] | None = None,
) -> tuple[list, dict[int, Any]]:
    """Call ``call(item)`` on each item (``call`` as built by :func:`compose`).

    Returns (values, errors); an item whose call raised has ``None`` in
    values and ``on_error(exception, traceback_text)`` in errors (by
    default the exception made ready to travel to another process). A call
    that raised StopIteration gets a RuntimeError saying so (see
    :func:`_stop_iteration_error`); the rest of the batch still runs.
    """
    describe = on_error or _portable_exception
    values: list = []
    errors: dict[int, Any] = {}
    remaining = iter(items)
    while True:
        try:
            values.extend(map(call, remaining))
            if len(values) == len(items):
                return values, errors
            # map() took a StopIteration from the call as its own end: the
            # item at len(values) raised it, and map() consumed that item.
            errors[len(values)] = describe(*_stop_iteration_error())
            values.append(None)
        except Terminated:
            raise
        except BaseException as error:
            # Also KeyboardInterrupt, GeneratorExit...: a worker gets no
            # other signals, so the user's function raised it, and it is
            # that item's error (a thread worker would otherwise die of it).
            # map() consumed the failing item; values holds those before it.
            errors[len(values)] = describe(error, traceback.format_exc())
            values.append(None)


def _stop_iteration_error() -> tuple[RuntimeError, str]:
    """The error of an item whose call raised StopIteration, and its
    traceback text, which map() dropped with the StopIteration.

    As a generator does (PEP 479), the StopIteration becomes a
    RuntimeError: passed on as it is, it would end the consumer's loop
    instead of reaching it as that item's error.
    """
    error = RuntimeError(
        "the function raised StopIteration for this item (e.g. next() on "
        "an exhausted iterator); inside a map a "
        "StopIteration cannot pass as an item's error, so it became this "
        "RuntimeError (as in a generator, PEP 479)"
    )
    return error, "(the traceback of the StopIteration is lost: map() took it)"


def _bind(func: Callable, args: tuple, kwargs: dict) -> Callable:
    def call(item: Any) -> Any:
        return func(item, *args, **kwargs)

    return call


def compose(stages: list[Stage]) -> Callable:
    """One callable applying each stage's ``func(item, *args, **kwargs)`` in
    turn: the result of one stage is the item of the next."""
    calls = [
        func if not args and not kwargs else _bind(func, args, kwargs)
        for func, args, kwargs in stages
    ]
    if len(calls) == 1:
        return calls[0]

    def chained(item: Any) -> Any:
        for call in calls:
            item = call(item)
        return item

    return chained


def _encode_values(
    values: list,
    errors: dict[int, Failure],
    task_id: int,
    start: int,
    prefix: bytes = b"",
) -> bytes:
    """A worker's result frame. A KeyboardInterrupt while pickling is a
    value's own (workers ignore SIGINT: no Ctrl-C comes here), as any
    other failure to pickle it."""
    try:
        return dumps((values, errors), prefix=prefix)
    except (PayloadError, KeyboardInterrupt):
        pass
    # Find the values that do not pickle; each becomes an error of its own.
    for offset, value in enumerate(values):
        if offset in errors:
            continue
        try:
            dumps(value)
        except (PayloadError, KeyboardInterrupt) as error:
            values[offset] = None
            errors[offset] = _serialization_error(
                f"the result for item {start + offset} of task {task_id} "
                f"({type(value).__name__}) cannot be pickled: {error}"
            )
    return dumps((values, errors), prefix=prefix)


class _Task:
    """A task as one worker knows it: its stages, or why it is unusable."""

    def __init__(self, task_id: int, payload: bytes | memoryview) -> None:
        self.broken: str | None = None
        self.imported = False
        self.stages: list[Stage] = []
        self.call: Callable | None = None
        try:
            self.stages = [
                (func, tuple(args or ()), dict(kwargs or {}))
                for func, args, kwargs in loads(payload)
            ]
        except PayloadError as error:
            self.broken = (
                f"the function of task {task_id} could not be unpickled in "
                f"{_where()}: {error}"
            )

    def run(self, items: list, task_id: int, start: int) -> tuple[list, dict]:
        if self.broken is None and not self.imported:
            try:
                for func, _, _ in self.stages:
                    apply_imports(func)
                self.imported = True
                self.call = compose(self.stages)
            except ImportError as error:
                self.broken = (
                    f"the imports of task {task_id} failed in {_where()}: {error}"
                )
        if self.broken is not None:
            return _all_failed(len(items), self.broken)
        assert self.call is not None
        return run_batch(self.call, items)


def _all_failed(count: int, message: str) -> tuple[list, dict]:
    return [None] * count, {i: _serialization_error(message) for i in range(count)}


def serve(
    recv: Callable[[], bytes | bytearray | None], send: Callable[[bytes], None]
) -> None:
    """Serve tasks until a stop frame or end of input.

    ``recv`` returns the next frame (``None`` or EOFError/OSError at the end
    of input); ``send`` sends one frame back.
    """
    tasks: dict[int, _Task] = {}
    while True:
        try:
            frame = recv()
        except (EOFError, OSError):
            return
        if frame is None:
            return
        kind = frame[:1]
        if kind == STOP:
            return
        if kind == TASK:
            (task_id,) = _TASK_HEADER.unpack_from(frame, 1)
            tasks[task_id] = _Task(task_id, memoryview(frame)[1 + _TASK_HEADER.size :])
        elif kind == BATCH:
            answer = _answer_batch(frame, tasks)
            try:
                send(answer)
            except OSError:
                return  # the parent is gone (broken pipe): nobody to answer
        else:
            raise ValueError(f"numap worker received an unknown frame {kind!r}")


def _answer_batch(frame: bytes | bytearray, tasks: dict[int, _Task]) -> bytes:
    received = time.perf_counter()
    batch_id, task_id, start, count = _BATCH_HEADER.unpack_from(frame, 1)
    task = tasks.get(task_id)
    if task is None:
        values, errors = _all_failed(
            count, f"task {task_id} was never sent to {_where()}"
        )
    else:
        try:
            items = loads(memoryview(frame)[1 + _BATCH_HEADER.size :])
        except PayloadError as error:
            values, errors = _all_failed(
                count,
                f"items {start}..{start + count - 1} of task {task_id} could "
                f"not be unpickled in {_where()}: {error}",
            )
        else:
            values, errors = task.run(items, task_id, start)
    prefix = RESULT + _RESULT_HEADER.pack(batch_id, time.perf_counter() - received)
    return _encode_values(values, errors, task_id, start, prefix)


# --------------------------------------------------------------------------
# Framing on binary streams (remote workers talk over stdin/stdout)


def write_frame(stream: BinaryIO, data: bytes) -> None:
    """Write ``data`` with an 8-byte big-endian length prefix, and flush."""
    stream.write(FRAME_LENGTH.pack(len(data)))
    stream.write(data)
    stream.flush()


def read_frame(stream: BinaryIO) -> bytes | None:
    """Read one frame; ``None`` at a clean end of stream.

    Raises EOFError when the stream ends inside a frame.
    """
    header = _read_exactly(stream, FRAME_LENGTH.size)
    if not header:
        return None
    if len(header) < FRAME_LENGTH.size:
        raise EOFError("stream ended inside a frame header")
    (length,) = FRAME_LENGTH.unpack(header)
    body = _read_exactly(stream, length)
    if len(body) < length:
        raise EOFError(f"stream ended after {len(body)} of {length} frame bytes")
    return body


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    chunks = []
    missing = size
    while missing:
        chunk = stream.read(missing)
        if not chunk:
            break
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


def serve_stdio() -> None:
    """Serve frames on stdin/stdout: the remote worker's entry point.

    The frames move to descriptors of their own, and descriptor 1 becomes
    a copy of 2 (stderr), descriptor 0 /dev/null: what the user's function
    prints, and what its child processes or C code write to descriptor 1
    (``subprocess.run(["echo", ...])``), goes to stderr instead of into
    the frames, and nothing it starts can read the frames.
    """
    sys.stdout.flush()
    frames_in = os.fdopen(os.dup(0), "rb")
    frames_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    sys.stdout = sys.stderr
    serve(lambda: read_frame(frames_in), lambda data: write_frame(frames_out, data))
