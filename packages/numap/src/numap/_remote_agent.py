"""The agent NuMap installs in a remote RPyC classic server.

SELF-CONTAINED: this module imports only the standard library and nothing of
numap, because its SOURCE TEXT is sent to remote hosts that have only rpyc.
The parent (numap._remote) executes that text once per server process as a
module named ``_numap_remote_agent_<hash of the source>``, so that different
numap versions using one server never share an agent.

What runs where::

    parent process            rpyc_classic server (threads)     worker process
    --------------            -----------------------------     --------------
    RemoteChannel.send --feed connection-->  pump_in(token)     --stdin-->  serve_stdio
    RemoteChannel.recv <--drain connection-- pump_out(token)    <--stdout--  serve_stdio
                         (rpyc to set up, then raw frames)
                                             watchdog thread: ends workers whose
                                             connections closed

Each worker is driven through two connections, one per direction, that
meet here, in the registry, by token (which requires the server's default
``threaded`` mode: one process for all connections). rpyc sets the worker
up; then each connection's last request, ``pump_in`` or ``pump_out``, keeps
its server thread and takes over its socket: frames travel raw, with no
rpyc message per frame.

The CPU-bound work runs in the worker subprocess, never in the server, whose
threads only copy bytes between the socket and the pipes.

Registry invariants (``_workers`` guarded by ``_registry_lock``):
- a token is in ``_workers`` from ``start_worker`` until ``stop_worker``;
  ``stop_worker`` removes it first, so a worker is stopped exactly once;
- a dropped parent leaves no worker behind: once the pumps run, pump_in
  stops the worker when the feed stream ends (closed, reset or timed out
  by keepalive), and the watchdog ends it at once when the drain stream
  ends (see Stopping); before that, the watchdog stops it as soon as any
  of its services' connections has closed.

Stopping: a worker busy in its function for ever, with more input queued
than its stdin pipe holds, must still be ended. So no thread ever blocks
for good on that pipe: it is non-blocking, and a write waits for room in
slices of WATCH_INTERVAL, giving up once the worker is ``stopping``. The
end of the feed stream may be stuck behind those frames, but the drain
connection carries nothing from the parent once pump_out streams: its end
or reset (the parent closed it, asked for the worker's end, or died) is
seen by the watchdog, which then ends the worker at once (SIGTERM, then
SIGKILL after STOP_GRACE), in a thread of its own so that workers asked
to end together end together. A stop that is giving a worker its grace
(stdin closed) turns into that too when the drain ends meanwhile.
"""

import collections
import contextlib
import os
import select
import socket
import subprocess
import sys
import threading
import time
import uuid

HEADER_SIZE = 8  # length prefix of a frame: 8-byte big-endian, as numap._protocol
END_FLAG = 1 << 63  # set in the length of pump_out's last frame: why it ended
WATCH_INTERVAL = 0.25  # seconds between the watchdog's looks at the connections
KEEPALIVE = 10  # seconds: TCP keepalive idle time and probe interval
STOP_GRACE = 2.0  # seconds a worker gets to exit after its stdin closes
STDERR_LINES = 20  # last lines of a worker's stderr kept for error messages
STDERR_LINE_CHARS = 4096  # characters kept of each of those lines (the last)
STDERR_MESSAGE_CHARS = 4096  # most characters of stderr in one error message
# Characters of stderr lines that may wait for the server's stderr; lines
# beyond are dropped (a server's stderr may be full, nobody reading it).
STDERR_BACKLOG_CHARS = 4 << 20
READY = b"numap worker ready"  # the worker's first frame, once it can serve
READ_CHUNK = 1 << 20  # bytes asked of the worker's stdout at a time
MAX_READ_BYTES = 4 << 20  # most bytes of frames one read() returns


