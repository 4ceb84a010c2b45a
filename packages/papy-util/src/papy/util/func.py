"""Functions to use in PaPy Workers, and stream loaders for pipeline inputs.

Item functions are Worker functions: their first argument is the *inbox*, a
sequence (tuple) with one input per upstream Piper; further arguments come
from the Worker's arguments. Stream functions (``load_stream``,
``load_pickle_stream``, ``make_lines``) are not Worker functions: they are
called once and return a generator of input items for a pipeline.

Bytes and text: functions that write (``dump_item``, ``dump_stream``) write
bytes-like items as they are and ``str`` items encoded as UTF-8 (unless the
target is a text stream, which takes ``str`` only). ``load_item`` always
returns ``bytes`` (or an ``mmap``); decode it yourself.

Errors name the function and the argument that was wrong. Reading an item
that is gone raises the `ItemError` subclasses below, never hangs.
"""

from __future__ import annotations

import codecs
import io
import json
import math
import os
import pickle
import select
import socket
import stat
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import IO, Any

import papy.util._item_io as _item_io
from papy.util._item_io import (
    ItemBusyError,
    ItemError,
    ItemNotFoundError,
    ItemRefusedError,
    ItemTimeoutError,
    ItemTruncatedError,
)
from papy.util._names import type_name

__all__ = [
    "ItemBusyError",
    "ItemError",
    "ItemNotFoundError",
    "ItemRefusedError",
    "ItemTimeoutError",
    "ItemTruncatedError",
    "dump_item",
    "dump_pickle_stream",
    "dump_stream",
    "ipasser",
    "json_dumps",
    "json_loads",
    "load_item",
    "load_pickle_stream",
    "load_stream",
    "make_lines",
    "njoiner",
    "npasser",
    "nzipper",
    "pickle_dumps",
    "pickle_loads",
    "plugger",
    "print_",
    "sjoiner",
    "spasser",
    "szipper",
]

ITEM_TYPES = ("file", "fifo", "socket")
LOAD_TYPES = ("string", "mmap")


# --- argument checks -----------------------------------------------------


def _check_inbox(function: str, inbox: Any) -> Sequence[Any]:
    if isinstance(inbox, str | bytes | bytearray) or not isinstance(inbox, Sequence):
        raise TypeError(
            f"{function}: inbox must be a sequence of inputs (one per upstream "
            f"piper, e.g. a tuple), got {type_name(inbox)}"
        )
    return inbox


def _first(function: str, inbox: Any) -> Any:
    inbox = _check_inbox(function, inbox)
    if not inbox:
        raise ValueError(f"{function}: inbox is empty, it needs at least one input")
    return inbox[0]


def _check_count(function: str, name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(
            f"{function}: {name} must be None or a non-negative int, got {value!r}"
        )
    return value


def _check_indices(function: str, inbox: Sequence[Any], s: Any) -> list[int]:
    if s is None:
        return list(range(len(inbox)))
    if isinstance(s, str | bytes) or not hasattr(s, "__iter__"):
        raise TypeError(
            f"{function}: s must be a sequence of indices, got {type_name(s)}"
        )
    indices = list(s)
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"{function}: s must hold ints, got {index!r}")
        if not -len(inbox) <= index < len(inbox):
            raise IndexError(
                f"{function}: index {index} in s is out of range for an inbox "
                f"of {len(inbox)} inputs"
            )
    return indices


def _check_positive_number(
    function: str, name: str, value: Any, maximum: float = math.inf
) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= maximum  # also False for NaN
    ):
        limit = "" if maximum == math.inf else f" with 0 < {name} <= {maximum}"
        raise ValueError(
            f"{function}: {name} must be a positive number{limit}, got {value!r}"
        )
    return float(value)


def _check_timeout(function: str, value: Any) -> float:
    # poll() takes the timeout in milliseconds as a C int (about 24 days).
    return _check_positive_number(function, "timeout", value, _item_io.MAX_TIMEOUT)


def _check_buffer(function: str, buffer: Any) -> int:
    if buffer is None:
        return _item_io.DEFAULT_BUFFER
    if isinstance(buffer, bool) or not isinstance(buffer, int) or buffer < 1:
        raise ValueError(
            f"{function}: buffer must be None or a positive int (bytes), got {buffer!r}"
        )
    return buffer


def _as_bytes(function: str, name: str, value: Any) -> bytes:
    """``value`` (argument ``name`` of ``function``) as bytes: bytes-like
    as is, str as UTF-8.

    Raises TypeError for other types, and UnicodeError (a ValueError) for a
    str that UTF-8 cannot encode (a lone surrogate), chaining the
    UnicodeEncodeError.
    """
    if isinstance(value, str):
        try:
            return value.encode("utf-8")
        except UnicodeEncodeError as error:
            raise _named(
                error,
                f"{function}: {name} is a str that UTF-8 cannot encode "
                f"({error.reason} at position {error.start}); pass bytes, or "
                "a str without lone surrogates",
            ) from error
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise TypeError(
        f"{function}: {name} must be bytes or str, got "
        f"{type_name(value)}; serialize it first, e.g. with pickle_dumps "
        "or json_dumps"
    )


