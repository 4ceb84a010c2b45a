"""Moving one item between processes through a file, a FIFO or a socket.

This is the machinery behind ``papy.util.func.dump_item`` / ``load_item``.

  writer process                              reader process (or the same)
  --------------                              ----------------------------
  dump_item(type='file')   write temp file ─> load_item: rename, read, unlink
  dump_item(type='fifo')   mkfifo; the    ─┐
                           connector thread├> load_item: open, lock, poll,
                           waits for its   │  read header + data, unlink
                           reader (unlinks │
                           if none), then a│
                           writer thread   │
                           writes         ─┘
  dump_item(type='socket') listen on       ┐
                           127.0.0.1:0,    ├> load_item: connect, send token,
                           writer thread   │  read header + data
                           (accepts, checks│
                           token, sends)  ─┘

A reference is the file or FIFO path, or ``tcp://127.0.0.1:<port>/<token>``
for a socket. The token makes the writer hand its data only to a reader that
holds the reference (not to any program that happens to connect). FIFO and
socket writers send a header (magic + length) before the data, so that the
reader tells a complete item from one whose writer stopped half-way (its
process exited or died): that raises ItemTruncatedError, never a short item.

Each item is loaded at most once, even by readers racing in different
processes: a file is claimed by renaming it (atomic); a FIFO's reader takes
an exclusive flock and checks the path still names the FIFO it opened (the
winner unlinks it before unlocking); a socket writer stops listening after
its first complete transfer (a reader that breaks off half-way gets an
error, and the next reader may still load the item).

One connector thread per process waits for the readers of all FIFOs not
yet connected (so idle FIFOs cost one wake-up per round, not a thread
each); it hands each connected FIFO to a writer thread of its own.

Writer threads are daemon threads of the process that called dump_item:
the item lives as long as that process (the contract's "volatile"). Every
writer gives up after its ``timeout`` without a reader and then removes its
FIFO or closes its socket. FIFOs still pending when the process ends
normally are removed: by an atexit hook, and in worker processes started by
multiprocessing or multiprocess (which end with os._exit, skipping atexit)
by a finalizer those modules run at the worker's exit. A reader waiting on
a FIFO that is removed before its writer connected fails at once, and so
does one whose writer process is gone (killed: its FIFO stays); the FIFO's
name carries the writer's pid and PID namespace for that. A reader removes
its FIFO when it is done, even when it fails. The writer keeps its end
open until the reader has closed its own or removed the FIFO (or
``timeout`` has passed), and then removes the FIFO if the reader has not:
a reader that was killed or froze, before, during or after the transfer,
cannot. (Waiting for the close alone would also wait for any child the
reader forked while it held the FIFO open.)
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import errno
import fcntl
import mmap
import os
import re
import secrets
import select
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

from papy.util._waits import WAKE_INTERVAL

DEFAULT_BUFFER = 64 * 1024
HOST = "127.0.0.1"
SOCKET_SCHEME = "tcp://"

_HEADER = struct.Struct("!8sQ")  # magic, item length in bytes
_MAGIC = b"PAPYITEM"
_TOKEN_BYTES = 16
_TOKEN_LINE = 2 * _TOKEN_BYTES + 1  # hex token + b"\n"
_TOKEN_WAIT = 5.0  # seconds a connected peer has to show the token
# The longest timeout in seconds: poll() takes milliseconds as a C int.
MAX_TIMEOUT = 2_147_483
# Readers wait in slices of WAKE_INTERVAL s (see papy.util._waits), so that a
# Ctrl-C received by another thread still interrupts a main thread loading
# an item. A FIFO reader waiting for its writer checks after each slice
# whether the FIFO was removed or the writer's process is gone, so it need
# not wait out its timeout.

# The connector thread polls for FIFO readers (opening a FIFO for writing
# without a reader fails at once with O_NONBLOCK; a blocking open could not
# time out, nor be done under _LOCK). The interval grows from FIRST to MAX
# seconds after each new FIFO, and to PER_WAITER seconds per waiting FIFO
# when there are many, so that a round costs a bounded share of a core.
_FIFO_POLL_FIRST = 0.0005
_FIFO_POLL_MAX = 0.02
_FIFO_POLL_PER_WAITER = 0.0001
# After writing a whole item, a FIFO's writer waits for its reader to
# close; every _READER_NAME_CHECK seconds it checks whether the reader has
# already unlinked the FIFO (see _wait_until_reader_done).
_READER_NAME_CHECK = 0.05


class ItemError(OSError):
    """An item reference could not be written or read."""


class ItemNotFoundError(ItemError, FileNotFoundError):
    """The reference names no file, FIFO or listening socket writer."""


class ItemTimeoutError(ItemError, TimeoutError):
    """No data came from the writer (FIFO or socket) in time."""


class ItemRefusedError(ItemError, ConnectionRefusedError):
    """Nobody listens at the socket reference (writer gone or timed out)."""


class ItemTruncatedError(ItemError):
    """The writer stopped before sending the whole item."""


class ItemBusyError(ItemError):
    """Another reader is already loading this FIFO."""


# --- state shared by the writer threads of this process --------------------
# Invariants, all guarded by _LOCK:
# - _PENDING_FIFOS holds exactly the FIFO paths whose item is not yet sent
#   or given up; the connector (no reader in time) or the writer thread
#   (transfer over) discards a path when done with it, and the exit hooks
#   (_remove_pending_fifos) remove what is left when the process ends. A
#   forked child starts with it empty: it must never remove its parent's
#   FIFOs.
# - _WAITING_FIFOS maps the pending FIFOs whose writer has not yet seen a
#   reader to their items (a subset of _PENDING_FIFOS); _CONNECTOR is the
#   thread that tries to connect them: it is set only once that thread has
#   started, and the thread sets it to None, under _LOCK, only when it
#   finds _WAITING_FIFOS empty. (An interrupted write_fifo can leave a
#   second, unnamed connector running for a while; see _hand_to_connector.)
#   _CONNECTOR_WAKE is set after each new FIFO so the connector tries it
#   soon.
# - _FINALIZERS maps "multiprocessing.util" / "multiprocess.util" to the
#   finalizer registered with that module in this process. Those modules
#   clear their registry in a worker they start, so a finalizer that is no
#   longer active is registered again the next time a FIFO is left pending.
# - _OPEN_BY_WRITERS holds exactly the descriptors the writer threads have
#   open (FIFO write ends as ints, sockets as objects). A process forked
#   from this one closes its copies at once: otherwise a child that inherits
#   a FIFO's write end keeps the reader from seeing EOF, and one that
#   inherits a listening socket keeps a dead writer's port answering.
# Writers open and close under _LOCK, and fork takes _LOCK first, so a child
# never inherits a descriptor missing from the registry.
_LOCK = threading.Lock()
_PENDING_FIFOS: set[str] = set()
_OPEN_BY_WRITERS: dict[int, socket.socket | None] = {}
_FINALIZERS: dict[str, Any] = {}
_WAITING_FIFOS: dict[str, _FifoJob] = {}
_CONNECTOR: threading.Thread | None = None
_CONNECTOR_WAKE = threading.Event()

# Worker processes of these modules end with os._exit after running the
# module's finalizers, never atexit. Only modules already imported matter:
# a process that has not imported them is not one of their workers.
_PROCESS_MODULES = ("multiprocessing.util", "multiprocess.util")


def _register_finalizers() -> None:
    """See that every imported process module runs _remove_pending_fifos
    when this process ends, registering it at most once per process and
    module (so registrations never grow with the number of FIFOs).

    Called for each new FIFO, not once at import, because a registration
    can fall due later: a worker started by multiprocessing or multiprocess
    begins with that module's registry cleared (the finalizer it inherited
    is no longer active), and either module may be imported after this
    process's first FIFO. When nothing is due, this is a few dictionary
    look-ups (under a microsecond).
    """
    for name in _PROCESS_MODULES:
        module = sys.modules.get(name)
        if module is None:
            continue
        finalizer = _FINALIZERS.get(name)
        if finalizer is None or not finalizer.still_active():
            # exitpriority 0: run in the first round of the worker's exit,
            # before it waits for its own children.
            _FINALIZERS[name] = module.Finalize(
                None, _remove_pending_fifos, exitpriority=0
            )


def _pending_discard(path: str) -> None:
    with _LOCK:
        _PENDING_FIFOS.discard(path)


@atexit.register
def _remove_pending_fifos() -> None:
    with _LOCK:
        paths = list(_PENDING_FIFOS)
        _PENDING_FIFOS.clear()
    for path in paths:
        _unlink_quietly(path)


def _open_fifo_end(path: str) -> int:
    with _LOCK:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        _OPEN_BY_WRITERS[fd] = None
    return fd


def _close_fifo_end(fd: int) -> None:
    with _LOCK:
        del _OPEN_BY_WRITERS[fd]
        os.close(fd)


def _close_socket(sock: socket.socket) -> None:
    with _LOCK:
        _OPEN_BY_WRITERS.pop(sock.fileno(), None)
        sock.close()


def _lock_before_fork() -> None:
    _LOCK.acquire()


def _unlock_after_fork_in_parent() -> None:
    _LOCK.release()


def _after_fork_in_child() -> None:
    global _LOCK, _CONNECTOR, _CONNECTOR_WAKE
    # The writer threads do not exist in the child: drop their descriptors
    # and their FIFOs (which the parent still serves and cleans up).
    for fd, sock in _OPEN_BY_WRITERS.items():
        if sock is not None:
            sock.detach()  # so that the object never closes a reused number
        with contextlib.suppress(OSError):
            os.close(fd)
    _OPEN_BY_WRITERS.clear()
    _PENDING_FIFOS.clear()
    _WAITING_FIFOS.clear()
    _CONNECTOR = None
    _CONNECTOR_WAKE = threading.Event()
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_lock_before_fork,
        after_in_parent=_unlock_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# --- writing -------------------------------------------------------------


def write_file(data: bytes, prefix: str, suffix: str, directory: str) -> str:
    fd, path = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
    except BaseException:
        _unlink_quietly(path)
        raise
    return path


# A FIFO's name carries the writer's pid between its random part and the
# suffix, so that a reader can tell when the writer process is gone (killed:
# nothing removed its FIFO) instead of waiting out its timeout. A pid means
# something only within one PID namespace (a container sharing the
# directory has its own), so the name also carries the writer's namespace,
# "n<inode>" after the pid, and a reader trusts the pid only in the same
# namespace. Names without it (made where /proc/self/ns/pid cannot be read,
# or by an older papy-util) are trusted only by a reader that cannot read
# its own namespace either.
# Searched with a lookahead, so that overlapping candidates are all found:
# a prefix can end in what looks like a random part and a pid.
_FIFO_WRITER_PID = re.compile(r"(?=[0-9a-f]{16}_p([1-9][0-9]*)(n[1-9][0-9]*)?_)")


def _pid_namespace_tag() -> str:
    """``"n<inode>"`` of this process's PID namespace, or "" where unknown.

    Read on each call, not cached: a process forked after its parent
    entered a new PID namespace lives in that one.
    """
    try:
        return f"n{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def _fifo_path(prefix: str, suffix: str, directory: str) -> str:
    writer = f"p{os.getpid()}{_pid_namespace_tag()}"
    name = f"{prefix}{secrets.token_hex(8)}_{writer}_{suffix}"
    return os.path.join(directory, name)


def _make_fifo(path: str) -> bool:
    """Create the FIFO ``path``; False if that name is taken."""
    try:
        os.mkfifo(path, 0o600)
    except FileExistsError:
        return False
    return True


@dataclasses.dataclass(frozen=True)
class _FifoJob:
    """A FIFO item whose writer has not yet seen a reader."""

    data: bytes
    timeout: float
    chunk: int
    deadline: float


def write_fifo(
    data: bytes, prefix: str, suffix: str, directory: str, timeout: float, chunk: int
) -> str:
    job = _FifoJob(data, timeout, chunk, time.monotonic() + timeout)
    path = _fifo_path(prefix, suffix, directory)
    try:
        while not _make_fifo(path):
            path = _fifo_path(prefix, suffix, directory)
        _hand_to_connector(path, job)
        return path
    except BaseException:
        # A KeyboardInterrupt (it can land on any line) or no thread to be
        # had: the caller gets no reference, so no reader will ever come.
        # Forget and remove the FIFO wherever the registration stopped.
        # (Its name is random and carries our pid: if it exists, it is ours.)
        _stop_waiting(path)
        _unlink_quietly(path)
        raise


def _hand_to_connector(path: str, job: _FifoJob) -> None:
    """Put a new FIFO in the connector's care, starting the connector if
    none runs."""
    global _CONNECTOR
    with _LOCK:
        _PENDING_FIFOS.add(path)
        _register_finalizers()
        _WAITING_FIFOS[path] = job
        if _CONNECTOR is None:
            # Started before it is recorded, so that _CONNECTOR never names
            # a thread whose start an interrupt cut off: such a thread never
            # runs, and no FIFO of this process would find its reader again.
            # It takes _LOCK first, so it waits until this block is done.
            # An interrupt after the start but before the assignment leaves
            # a running connector that _CONNECTOR does not name: the next
            # FIFO starts another, and _try_to_connect lets one of them
            # take each FIFO.
            connector = threading.Thread(
                target=_connect_fifos, name="papy-fifo-connector", daemon=True
            )
            connector.start()
            _CONNECTOR = connector
    _CONNECTOR_WAKE.set()  # try the new FIFO soon, whatever the back-off


def _connect_fifos() -> None:
    """The connector thread: find readers for all waiting FIFOs.

    One thread for all waiting FIFOs, trying each in turn, so that idle
    FIFOs cost one wake-up per round, not one each. A round comes soon
    after a new FIFO, then less often (up to _FIFO_POLL_MAX, more with many
    waiting FIFOs); the thread ends when no FIFO waits.
    """
    global _CONNECTOR
    pause = _FIFO_POLL_FIRST
    while True:
        wake = _CONNECTOR_WAKE
        wake.clear()
        with _LOCK:
            if not _WAITING_FIFOS:
                if _CONNECTOR is threading.current_thread():
                    _CONNECTOR = None
                return
            waiting = list(_WAITING_FIFOS.items())
        for path, job in waiting:
            _try_to_connect(path, job)
        longest = max(_FIFO_POLL_MAX, len(waiting) * _FIFO_POLL_PER_WAITER)
        woken = wake.wait(pause)
        pause = _FIFO_POLL_FIRST if woken else min(pause * 2, longest)


# Errors of opening a FIFO's write end that a later round may not get:
# no reader yet (ENXIO), or descriptors or memory short for a moment.
_TRY_AGAIN = frozenset({errno.ENXIO, errno.EMFILE, errno.ENFILE, errno.ENOMEM})


def _try_to_connect(path: str, job: _FifoJob) -> None:
    try:
        fd = _open_fifo_end(path)
    except FileNotFoundError:
        _stop_waiting(path)  # removed by a reader that gave up: nobody will come
        return
    except OSError as error:
        if error.errno in _TRY_AGAIN and time.monotonic() < job.deadline:
            return  # no reader yet, or no descriptor free this round
        # Nobody came in time, or the FIFO cannot be opened at all.
        _unlink_quietly(path)
        _stop_waiting(path)
        return
    with _LOCK:
        mine = _WAITING_FIFOS.pop(path, None) is not None
    if not mine:  # another connector (after an interrupted start) took it
        _close_fifo_end(fd)
        return
    thread = threading.Thread(
        target=_fifo_writer,
        args=(path, fd, job),
        name=f"papy-fifo-writer:{os.path.basename(path)}",
        daemon=True,
    )
    try:
        thread.start()
    except RuntimeError:
        # No thread to be had (resources exhausted). The connector must
        # live on for the other FIFOs; this reader sees the writer leave
        # without a header, an ItemTruncatedError.
        _close_fifo_end(fd)
        _unlink_quietly(path)
        _pending_discard(path)


def _stop_waiting(path: str) -> None:
    with _LOCK:
        _WAITING_FIFOS.pop(path, None)
        _PENDING_FIFOS.discard(path)


def _fifo_writer(path: str, fd: int, job: _FifoJob) -> None:
    # A reader has connected. A reader that is alive unlinks the FIFO
    # before it closes it, so while it holds the FIFO the name is its to
    # remove: a writer that unlinked it then could make that reader think
    # another reader had consumed the item (_still_linked). But a reader
    # killed (or frozen) at any point cannot remove it, and nobody else
    # would: not even after a complete write, since a small item fits in
    # the pipe's buffer before the reader has read a byte. So the writer
    # waits until the reader has closed or unlinked it (or for ``timeout``)
    # and then removes the FIFO if the path still names it. A reader that
    # is still reading gets the item, or meets the writer's end
    # (ItemTruncatedError), whether or not the name is gone.
    fifo = os.fstat(fd)
    try:
        try:
            _write_all(fd, _HEADER.pack(_MAGIC, len(job.data)), job.timeout, job.chunk)
            _write_all(fd, job.data, job.timeout, job.chunk)
            _wait_until_reader_done(path, fd, job.timeout)
        except (BrokenPipeError, TimeoutError):
            pass  # the reader closed early, or stopped reading: item lost
        # Before our end is closed: while it is open the FIFO's inode cannot
        # be freed, so its number cannot pass to a new file at this path.
        _unlink_if_names(path, fifo)
    except BaseException:
        _unlink_quietly(path)
        raise
    finally:
        _close_fifo_end(fd)
        _pending_discard(path)


def _wait_until_reader_done(path: str, fd: int, timeout: float) -> None:
    """Wait until the reader of the FIFO of write end ``fd`` is done with
    it, or ``timeout`` seconds have passed.

    The reader is done once no process has the FIFO open for reading: poll
    then reports an error (Linux: POLLERR) or hang-up on the write end. A
    reader that read the whole item closes at once, so normally that comes
    within microseconds. It is done, too, once ``path`` no longer names the
    FIFO: a live reader unlinks it before it closes, and a child it forked
    meanwhile may hold an inherited read end for far longer (the writer's
    thread and descriptor would linger with it). So the name is checked
    every _READER_NAME_CHECK s, and only a reader killed (or frozen)
    before unlinking keeps the writer waiting for ``timeout``.
    """
    poller = select.poll()
    poller.register(fd, select.POLLERR | select.POLLHUP)
    deadline = time.monotonic() + timeout
    while _still_linked(path, fd):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or poller.poll(min(remaining, _READER_NAME_CHECK) * 1000):
            return


def _unlink_if_names(path: str, fifo: os.stat_result) -> None:
    with contextlib.suppress(FileNotFoundError):
        named = os.stat(path)
        if (named.st_dev, named.st_ino) == (fifo.st_dev, fifo.st_ino):
            os.unlink(path)


def _write_all(fd: int, data: bytes, idle_timeout: float, chunk: int) -> None:
    view = memoryview(data)
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while view:
        if not poller.poll(idle_timeout * 1000):
            raise TimeoutError("reader stopped reading")
        try:
            written = os.write(fd, view[:chunk])
        except BlockingIOError:
            continue
        view = view[written:]


def write_socket(data: bytes, timeout: float, chunk: int) -> str:
    with _LOCK:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        _OPEN_BY_WRITERS[server.fileno()] = server
    try:
        server.setblocking(False)  # see _accept
        server.bind((HOST, 0))
        server.listen(8)
        port = server.getsockname()[1]
        token = secrets.token_hex(_TOKEN_BYTES)
        thread = threading.Thread(
            target=_socket_writer,
            args=(server, token.encode("ascii"), data, timeout, chunk),
            name=f"papy-socket-writer:{port}",
            daemon=True,
        )
        thread.start()
    except BaseException:
        _close_socket(server)
        raise
    return f"{SOCKET_SCHEME}{HOST}:{port}/{token}"


def _socket_writer(
    server: socket.socket, token: bytes, data: bytes, timeout: float, chunk: int
) -> None:
    deadline = time.monotonic() + timeout
    try:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            connection = _accept(server, remaining)
            if connection is None:
                continue
            try:
                if _serve(connection, token, data, timeout, chunk):
                    return
            finally:
                _close_socket(connection)
    finally:
        _close_socket(server)


def _accept(server: socket.socket, timeout: float) -> socket.socket | None:
    """Wait up to ``timeout`` for a reader; its connection, or None."""
    # Wait outside the lock (a blocked accept() under it would block fork),
    # then accept without blocking under it, so the new socket is tracked.
    poller = select.poll()
    poller.register(server, select.POLLIN)
    if not poller.poll(timeout * 1000):
        return None
    with _LOCK:
        try:
            connection, _ = server.accept()
        except BlockingIOError:
            return None  # the peer gave up in between
        _OPEN_BY_WRITERS[connection.fileno()] = connection
    return connection


def _serve(
    connection: socket.socket, token: bytes, data: bytes, timeout: float, chunk: int
) -> bool:
    """Send the item if the peer shows the token; True when it was sent."""
    # A reader sends its token right after connecting; a silent stranger
    # must not keep the real reader waiting in the backlog for long.
    connection.settimeout(min(timeout, _TOKEN_WAIT))
    try:
        shown = _receive_exactly(connection.recv_into, _TOKEN_LINE)
        if shown != token + b"\n":
            return False  # a stranger, not our reader: wait for the right one
        connection.settimeout(timeout)
        connection.sendall(_HEADER.pack(_MAGIC, len(data)))
        view = memoryview(data)
        for start in range(0, len(view), chunk):
            connection.sendall(view[start : start + chunk])
        connection.shutdown(socket.SHUT_WR)
    except (OSError, EOFError):
        return False
    return True


def _receive_exactly(
    read_into: Callable[[memoryview], int], length: int, chunk: int = DEFAULT_BUFFER
) -> bytes:
    """Read exactly ``length`` bytes with ``read_into`` (a socket's
    ``recv_into``, a FIFO source's ``read_into``: fills part of the view it
    gets, returns the count, 0 at the end), ``chunk`` at most per call.
    Raises EOFError if the end comes first."""
    buffer = bytearray(length)
    view = memoryview(buffer)
    received = 0
    while received < length:
        count = read_into(view[received : received + chunk])
        if not count:
            raise EOFError(f"got {received} of {length} bytes")
        received += count
    return bytes(buffer)


# --- reading -------------------------------------------------------------


def load(
    reference: str, as_mmap: bool, remove: bool, chunk: int, timeout: float
) -> Any:
    """Read the item behind ``reference`` (see the module docstring)."""
    if reference.startswith(SOCKET_SCHEME):
        if as_mmap:
            raise _mmap_refused("socket")
        return _read_socket(reference, chunk, timeout)
    try:
        mode = os.stat(reference).st_mode
    except FileNotFoundError:
        raise _not_found(reference) from None
    if stat.S_ISFIFO(mode):
        if as_mmap:
            raise _mmap_refused("FIFO")
        return _read_fifo(reference, chunk, timeout)
    if not stat.S_ISREG(mode):
        raise ValueError(
            f"load_item: {reference!r} is neither a regular file nor a FIFO"
        )
    return _read_file(reference, as_mmap, remove, chunk)


def _mmap_refused(kind: str) -> ValueError:
    return ValueError(
        f"type='mmap' needs a regular file, but the reference is a {kind}; "
        "use type='string'"
    )


def _not_found(reference: str) -> ItemNotFoundError:
    return ItemNotFoundError(
        errno.ENOENT,
        "load_item: no such file or FIFO (already loaded and removed, or its "
        "writer timed out?)",
        reference,
    )


def _read_file(path: str, as_mmap: bool, remove: bool, chunk: int) -> Any:
    if as_mmap and os.stat(path).st_size == 0:
        raise ValueError(
            f"load_item: cannot memory-map the empty file {path!r}; use type='string'"
        )
    if not remove:
        return _read_regular(path, as_mmap, chunk)
    # Claim the file by renaming it (atomic): of two readers racing for one
    # item, exactly one gets it and the other an ItemNotFoundError.
    claimed = f"{path}.loading-{secrets.token_hex(4)}"
    try:
        os.rename(path, claimed)
    except FileNotFoundError:
        raise _not_found(path) from None
    try:
        return _read_regular(claimed, as_mmap, chunk)
    finally:
        # A mapping stays valid after its file is unlinked (POSIX).
        _unlink_quietly(claimed)


def _read_regular(path: str, as_mmap: bool, chunk: int) -> Any:
    # buffering=1 asks for line buffering, which open() does not do for
    # binary files (it warns and buffers by default); unbuffered is what a
    # 1-byte buffer amounts to.
    buffering = 0 if chunk == 1 else chunk
    with open(path, "rb", buffering=buffering) as handle:
        if as_mmap:
            return mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        return handle.read()


def _read_fifo(path: str, chunk: int, timeout: float) -> bytes:
    # O_NONBLOCK: a blocking open would hang forever without a writer.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise _not_found(path) from None
    try:
        try:
            # One reader per item: a second reader must not take part of
            # the data from the shared pipe buffer.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ItemBusyError(
                errno.EBUSY, "load_item: another reader is loading this FIFO", path
            ) from None
        if not _still_linked(path, fd):
            # We opened it just before another reader, which has since read
            # it all and removed it (it unlinks before it unlocks).
            raise _not_found(path)
        # If its writer is in this process, the connector serves it now
        # rather than at its next round (elsewhere this costs one round).
        _CONNECTOR_WAKE.set()
        try:
            return _read_fifo_item(_FifoSource(fd, path, timeout), chunk)
        finally:
            # FIFOs are single-use whatever ``remove`` says (the contract
            # makes removal mandatory). Unlinking only after reading lets a
            # writer that has not yet connected still find the path, and
            # unlinking before closing (while holding the lock) keeps a late
            # reader from locking a FIFO whose data is gone.
            _unlink_quietly(path)
    finally:
        os.close(fd)


def _still_linked(path: str, fd: int) -> bool:
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)


class _FifoSource:
    """The read end of a FIFO: reads that wait for the writer and see its end.

    A non-blocking read of an empty FIFO raises BlockingIOError while a
    writer is connected and returns b"" while none is. b"" is the writer's
    end once the writer has been seen: after data arrived, or after POLLHUP
    (Linux reports it only once a writer connected after our open, then
    left). Before that, b"" just means the writer has not come yet. Relying
    on POLLHUP alone would miss the end of an item whose writer came and
    went before this reader opened (data waiting in the buffer).
    """

    def __init__(self, fd: int, path: str, timeout: float) -> None:
        self.fd = fd
        self.path = path
        self.writer_pid = _trusted_writer_pid(path)
        self.timeout = timeout
        self.writer_seen = False
        self.poller = select.poll()
        self.poller.register(fd, select.POLLIN)

    def read_into(self, view: memoryview) -> int:
        """Fill part of ``view``; the count, 0 once the writer has left."""
        while True:
            try:
                count = os.readv(self.fd, [view])
            except BlockingIOError:
                self.writer_seen = True
            else:
                if count:
                    self.writer_seen = True
                    return count
                if self.writer_seen:
                    return 0
            self._wait()

    def _wait(self) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ItemTimeoutError(
                    errno.ETIMEDOUT,
                    f"load_item: no data from the FIFO's writer within "
                    f"{self.timeout} s (writer process gone, or it timed out?)",
                    self.path,
                )
            events = self.poller.poll(min(remaining, WAKE_INTERVAL) * 1000)
            if events:
                if any(event & select.POLLHUP for _, event in events):
                    self.writer_seen = True
                return
            if not self.writer_seen:
                self._check_writer_may_come()

    def _check_writer_may_come(self) -> None:
        if not _still_linked(self.path, self.fd):
            # Only the writer's side removes a FIFO that we hold locked:
            # it timed out or its process ended; nobody will write.
            raise ItemNotFoundError(
                errno.ENOENT,
                "load_item: the FIFO was removed before its writer came "
                "(the dumping process ended, or its writer timed out)",
                self.path,
            )
        if self.writer_pid is not None and not _process_exists(self.writer_pid):
            raise ItemNotFoundError(
                errno.ENOENT,
                f"load_item: the FIFO's writer process {self.writer_pid} is "
                "gone (killed?) before it sent the item; dump it again",
                self.path,
            )


def _trusted_writer_pid(path: str) -> int | None:
    """The writer's pid in a FIFO name made by _fifo_path, if it means the
    same process here; else None (the reader then waits out its timeout).

    None when the name's PID namespace is not this process's (the pid would
    name another process, or none, here), and when a prefix or suffix makes
    the name ambiguous: a wrong pid could fail a live item.
    """
    found = _FIFO_WRITER_PID.findall(os.path.basename(path))
    if len(found) != 1:
        return None
    pid, namespace = found[0]
    return int(pid) if namespace == _pid_namespace_tag() else None


def _process_exists(pid: int) -> bool:
    """Whether process ``pid`` still runs; one that has exited but is not
    yet reaped by its parent (a zombie) does not."""
    # Where pidfd_open is missing (not Linux), not implemented (a kernel
    # before 5.3) or forbidden (a sandbox), ask the plain way, which counts
    # a zombie as running.
    if not hasattr(os, "pidfd_open"):
        return _signal_reaches(pid)
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except OverflowError:
        return True  # no pid can be that number: it tells nothing
    except OSError:
        return _signal_reaches(pid)
    try:
        # A pidfd turns readable when its process exits, reaped or not.
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return not poller.poll(0)
    finally:
        os.close(pidfd)


def _signal_reaches(pid: int) -> bool:
    """Whether signal 0 reaches process ``pid`` (a zombie's does)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        # Another user's process exists; a number no pid can be tells
        # nothing: assume the writer lives rather than fail a live item.
        return True
    return True


def _read_fifo_item(source: _FifoSource, chunk: int) -> bytes:
    # The writer sends a header (magic + length) first, so that an item cut
    # short (its writer process exited or died half-way) is an error, not a
    # shorter item.
    header = _read_exactly(source, _HEADER.size, chunk, "item header")
    magic, length = _HEADER.unpack(header)
    if magic != _MAGIC:
        # Also what is left when an earlier reader died after reading part
        # of the item and this one came before the writer noticed.
        raise ItemError(
            errno.EPROTO,
            "load_item: the FIFO holds no item header (an earlier reader died "
            "after reading part of the item, or the FIFO was not made by "
            "dump_item); dump the item again",
            source.path,
        )
    return _read_exactly(source, length, chunk, "item")


def _read_exactly(source: _FifoSource, length: int, chunk: int, what: str) -> bytes:
    try:
        return _receive_exactly(source.read_into, length, chunk)
    except EOFError as error:
        raise ItemTruncatedError(
            errno.EPIPE,
            f"load_item: {what} incomplete, the FIFO's writer stopped ({error}; "
            "its process ended or died?)",
            source.path,
        ) from None


_HEX_DIGITS = frozenset("0123456789abcdef")


def _parse_socket_reference(reference: str) -> tuple[str, int, bytes]:
    address, _, token = reference[len(SOCKET_SCHEME) :].partition("/")
    host, _, port = address.rpartition(":")
    if (
        not host
        or not (port.isascii() and port.isdigit())
        or len(token) != 2 * _TOKEN_BYTES
        or not set(token) <= _HEX_DIGITS
    ):
        raise ValueError(
            f"load_item: malformed socket reference {reference!r}; expected "
            f"'{SOCKET_SCHEME}HOST:PORT/TOKEN' (TOKEN: {2 * _TOKEN_BYTES} "
            "lowercase hex digits) as returned by dump_item"
        )
    if not 1 <= int(port) <= 65535:
        raise ValueError(
            f"load_item: socket reference {reference!r} has port {int(port)}, "
            "outside 1..65535; pass the reference dump_item returned, unchanged"
        )
    if host != HOST:
        raise ValueError(
            f"load_item: socket reference {reference!r} is not on {HOST}; "
            "items travel over the loopback interface only"
        )
    return host, int(port), token.encode("ascii")


def _read_socket(reference: str, chunk: int, timeout: float) -> bytes:
    host, port, token = _parse_socket_reference(reference)
    try:
        connection = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        raise ItemTimeoutError(
            errno.ETIMEDOUT, f"load_item: no connection within {timeout} s", reference
        ) from None
    except ConnectionError:
        raise ItemRefusedError(
            errno.ECONNREFUSED,
            "load_item: connection refused (already loaded, or its writer "
            "timed out or its process ended?)",
            reference,
        ) from None
    with connection:
        read_into = _sliced_reader(connection, timeout)
        try:
            magic, length = _request(connection, token, read_into)
        except (EOFError, ConnectionError):
            raise ItemRefusedError(
                errno.ECONNREFUSED,
                "load_item: the writer closed the connection without sending the "
                "item (already loaded by another reader, or a wrong token?)",
                reference,
            ) from None
        except TimeoutError:
            raise ItemTimeoutError(
                errno.ETIMEDOUT,
                f"load_item: the socket's writer sent nothing for {timeout} s",
                reference,
            ) from None
        if magic != _MAGIC:
            raise ItemError(
                errno.EPROTO, "load_item: the peer is not a dump_item writer", reference
            )
        try:
            return _receive_exactly(read_into, length, chunk)
        except (EOFError, ConnectionError, TimeoutError) as error:
            raise ItemTruncatedError(
                errno.EPIPE,
                f"load_item: item incomplete, the writer stopped ({error})",
                reference,
            ) from None


def _sliced_reader(
    connection: socket.socket, timeout: float
) -> Callable[[memoryview], int]:
    """``connection.recv_into`` that raises TimeoutError only after
    ``timeout`` seconds without data, but sleeps at most WAKE_INTERVAL s at
    a time (see papy.util._waits)."""
    connection.settimeout(min(timeout, WAKE_INTERVAL))

    def read_into(view: memoryview) -> int:
        deadline = time.monotonic() + timeout
        while True:
            try:
                return connection.recv_into(view)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise

    return read_into


def _request(
    connection: socket.socket, token: bytes, read_into: Callable[[memoryview], int]
) -> tuple[bytes, int]:
    """Show the token (a few bytes: the empty send buffer takes them at
    once); return the header's magic and item length."""
    connection.sendall(token + b"\n")
    magic, length = _HEADER.unpack(_receive_exactly(read_into, _HEADER.size))
    return magic, length