class _Worker:
    """One worker subprocess and the server-side services of its connections."""

    def __init__(self, process, service):
        self.process = process
        self.services = [service]
        self.stderr_tail = collections.deque(maxlen=STDERR_LINES)
        # Stop state (see Stopping in the module docstring): ``stopping``
        # is set once, first thing in stop(); a write waiting for room in a
        # full stdin pipe sees it within WATCH_INTERVAL and gives up, and so
        # releases write_lock. ``stop_lock`` makes a second stop() wait for
        # the first to have reaped the process.
        self.stopping = threading.Event()
        self.stop_lock = threading.Lock()
        self.stopped = False
        # Why the agent stopped the worker (the first stop's reason), for
        # the message that ends the drain stream.
        self.stop_reason = None
        # The drain connection's socket, once pump_out streams on it: the
        # parent never writes there, so anything readable on it (its end,
        # or a reset) means the parent asks for the worker's end at once.
        self.drain_socket = None
        self.write_lock = threading.Lock()
        # Bytes read from stdout but not yet returned, and the lock that
        # keeps stop_worker from closing stdout under a read in progress.
        self.unread = bytearray()
        self.read_lock = threading.Lock()
        self.stderr_thread = threading.Thread(
            target=self._drain_stderr, name="numap-stderr", daemon=True
        )
        self.stderr_thread.start()

    def _drain_stderr(self):
        # Drained to its end whatever becomes of the copies, so that a
        # chatty worker never blocks on a full stderr pipe. The user's
        # prints land there (stdout carries frames): they go on to the
        # server's stderr (see _forward_stderr), and the tail is kept for
        # error messages, each line cut to its last STDERR_LINE_CHARS.
        prefix = f"[numap worker {self.process.pid}] "
        try:
            for raw in self.process.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                self.stderr_tail.append(_cut(line, STDERR_LINE_CHARS))
                _forward_stderr(prefix + line + "\n")
        except (OSError, ValueError):  # the pipe was closed by stop_worker
            pass

    def end_requested(self):
        """True once the parent ended (or reset) the drain connection."""
        sock = self.drain_socket
        if sock is None:
            return False
        try:
            fd = sock.fileno()
        except OSError:
            return True
        if fd < 0:
            return True
        if not _ready(fd, POLL_IN, 0):
            return False
        # Read below any TLS layer (socket.socket's recv, not SSLSocket's):
        # only the connection's end or reset counts. Stray bytes (an rpyc
        # message the parent sent just before the stream began) are
        # dropped: nothing on this side reads this socket any more.
        try:
            return not socket.socket.recv(sock, 65536, _DONT_WAIT)
        except BlockingIOError:
            return False
        except OSError:  # reset
            return True

    def stop(self, kill=False, reason=None):
        """End the process and reap it; returns its exit code.

        Its stdin is closed (the worker ends after the call it is in) and it
        gets STOP_GRACE seconds to exit, then it is killed (SIGKILL). With
        ``kill``, or once the parent asks for the end (``end_requested``),
        it is sent SIGTERM at once. ``reason`` (of the first call that gives
        one) is told to the parent with the worker's end. Safe from any
        thread, more than once: a later call waits until the first has
        reaped the process.
        """
        if self.stop_reason is None:
            self.stop_reason = reason
        self.stopping.set()
        with self.stop_lock:
            if not self.stopped:
                self._end(kill)
                self.stopped = True
        return self.process.returncode

    def _end(self, kill):
        process = self.process
        terminated = False
        deadline = time.monotonic() + STOP_GRACE
        closed_stdin = False
        while process.poll() is None and time.monotonic() < deadline:
            if not terminated and (kill or self.end_requested()):
                with contextlib.suppress(OSError):
                    process.terminate()
                terminated = True
            # A write in progress gives up within WATCH_INTERVAL (stopping
            # is set); closing stdin under it could reuse its fd.
            if not closed_stdin and self.write_lock.acquire(timeout=0.05):
                with contextlib.suppress(OSError, ValueError):
                    process.stdin.close()
                self.write_lock.release()
                closed_stdin = True
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.05)
        if process.poll() is None:
            process.kill()
            process.wait()
        if not closed_stdin and self.write_lock.acquire(timeout=STOP_GRACE):
            with contextlib.suppress(OSError, ValueError):
                process.stdin.close()
            self.write_lock.release()
        # A read still running (its worker is dead, so it is ending) keeps
        # stdout open until it returns: its fd must not be reused under it.
        if self.read_lock.acquire(timeout=STOP_GRACE):
            with contextlib.suppress(OSError):
                process.stdout.close()
            self.read_lock.release()
        with contextlib.suppress(OSError):
            process.stderr.close()

    def describe_exit(self):
        """Say why the worker's pipes closed: exit code and stderr tail."""
        try:
            code = self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            code = None
        self.stderr_thread.join(timeout=0.5)
        if code is None:
            text = f"worker process {self.process.pid} closed its pipes"
        elif code < 0:
            text = f"worker process {self.process.pid} was killed by signal {-code}"
        else:
            text = f"worker process {self.process.pid} exited with code {code}"
        tail = " | ".join([line for line in self.stderr_tail if line][-5:])
        if tail:
            text += "; its last stderr lines: " + _cut(tail, STDERR_MESSAGE_CHARS)
        if self.stop_reason is not None:
            text = f"the host stopped the worker ({self.stop_reason}): {text}"
        return text