def _join(function: str, items: Sequence[Any], join: Any) -> Any:
    if not isinstance(join, str | bytes):
        raise TypeError(f"{function}: join must be str or bytes, got {type_name(join)}")
    kind = str if isinstance(join, str) else bytes | bytearray | memoryview
    for position, item in enumerate(items):
        if not isinstance(item, kind):
            raise TypeError(
                f"{function}: input {position} is {type_name(item)}, but "
                f"join is {type_name(join)}; all must be str or all bytes"
            )
    return join.join(items)


# --- passers, zippers, joiners -------------------------------------------


def ipasser(inbox: Sequence[Any], i: int = 0) -> Any:
    """Return the ``i``-th input of the inbox (default: the first).

    Raises TypeError for a non-int ``i`` and IndexError when the inbox has
    no input ``i``.
    """
    inbox = _check_inbox("ipasser", inbox)
    if isinstance(i, bool) or not isinstance(i, int):
        raise TypeError(f"ipasser: i must be an int, got {type_name(i)}")
    if not -len(inbox) <= i < len(inbox):
        raise IndexError(
            f"ipasser: i={i} is out of range for an inbox of {len(inbox)} inputs"
        )
    return inbox[i]


def npasser(inbox: Sequence[Any], n: int | None = None) -> tuple[Any, ...]:
    """Return the first ``n`` inputs as a tuple (default: the whole inbox)."""
    inbox = _check_inbox("npasser", inbox)
    n = _check_count("npasser", "n", n)
    return tuple(inbox[:n])


def spasser(inbox: Sequence[Any], s: Sequence[int] | None = None) -> tuple[Any, ...]:
    """Return the inputs with the indices in ``s``, in the order of ``s``.

    s defaults to all indices, ``range(len(inbox))``. Indices may repeat
    and may be negative. IndexError names an index that is out of range.
    """
    inbox = _check_inbox("spasser", inbox)
    return tuple(inbox[index] for index in _check_indices("spasser", inbox, s))


def _zip(function: str, inputs: Sequence[Any]) -> tuple[tuple[Any, ...], ...]:
    for position, value in enumerate(inputs):
        if not hasattr(value, "__iter__"):
            raise TypeError(
                f"{function}: input {position} is a {type_name(value)}, "
                "not a sequence; zippers zip sequences"
            )
    return tuple(zip(*inputs, strict=False))


def nzipper(inbox: Sequence[Any], n: int | None = None) -> tuple[tuple[Any, ...], ...]:
    """Zip the first ``n`` inputs (default: all), like ``zip(*inbox[:n])``.

    Returns a tuple of tuples (not an iterator, so results can cross process
    boundaries); as with zip, the shortest input decides the length.
    """
    inbox = _check_inbox("nzipper", inbox)
    n = _check_count("nzipper", "n", n)
    return _zip("nzipper", inbox[:n])


def szipper(
    inbox: Sequence[Any], s: Sequence[int] | None = None
) -> tuple[tuple[Any, ...], ...]:
    """Zip the inputs with the indices in ``s``, in the order of ``s``.

    s defaults to all indices. Returns a tuple of tuples, as ``nzipper``.
    """
    inbox = _check_inbox("szipper", inbox)
    indices = _check_indices("szipper", inbox, s)
    return _zip("szipper", [inbox[index] for index in indices])


def njoiner(inbox: Sequence[Any], n: int | None = None, join: str = "") -> Any:
    """Join the first ``n`` inputs (default: all) with ``join``.

    Inputs and ``join`` must all be str, or all bytes (TypeError otherwise).
    """
    inbox = _check_inbox("njoiner", inbox)
    n = _check_count("njoiner", "n", n)
    return _join("njoiner", inbox[:n], join)


def sjoiner(
    inbox: Sequence[Any], s: Sequence[int] | None = None, join: str = ""
) -> Any:
    """Join the inputs with the indices in ``s`` (in that order) with ``join``.

    s defaults to all indices. Inputs and ``join``: all str or all bytes.
    """
    inbox = _check_inbox("sjoiner", inbox)
    indices = _check_indices("sjoiner", inbox, s)
    return _join("sjoiner", [inbox[index] for index in indices], join)


# --- serialization -------------------------------------------------------