def _cut(text, size):
    """The last ``size`` characters of ``text``, saying how many were cut."""
    if len(text) <= size:
        return text
    return f"[{len(text) - size} characters cut] {text[-size:]}"


_workers: dict = {}  # token -> _Worker
_registry_lock = threading.Lock()
_watchdog = None
# The workers' stderr lines on their way to the server's stderr, and how
# many characters they hold (at most STDERR_BACKLOG_CHARS).
_stderr_backlog: collections.deque = collections.deque()
_stderr_backlog_chars = 0
_stderr_waiting = threading.Condition()
_stderr_writer = None


def _forward_stderr(text):
    # Never blocks nor fails: a stderr drain that stopped would let its
    # worker block on a full pipe for ever. The server's stderr is written
    # by a thread of its own (see _ensure_threads), since it may be closed
    # (None), broken or full (a pipe nobody reads); what it cannot take in
    # time is dropped.
    global _stderr_backlog_chars
    with _stderr_waiting:
        if _stderr_backlog_chars + len(text) > STDERR_BACKLOG_CHARS:
            return
        _stderr_backlog.append(text)
        _stderr_backlog_chars += len(text)
        _stderr_waiting.notify()


def _write_stderr():
    global _stderr_backlog_chars
    while True:
        with _stderr_waiting:
            while not _stderr_backlog:
                _stderr_waiting.wait()
            text = _stderr_backlog.popleft()
            _stderr_backlog_chars -= len(text)
        with contextlib.suppress(Exception):  # dropped: see _forward_stderr
            sys.stderr.write(text)


def _tune_connection(service):
    # zlib (rpyc's default for messages above 3 kB) costs more than it saves
    # on a LAN: frames are sent uncompressed, as the parent sends them. And
    # replies go out at once (TCP_NODELAY), as the parent's requests do.
    connection = getattr(service, "_conn", None)
    channel = getattr(connection, "_channel", None)
    if channel is None:
        return
    if hasattr(channel, "compress"):
        channel.compress = False
    sock = getattr(getattr(channel, "stream", None), "sock", None)
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # A parent that vanishes without closing (power, network) is noticed by
    # TCP keepalive: the connection then closes and the watchdog ends its
    # workers. Linux option names; elsewhere the system's defaults apply.
    with contextlib.suppress(AttributeError, OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, KEEPALIVE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, KEEPALIVE)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, 5)


def start_worker(bootstrap, payload, service):
    """Start one worker subprocess and return its token.

    bootstrap: the ``python -c`` program of the worker; it first reads one
    frame, ``payload`` (the program it then runs), from its stdin, then
    answers READY. Returns once it has; raises RuntimeError (with the
    worker's exit status and stderr) if it does not.
    service: the server-side service of the calling connection; the worker
    is stopped when that connection closes.
    """
    _tune_connection(service)
    process = subprocess.Popen(
        [sys.executable, "-c", bootstrap],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        close_fds=True,
    )
    # Written without blocking: see _write_all.
    os.set_blocking(process.stdin.fileno(), False)
    worker = _Worker(process, service)
    token = uuid.uuid4().hex
    with _registry_lock:
        _workers[token] = worker
        _ensure_threads()
    problem = write(token, payload)
    if problem is None:
        ready = read(token)
        if isinstance(ready, str):
            problem = ready
        elif ready != (READY,):
            problem = f"it sent {ready[0][:40]!r}, expected {READY!r}"
    if problem is not None:
        stop_worker(token)
        raise RuntimeError(f"the numap worker process did not start: {problem}")
    return token