def json_dumps(inbox: Sequence[Any]) -> str:
    """Serialize the first input to a JSON ``str`` (``json.dumps``).

    Raises TypeError (or ValueError, e.g. for a circular reference) naming
    json_dumps when the input holds something JSON cannot represent.
    """
    item = _first("json_dumps", inbox)
    try:
        return json.dumps(item)
    except (TypeError, ValueError) as error:
        raise _named(
            error,
            f"json_dumps: the first input (a {type_name(item)}) cannot be "
            f"written as JSON ({error}); convert it to dicts, lists, str, "
            "numbers, booleans and None first (e.g. decode bytes), or use "
            "pickle_dumps",
        ) from error


def json_loads(inbox: Sequence[Any]) -> Any:
    """Deserialize the first input (JSON as str or bytes) with ``json.loads``.

    Raises TypeError for an input that is not str or bytes,
    json.JSONDecodeError (a ValueError) for text that is not JSON, and
    UnicodeDecodeError (a ValueError) for bytes that are not text in
    UTF-8, UTF-16 or UTF-32; all name json_loads.
    """
    text = _first("json_loads", inbox)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise json.JSONDecodeError(
            f"json_loads: the first input is not valid JSON ({error.msg})",
            error.doc,
            error.pos,
        ) from error
    except UnicodeDecodeError as error:
        raise UnicodeDecodeError(
            error.encoding,
            error.object,
            error.start,
            error.end,
            f"json_loads: the first input is not JSON text in UTF-8, UTF-16 or "
            f"UTF-32 ({error.reason}); decode it yourself and pass the str",
        ) from error
    except TypeError as error:
        raise TypeError(
            f"json_loads: the first input must be JSON as str or bytes, got "
            f"{type_name(text)}; serialize it with json_dumps"
        ) from error


def pickle_dumps(inbox: Sequence[Any]) -> bytes:
    """Pickle the first input with the highest (fastest) pickle protocol.

    An object that cannot be pickled raises the pickle module's error
    (pickle.PicklingError, TypeError or AttributeError), naming pickle_dumps.
    """
    item = _first("pickle_dumps", inbox)
    try:
        return pickle.dumps(item, pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise _named(
            error,
            f"pickle_dumps: the first input (a {type_name(item)}) cannot be "
            f"pickled ({error}); pass data, or instances of classes defined "
            "at the top level of a module (not lambdas, locks or open files)",
        ) from error


def pickle_loads(inbox: Sequence[Any]) -> Any:
    """Unpickle the first input (bytes). Unpickle only data you trust.

    Raises TypeError for an input that is not bytes-like, and
    pickle.UnpicklingError (EOFError for empty or cut-off data) for bytes
    that are not a pickle; all name pickle_loads.
    """
    data = _first("pickle_loads", inbox)
    try:
        return pickle.loads(data)
    except TypeError as error:
        if isinstance(data, bytes | bytearray | memoryview):
            raise  # raised while unpickling valid bytes: not about the input
        raise TypeError(
            f"pickle_loads: the first input must be bytes made by pickle_dumps, "
            f"got {type_name(data)}"
        ) from error
    except (pickle.UnpicklingError, EOFError) as error:
        raise _named(
            error,
            f"pickle_loads: the first input is not a complete pickle ({error}); "
            "pass the bytes pickle_dumps made",
        ) from error


def _named(error: Exception, message: str) -> Exception:
    """An exception of ``error``'s own type that says ``message``.

    The rule: walk the type's method resolution order, most specific first,
    and take the first class that can be built from ``message`` alone and
    then says exactly ``message``. So a subclass a caller may catch (say a
    pickle.UnpicklingError subclass raised by a ``__setstate__``) keeps its
    type; a subclass whose constructor needs more arguments (such as
    json.JSONDecodeError) or rewrites the message falls back to its nearest
    base that does not (ValueError), and ``Exception`` always qualifies.
    Attributes beyond the message live on the original error, which the
    callers chain as ``__cause__``.
    """
    for kind in type(error).__mro__:
        if not issubclass(kind, Exception):
            continue
        try:
            named = kind(message)
        except Exception:  # its constructor wants other arguments
            continue
        if str(named) == message:
            return named
    return Exception(message)


# --- items through files, FIFOs and sockets ------------------------------


def dump_item(
    inbox: Sequence[Any],
    type: str = "file",  # noqa: A002 - the contract's argument name
    prefix: str | None = None,
    suffix: str | None = None,
    dir: str | os.PathLike[str] | None = None,  # noqa: A002 - as the contract
    timeout: float = 320,
    buffer: int | None = None,
) -> str:
    """Write the first input where another process can load it; return a reference.

    The item must be bytes-like (written as is) or str (written as UTF-8).
    The reference is a string that `load_item` accepts in this or any other
    process on the same machine.

    type:
      'file'    a temporary file ``dir/prefix*suffix``; the reference is its
                path. It persists until loaded with remove=True.
      'fifo'    a named pipe ``dir/prefix*suffix`` (POSIX only); the reference
                is its path, whose middle part holds this process's pid and
                PID namespace so that a reader can tell when it is gone.
                Daemon threads of this process wait for a reader and write
                the item; the reader removes the FIFO, or the writer does
                once a reader closed it without (one that was killed).
      'socket'  a TCP socket on 127.0.0.1 (never another address); the
                reference is ``tcp://127.0.0.1:PORT/TOKEN``. A daemon thread
                sends the item to the first reader that shows the token.
    prefix:  default ``"tmp_papy_<type>"``; suffix: default ``""``
             (both ignored for sockets). Parts of the file name: a
             ValueError if they contain a path separator.
    dir:     default ``tempfile.gettempdir()``; files and FIFOs only (a
             ValueError for sockets). A relative dir is made absolute, so
             the reference is an absolute path.
    timeout: seconds (default 320) that a FIFO or socket writer waits for its
             reader, and at most waits for a stalled reader (or, the whole
             item written, for a FIFO's reader to close it), before it gives
             up and removes the FIFO / closes the socket. Such items live at
             most as long as this process. A ValueError unless
             0 < timeout <= 2147483 (what poll() accepts, about 24 days).
    buffer:  size in bytes of the chunks written to a FIFO or socket
             (default 64 KiB); a file is written in one call.
    """
    item = _as_bytes("dump_item", "the item (inbox[0])", _first("dump_item", inbox))
    if type not in ITEM_TYPES:
        raise ValueError(f"dump_item: type must be one of {ITEM_TYPES}, got {type!r}")
    for name, value in (("prefix", prefix), ("suffix", suffix)):
        if value is not None and not isinstance(value, str):
            raise TypeError(f"dump_item: {name} must be a str or None, got {value!r}")
        if value and any(sep and sep in value for sep in (os.sep, os.altsep)):
            raise ValueError(
                f"dump_item: {name} must be part of a file name, without "
                f"{os.sep!r}, got {value!r}; choose the directory with dir"
            )
        if value and "\0" in value:
            raise ValueError(
                f"dump_item: {name} must be part of a file name, which cannot "
                f"hold a NUL character, got {value!r}"
            )
    timeout = _check_timeout("dump_item", timeout)
    chunk = _check_buffer("dump_item", buffer)
    if type == "socket":
        if dir is not None:
            raise ValueError(
                "dump_item: dir applies to type 'file' and 'fifo' only, "
                "not 'socket'; leave it None"
            )
        return _item_io.write_socket(item, timeout, chunk)

    if dir is not None and not isinstance(dir, str | os.PathLike):
        raise TypeError(f"dump_item: dir must be a path (str) or None, got {dir!r}")
    # Absolute, so that the reference means the same in a process with
    # another working directory.
    directory = os.path.abspath(
        os.fspath(dir) if dir is not None else tempfile.gettempdir()
    )
    if not os.path.isdir(directory):
        raise NotADirectoryError(f"dump_item: dir {directory!r} is not a directory")
    prefix = f"tmp_papy_{type}" if prefix is None else prefix
    suffix = "" if suffix is None else suffix
    if type == "file":
        return _item_io.write_file(item, prefix, suffix, directory)
    if not hasattr(os, "mkfifo"):
        raise ValueError(
            f"dump_item: type 'fifo' needs named pipes, which {sys.platform} "
            "lacks; use 'socket' or 'file'"
        )
    return _item_io.write_fifo(item, prefix, suffix, directory, timeout, chunk)


def load_item(
    inbox: Sequence[Any],
    type: str = "string",  # noqa: A002 - the contract's argument name
    remove: bool = True,
    buffer: int | None = None,
    *,
    timeout: float = 320,
) -> Any:
    """Load the item behind the reference in the first input (see `dump_item`).

    The kind of reference (file, FIFO or socket) is found automatically.
    type:    'string' (default) returns the item as ``bytes``; 'mmap' returns
             a read-only ``mmap.mmap`` of a regular file (a ValueError for
             FIFOs, sockets and empty files). An mmap cannot be pickled, so
             use it within one process.
    remove:  remove a regular file after loading (default True). FIFOs and
             sockets are single-use: they are always consumed.
    buffer:  size in bytes of the chunks read (default 64 KiB).
    timeout: (keyword, an addition to the contract) seconds to wait for a
             FIFO or socket writer to connect or to send more (default 320);
             0 < timeout <= 2147483, as for dump_item.

    Raises ItemNotFoundError (a FileNotFoundError) for a path that does not
    exist, ItemRefusedError (a ConnectionRefusedError) when nobody listens at
    a socket reference, ItemTimeoutError (a TimeoutError) when the writer
    sends nothing within ``timeout`` (the FIFO is then removed), and
    ItemTruncatedError when the FIFO or socket writer stopped half-way
    (both transfers carry the item's length, so a short item is never
    returned).
    Loading is exactly-once: of two readers racing for one item (with
    remove=True), one gets it and the other an ItemNotFoundError,
    ItemBusyError (FIFO) or socket error.
    """
    reference = _first("load_item", inbox)
    if isinstance(reference, os.PathLike):
        reference = os.fspath(reference)
    if not isinstance(reference, str):
        raise TypeError(
            "load_item: inbox[0] must be a reference returned by dump_item "
            f"(a str), got {type_name(reference)}"
        )
    if "\0" in reference:
        raise ValueError(
            f"load_item: {reference!r} holds a NUL character, so it is no "
            "reference dump_item returned; pass that reference unchanged"
        )
    if type not in LOAD_TYPES:
        raise ValueError(f"load_item: type must be one of {LOAD_TYPES}, got {type!r}")
    chunk = _check_buffer("load_item", buffer)
    timeout = _check_timeout("load_item", timeout)
    return _item_io.load(reference, type == "mmap", bool(remove), chunk, timeout)


# --- streams -------------------------------------------------------------


def _check_readable(function: str, handle: Any, method: str) -> None:
    if not hasattr(handle, method):
        raise TypeError(
            f"{function}: handle must be a file open for reading, got "
            f"{type_name(handle)}"
        )


def _is_text(handle: Any) -> bool:
    if isinstance(handle, io.TextIOBase):
        return True
    if isinstance(handle, io.BufferedIOBase | io.RawIOBase):
        return False  # gzip, bz2 and lzma files too (GzipFile.mode is an int)
    # Another file-like object: trust a str mode such as "r" or "wb".
    mode = getattr(handle, "mode", None)
    return isinstance(mode, str) and "b" not in mode


def _encode_like(handle_is_text: bool, function: str, name: str, value: Any) -> Any:
    if handle_is_text:
        if not isinstance(value, str):
            raise TypeError(
                f"{function}: {name} must be str for a text handle, got "
                f"{type_name(value)}; open the file in binary mode for bytes"
            )
        return value
    return _as_bytes(function, name, value)


def dump_stream(
    inbox: Sequence[Any], handle: IO[Any], delimiter: str | bytes | None = None
) -> Any:
    """Write the first input to ``handle``, followed by a delimiter line.

    Writes ``item + "\\n" + delimiter + "\\n"``: with the default delimiter
    (None, meaning "") items are separated by a blank line, so an item
    that is empty, holds a blank line or ends with a newline reads back
    (`load_stream`) as several: give such items a delimiter line that they
    never hold. A text handle
    takes str items; a binary handle takes bytes (as is) or str (UTF-8).
    The handle is flushed after each item so readers see whole items.
    Returns ``handle.name`` (None for handles without a name, e.g. StringIO).
    Only one process may write to a handle: use it in a non-parallel Piper.
    """
    item = _first("dump_stream", inbox)
    if not hasattr(handle, "write"):
        raise TypeError(f"dump_stream: handle must be open for writing, got {handle!r}")
    text = _is_text(handle)
    delimiter = "" if delimiter is None else delimiter
    item = _encode_like(text, "dump_stream", "the item (inbox[0])", item)
    delimiter = _encode_like(text, "dump_stream", "delimiter", delimiter)
    newline: Any = "\n" if text else b"\n"
    handle.write(item + newline + delimiter + newline)
    handle.flush()
    return getattr(handle, "name", None)


def load_stream(handle: IO[Any], delimiter: str | bytes | None = None) -> Iterator[Any]:
    """Generate the items written by `dump_stream` to ``handle``.

    An item ends at a line that equals the delimiter (default None, meaning
    a blank line); the newline before that line is not part of the item.
    Text handles give str, binary handles bytes. A last item without a
    delimiter line is generated too. With the default delimiter, items must
    not be empty, contain blank lines or end with a newline: those would
    read back as several items.
    """
    _check_readable("load_stream", handle, "__iter__")
    text = _is_text(handle)
    delimiter = "" if delimiter is None else delimiter
    delimiter = _encode_like(text, "load_stream", "delimiter", delimiter)
    newline: Any = "\n" if text else b"\n"
    end_line = delimiter + newline
    lines: list[Any] = []
    for line in handle:
        if line == end_line:
            yield _strip_one_newline(newline[:0].join(lines), newline)
            lines = []
        else:
            lines.append(line)
    if lines:
        yield _strip_one_newline(newline[:0].join(lines), newline)


def _strip_one_newline(item: Any, newline: Any) -> Any:
    return item[: -len(newline)] if item.endswith(newline) else item


def dump_pickle_stream(inbox: Sequence[Any], handle: IO[bytes]) -> Any:
    """Append the first input to ``handle`` (binary, open for writing) as a pickle.

    Uses the highest pickle protocol and flushes. Returns ``handle.name``
    (None without one). Read back with `load_pickle_stream`.
    """
    item = _first("dump_pickle_stream", inbox)
    if _is_text(handle) or not hasattr(handle, "write"):
        raise TypeError(
            "dump_pickle_stream: handle must be a binary file open for writing "
            "(mode 'wb' or 'ab')"
        )
    pickle.dump(item, handle, pickle.HIGHEST_PROTOCOL)
    handle.flush()
    return getattr(handle, "name", None)


def load_pickle_stream(handle: IO[bytes]) -> Iterator[Any]:
    """Generate the objects pickled one after another into ``handle``.

    Stops at the end of the file. The handle must be binary and read by one
    process only. Unpickle only data you trust.
    """
    _check_readable("load_pickle_stream", handle, "read")
    if _is_text(handle):
        raise TypeError("load_pickle_stream: handle must be a binary file (mode 'rb')")
    while True:
        try:
            yield pickle.load(handle)
        except EOFError:
            return


def make_lines(
    handle: IO[Any], follow: bool = False, wait: float = 0.1
) -> Iterator[Any]:
    """Generate the lines of ``handle`` (each with its newline, as read).

    follow: when True, at the end of the file keep polling every ``wait``
            seconds for new lines, like ``tail -f``: the iterator never ends
            by itself; call its ``stop_reading()`` (from any thread) to end
            it: a read waiting for data then ends at once, without waiting
            out ``wait``, after a last line that may lack its newline
            (``close()`` ends it too, as a generator's does, dropping that
            unfinished line). A
            Plumber's ``stop()`` calls it on its inputs. While it waits at the
            end of the file its ``waiting_for_data`` is True (a Plumber's
            ``pause()`` does not wait for a line to arrive). A line is
            generated only once its newline has arrived. When False (default)
            the iterator ends at the end of the file, with a last line that
            may lack its newline. On a plain text handle (``open``) of a
            regular file a follow reads the bytes under it and decodes them
            itself with its encoding and errors, in universal-newlines mode,
            so a character or "\\r\\n" the writer flushed in part waits for
            its rest. On a pipe, FIFO, socket or terminal a follow reads the
            file descriptor itself (waiting with ``poll``), so
            ``stop_reading()`` ends it within 0.05 s; text is decoded as on
            a regular file; after the writer closes it looks for a new
            writer's data every ``wait`` seconds; the handle's own buffer is
            bypassed: pass a handle not yet read from. There, only plain
            handles (``open``, ``os.fdopen``, ``socket.makefile``, a
            subprocess's stdout) can be followed: others, such as
            ``gzip.open`` over a pipe, raise ``ValueError``.
    """
    _check_readable("make_lines", handle, "readline")
    wait = _check_positive_number("make_lines", "wait", wait)
    if follow:
        descriptor = _stream_descriptor(handle)
        if descriptor is not None:
            if not _reads_its_descriptor(handle):
                raise ValueError(
                    f"make_lines: follow=True on a {type_name(handle)} over a "
                    "pipe, FIFO, socket or terminal cannot be stopped: its "
                    "readline() blocks until data comes, and its lines are "
                    "not the bytes of its file descriptor (compressed or "
                    "transformed), so make_lines cannot read them itself. "
                    "Follow a plain handle (open(), os.fdopen(), a "
                    "subprocess's stdout, socket.makefile()) or use "
                    "follow=False"
                )
            return _StreamLines(handle, descriptor, wait)
        if _is_text(handle) and _reads_its_descriptor(handle):
            start = _unread_text_offset(handle)
            if start is not None:
                return _TextFileLines(handle, wait, start)
    return _Lines(handle, follow, wait)


def _reads_its_descriptor(handle: Any) -> bool:
    """True if ``handle``'s data are the bytes of its file descriptor: a
    FileIO or socket stream, maybe under one BufferedReader, maybe under a
    TextIOWrapper (as ``open``, ``os.fdopen`` and ``socket.makefile`` make)."""
    if isinstance(handle, io.TextIOWrapper):
        handle = handle.buffer
    if isinstance(handle, io.BufferedReader):
        handle = handle.raw
    return isinstance(handle, io.FileIO | socket.SocketIO)


def _stream_descriptor(handle: Any) -> int | None:
    """The file descriptor of a pipe, FIFO, socket or terminal; else None.

    A regular file, or an object without a descriptor (such as StringIO),
    never blocks ``readline`` at its end, so it is followed by polling.
    """
    try:
        descriptor = handle.fileno()
    except (AttributeError, OSError, ValueError):
        return None  # io.UnsupportedOperation is an OSError and a ValueError
    if not isinstance(descriptor, int):
        return None
    try:
        kind = os.fstat(descriptor).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(kind) else descriptor


class _LineIterator:
    """What the iterators of ``make_lines`` share: stopping and waiting.

    ``_stop`` is set (by any thread) to end the iteration; only the thread
    reading the lines changes the rest, such as ``waiting_for_data`` (a
    plain flag others may read: True only while a read waits for new data).
    """

    def __init__(self, handle: IO[Any], wait: float) -> None:
        self._handle = handle
        self._wait = wait
        self._stop = threading.Event()
        self._ended = False
        self.waiting_for_data = False

    def __iter__(self) -> _LineIterator:
        return self

    def __next__(self) -> Any:
        raise NotImplementedError

    def stop_reading(self) -> None:
        """End the iteration: the next read (or the one waiting for new
        data now) gives the unfinished last line, if any, then ends."""
        self._stop.set()

    def close(self) -> None:
        """End the iteration now, as a generator's ``close()`` does: later
        reads end at once (an unfinished last line is dropped)."""
        self._ended = True
        self._stop.set()

    def _wait_for_more_data(self) -> None:
        """Sleep ``wait`` seconds at the end of the data, or until
        stop_reading(), with ``waiting_for_data`` True meanwhile."""
        self.waiting_for_data = True
        try:
            self._stop.wait(self._wait)
        finally:
            self.waiting_for_data = False


class _Lines(_LineIterator):
    """The iterator of ``make_lines`` that reads with ``readline``: without
    follow, and with follow on a regular file it cannot read as bytes
    (see ``_TextFileLines``). ``_partial`` holds a line read in part (the
    data ended before its newline).
    """

    def __init__(self, handle: IO[Any], follow: bool, wait: float) -> None:
        super().__init__(handle, wait)
        self._follow = follow
        self._partial: Any = None

    def __next__(self) -> Any:
        while not self._ended:
            line: Any = "" if self._stop.is_set() else self._handle.readline()
            if line:
                partial: Any = line if self._partial is None else self._partial + line
                if partial.endswith("\n" if isinstance(partial, str) else b"\n"):
                    self._partial = None
                    return partial
                self._partial = partial
                continue
            if self._follow and not self._stop.is_set():
                self._wait_for_more_data()
                continue
            self._ended = True
            partial, self._partial = self._partial, None
            if partial:
                return partial
        raise StopIteration


class _ChunkLines(_LineIterator):
    """The iterator of ``make_lines(follow=True)`` that reads chunks of bytes
    and splits the lines itself; subclasses say how a chunk is read.

    Text is decoded incrementally with the handle's encoding and errors in
    universal-newlines mode, so a character or a "\\r\\n" that a writer
    flushed only in part waits for its rest instead of being decoded as if
    the data ended there. Only stop_reading() ends the data: then the
    decoder gives what it holds (a pending "\\r" becomes a newline; an
    unfinished character raises under errors="strict", as reading the
    whole file would).

    State (only the reading thread changes it, except ``_stop``):
    ``_lines`` holds complete lines read but not yet returned; ``_pieces``
    the pieces of the line after the last newline (joined only when its
    newline comes, so a long line costs time linear in its length);
    ``_done_reading`` is True once stop_reading() was seen and the decoder
    emptied.
    """

    def __init__(
        self,
        handle: IO[Any],
        wait: float,
        decoder: io.IncrementalNewlineDecoder | None,
    ) -> None:
        super().__init__(handle, wait)
        self._decoder = decoder
        self._newline: Any = b"\n" if decoder is None else "\n"
        self._lines: deque[Any] = deque()
        self._pieces: list[Any] = []
        self._done_reading = False

    def __next__(self) -> Any:
        while not self._ended:
            if self._lines:
                return self._lines.popleft()
            if self._done_reading:
                self._ended = True
            elif self._stop.is_set():
                self._read_last_text()
            else:
                data = self._read_chunk()
                if data:
                    self._add(
                        data if self._decoder is None else self._decoder.decode(data)
                    )
        raise StopIteration

    def _read_chunk(self) -> bytes:
        """Wait a while for more bytes; return them (b"" if none came)."""
        raise NotImplementedError

    def _add(self, chunk: Any) -> None:
        """Split ``chunk`` into complete lines and pieces of the next one.

        Only the new chunk is searched for newlines: a line arriving in
        many chunks is joined once, when its newline comes.
        """
        *line_ends, rest = chunk.split(self._newline)
        for line_end in line_ends:
            if self._pieces:
                self._pieces.append(line_end)
                line_end = self._newline[:0].join(self._pieces)
                self._pieces = []
            self._lines.append(line_end + self._newline)
        if rest:
            self._pieces.append(rest)

    def _read_last_text(self) -> None:
        """Add what the decoder still holds and the unfinished last line."""
        self._done_reading = True  # also when the decoder raises
        if self._decoder is not None:
            self._add(self._decoder.decode(b"", final=True))
        if self._pieces:
            self._lines.append(self._newline[:0].join(self._pieces))
            self._pieces = []


def _newline_decoder(handle: Any) -> io.IncrementalNewlineDecoder:
    """An incremental decoder with ``handle``'s encoding and errors
    (defaults utf-8 and strict) that turns "\\r\\n" and "\\r" into "\\n"."""
    encoding = getattr(handle, "encoding", None) or "utf-8"
    errors = getattr(handle, "errors", None) or "strict"
    decoder = codecs.getincrementaldecoder(encoding)(errors)
    return io.IncrementalNewlineDecoder(decoder, translate=True)


class _TextFileLines(_ChunkLines):
    """The iterator of ``make_lines(follow=True)`` on a plain text handle of
    a regular file: it reads the handle's binary buffer and decodes it
    itself, because the handle's ``readline`` decodes the data at the
    current end of the file as if the file ended there.

    ``start`` is the byte offset where the handle's unread text begins
    (see ``_unread_text_offset``).
    """

    def __init__(self, handle: IO[Any], wait: float, start: int) -> None:
        decoder = _newline_decoder(handle)
        if start:
            # As TextIOWrapper.seek does: past the start of the file the
            # decoder starts clean (a UTF-16 decoder expects no BOM there).
            decoder.setstate((b"", 0))
        super().__init__(handle, wait, decoder)
        self._buffer = handle.buffer  # type: ignore[attr-defined]

    def _read_chunk(self) -> bytes:
        data = self._buffer.read1(_READ_SIZE)
        if not data:
            self._wait_for_more_data()
        return data


def _unread_text_offset(handle: Any) -> int | None:
    """The byte offset in ``handle.buffer`` where the unread text of the
    seekable text ``handle`` begins, with the buffer moved there; None if
    the text does not begin at a plain byte offset (its decoder holds
    state there) or the handle cannot tell (it is being iterated).
    """
    try:
        offset = handle.tell()
        # The handle decodes ahead of what it gave out: going back to its
        # own position drops that text and moves the buffer to match.
        handle.seek(offset)
        if offset != handle.buffer.tell():
            return None  # tell() packed decoder state into the offset
    except (OSError, ValueError):
        return None
    return offset


# How long one wait for a pipe to become readable lasts, at most: the delay
# between stop_reading() and the end of a follow waiting on a pipe.
_STOP_CHECK_SECONDS = 0.05
_READ_SIZE = 65536


class _StreamLines(_ChunkLines):
    """The iterator of ``make_lines(follow=True)`` on a pipe, FIFO or socket.

    ``readline`` on such a handle blocks until a whole line or the end of
    the stream arrives, and nothing can interrupt it from another thread.
    So this reads the descriptor itself: it waits (with ``poll``, which
    unlike ``select`` takes any descriptor number, in slices of
    ``_STOP_CHECK_SECONDS`` so that a ``stop_reading()`` is seen) until the
    descriptor is readable and reads what is there with one ``os.read``.

    The handle's own buffer is bypassed: data it buffered in an earlier
    read (before ``make_lines``) is not seen.

    ``_at_end`` is True after a read found the end of the stream (all
    writers closed); a FIFO may get a new writer later, so the follow
    looks again every ``wait`` seconds, as on a regular file.
    """

    def __init__(self, handle: IO[Any], descriptor: int, wait: float) -> None:
        super().__init__(
            handle, wait, _newline_decoder(handle) if _is_text(handle) else None
        )
        self._descriptor = descriptor
        self._poller = select.poll()
        self._poller.register(descriptor, select.POLLIN)
        self._at_end = False

    def _read_chunk(self) -> bytes:
        if self._at_end:
            # The end of the stream is readable at once, again and again:
            # sleep between looks so that an idle FIFO costs no CPU.
            self._wait_for_more_data()
            if not self._stop.is_set() and self._poller.poll(0):
                return self._read()
            return b""
        self.waiting_for_data = True
        try:
            return self._read_when_readable()
        finally:
            self.waiting_for_data = False

    def _read_when_readable(self) -> bytes:
        """Wait up to ``wait`` seconds for data; return it (b"" if none came)."""
        slice_end = time.monotonic() + self._wait
        while not self._stop.is_set():
            timeout = min(_STOP_CHECK_SECONDS, max(0.0, slice_end - time.monotonic()))
            if self._poller.poll(timeout * 1000):
                return self._read()
            if time.monotonic() >= slice_end:
                break
        return b""

    def _read(self) -> bytes:
        """Read what the readable descriptor holds; b"" at its end."""
        try:
            data = os.read(self._descriptor, _READ_SIZE)
        except BlockingIOError:
            # A non-blocking descriptor whose data another reader of it
            # took first: nothing for us this time.
            return b""
        self._at_end = not data
        return data


# --- sinks ---------------------------------------------------------------


def plugger(inbox: Sequence[Any]) -> None:
    """Return None: a sink that discards its inputs."""
    _check_inbox("plugger", inbox)
    return None


def print_(inbox: Sequence[Any]) -> None:
    """Print the first input to ``sys.stdout`` (flushed) and return None."""
    print(_first("print_", inbox), flush=True)