def attach(token, service):
    """Tie a second connection to a worker; False if the token is unknown.

    An unknown token means the connections landed in different server
    processes (a server in ``forking`` mode) or the worker already stopped.
    """
    _tune_connection(service)
    with _registry_lock:
        worker = _workers.get(token)
        if worker is None:
            return False
        worker.services.append(service)
        return True


def write(token, data):
    """Send one frame to the worker; None on success, else why it failed."""
    worker = _workers.get(token)
    if worker is None:
        return "the worker was stopped"
    header = len(data).to_bytes(HEADER_SIZE, "big")
    try:
        with worker.write_lock:
            if worker.stopping.is_set():
                return "the worker was stopped"
            fd = worker.process.stdin.fileno()
            for part in (header, data):
                if not _write_all(fd, memoryview(part), worker.stopping):
                    return "the worker was stopped"
    except (OSError, ValueError):
        return worker.describe_exit()
    return None


def _write_all(fd, view, stopping):
    # The pipe is non-blocking: a worker busy in its function for ever,
    # with its pipe full, must not hold the writer for ever, or nothing
    # could stop it (the stop needs write_lock to close stdin). So it waits
    # for room in slices, looking at ``stopping`` in between. False when
    # stopped first.
    while view:
        with contextlib.suppress(BlockingIOError):  # full: wait for room
            view = view[os.write(fd, view) :]
        while view and not _ready(fd, POLL_OUT, WATCH_INTERVAL):
            if stopping.is_set():
                return False
    return True


def _take_frames(unread, frames, limit):
    # Moves the complete frames at the head of ``unread`` into ``frames``,
    # until ``limit`` bytes of them; returns their total size.
    offset = 0
    taken = sum(len(frame) for frame in frames)
    while taken < limit and len(unread) - offset >= HEADER_SIZE:
        size = int.from_bytes(unread[offset : offset + HEADER_SIZE], "big")
        end = offset + HEADER_SIZE + size
        if end > len(unread):
            break
        frames.append(bytes(unread[offset + HEADER_SIZE : end]))
        taken += size
        offset = end
    del unread[:offset]
    return taken


POLL_IN = getattr(select, "POLLIN", 1)
_DONT_WAIT = getattr(socket, "MSG_DONTWAIT", 0)  # (readable: it would not wait)
POLL_OUT = getattr(select, "POLLOUT", 4)


def _ready(fd, event, timeout):
    """Whether ``fd`` is ready for ``event`` (POLL_IN, POLL_OUT) within
    ``timeout`` seconds; also True when it hung up or failed."""
    try:
        if hasattr(select, "poll"):  # not limited to fds below FD_SETSIZE
            poller = select.poll()
            poller.register(fd, event)
            return bool(poller.poll(timeout * 1000))
        reading = [fd] if event == POLL_IN else []
        writing = [fd] if event == POLL_OUT else []
        return any(select.select(reading, writing, [fd], timeout))
    except (OSError, ValueError):
        return True


def _readable(fd):
    return _ready(fd, POLL_IN, 0)


def read(token):
    """Wait for the worker's next frame, and take every other frame that is
    already there (up to MAX_READ_BYTES), so that one send carries them all.

    Returns a tuple of bytes, or a str saying why no frame came.
    """
    worker = _workers.get(token)
    if worker is None:
        return "the worker was stopped"
    return _read_frames(worker)


def _read_frames(worker):
    frames = []
    with worker.read_lock:
        try:
            fd = worker.process.stdout.fileno()
            while True:
                taken = _take_frames(worker.unread, frames, MAX_READ_BYTES)
                if frames and (taken >= MAX_READ_BYTES or not _readable(fd)):
                    return tuple(frames)
                chunk = os.read(fd, READ_CHUNK)
                if not chunk:
                    break
                worker.unread += chunk
        except (OSError, ValueError):
            pass
    if frames:
        return tuple(frames)  # the next read reports the end
    return worker.describe_exit()


def recv_exactly(sock, size):
    """``size`` bytes from the socket (a bytearray), or None when it ends
    first. The parent (numap._remote) reads its drain socket with it too."""
    data = bytearray(size)
    view = memoryview(data)
    received = 0
    while received < size:
        count = sock.recv_into(view[received:], min(size - received, READ_CHUNK))
        if count == 0:
            return None
        received += count
    return data


def pump_in(token, service):
    """Stream the parent's frames, raw, from this connection into the worker.

    Called by the parent as its last request on the feed connection: from
    then on that connection's socket carries length-prefixed frames, not
    rpyc messages. Ends when the parent closes it (or is gone): then the
    worker is stopped and reaped, and this returns. A worker that dies
    first makes the rest of the frames be read and dropped (its loss
    reaches the parent through pump_out), so the parent never blocks.
    """
    sock = service._conn._channel.stream.sock
    sock.settimeout(None)
    worker = _workers.get(token)
    worker_alive = True
    try:
        while True:
            header = recv_exactly(sock, HEADER_SIZE)
            if header is None:
                break
            body = recv_exactly(sock, int.from_bytes(header, "big"))
            if body is None:
                break
            if worker_alive:
                worker_alive = write(token, body) is None
    except OSError:  # the parent is gone
        pass
    stop_worker(token, reason="its feed connection from the parent ended")
    if worker is not None:  # stopped by the watchdog: wait until it is reaped
        worker.stop()


def pump_out(token, service):
    """Stream the worker's frames to the parent, raw, over this connection.

    Called by the parent as its last request on the drain connection: from
    then on that connection's socket carries length-prefixed frames, not
    rpyc messages, with no request per frame. When the worker's output ends,
    a last frame whose length has END_FLAG set says why; then it returns.
    """
    sock = service._conn._channel.stream.sock
    sock.settimeout(None)
    try:
        worker = _workers.get(token)
        if worker is None:
            _send_end(sock, "the worker was stopped")
            return
        worker.drain_socket = sock
        while True:
            # Read from the worker even once it is stopping: the results of
            # the call it finishes still reach the parent, and the end says
            # why the worker ended.
            frames = _read_frames(worker)
            if isinstance(frames, str):
                _send_end(sock, frames)
                return
            parts = []
            for frame in frames:
                parts.append(len(frame).to_bytes(HEADER_SIZE, "big"))
                parts.append(frame)
            sock.sendall(b"".join(parts))
    except OSError:  # the parent is gone; the watchdog ends the worker
        return


def _send_end(sock, why):
    reason = why.encode("utf-8", "replace")
    sock.sendall((END_FLAG | len(reason)).to_bytes(HEADER_SIZE, "big") + reason)


def stop_worker(token, kill=False, reason=None):
    """End a worker and reap it: see ``_Worker.stop``.

    kill: end it at once (SIGTERM) instead of giving it STOP_GRACE seconds
    to exit after its stdin closes. reason: why, for the parent (None when
    the parent asked). Returns its exit code, or None for an unknown token.
    """
    with _registry_lock:
        worker = _workers.pop(token, None)
    if worker is None:
        return None
    return worker.stop(kill, reason)


def worker_pids():
    """Process ids of the workers this agent runs now (for diagnostics)."""
    with _registry_lock:
        return [worker.process.pid for worker in _workers.values()]


def _connection_closed(service):
    connection = getattr(service, "_conn", None)
    return connection is None or connection.closed


def _watch():
    while True:
        time.sleep(WATCH_INTERVAL)
        ending = []
        with _registry_lock:
            for token, worker in list(_workers.items()):
                kill = worker.end_requested()
                if kill or any(map(_connection_closed, worker.services)):
                    del _workers[token]
                    reason = None if kill else "a connection from the parent closed"
                    ending.append((worker, kill, reason))
        # Each in a thread of its own: workers asked to end together end
        # together, not one grace period after another.
        for worker, kill, reason in ending:
            try:
                threading.Thread(
                    target=worker.stop,
                    args=(kill, reason),
                    name="numap-stop",
                    daemon=True,
                ).start()
            except RuntimeError:  # no thread to spare: stop it here, in turn
                worker.stop(kill, reason)


def _ensure_threads():
    # Called with _registry_lock held.
    global _watchdog, _stderr_writer
    if _watchdog is None or not _watchdog.is_alive():
        _watchdog = threading.Thread(target=_watch, name="numap-watchdog", daemon=True)
        _watchdog.start()
    if _stderr_writer is None or not _stderr_writer.is_alive():
        _stderr_writer = threading.Thread(
            target=_write_stderr, name="numap-stderr-writer", daemon=True
        )
        _stderr_writer.start()
