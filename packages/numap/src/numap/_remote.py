"""Remote workers: worker processes on hosts that run a stock RPyC classic server.

A remote host runs ``rpyc_classic`` (shipped with rpyc) and nothing of ours.
For each remote worker the parent opens two rpyc connections to the host,
installs a small agent (numap._remote_agent, sent as source text) in the
server, and has it start one worker subprocess running numap._protocol (also
sent as source text). Once the worker is up, each connection's last rpyc
request hands its socket to the agent, and NuMap's frames, whole batches of
items or results, travel raw on it, each with an 8-byte length; results
come back as plain values, never as network references::

    parent                         rpyc_classic server             worker process
    RemoteChannel.send --feed-->   agent.pump_in  --stdin pipe-->   serve_stdio()
    RemoteChannel.recv <--drain--  agent.pump_out <--stdout pipe--  serve_stdio()

Why two connections: a classic server serves each connection with one
thread, and each pump keeps its connection's thread for as long as the
worker runs; with one connection per direction, a send never waits for a
recv.

A classic server runs any code it is sent: it belongs on a trusted network
(or behind SSL client certificates, see ``worker_remote_ssl``).
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from hashlib import sha256
from typing import Any

import rpyc
from rpyc.core.channel import Channel as RpycChannel
from rpyc.core.service import ClassicClient
from rpyc.core.stream import SocketStream
from rpyc.lib import Timeout
from rpyc.utils.factory import connect_channel

from numap import _remote_agent, _waits
from numap._channel import Channel, ChannelLost
from numap._errors import HostLostError, HostUnreachableError, NuMapError
from numap._hosts import HostAddress, parse_host_spec, ssl_plan

CONNECT_TIMEOUT = 5.0  # seconds to wait for a host to accept a connection
# Seconds a host may take to answer as a classic server once it accepted a
# connection, and to answer each request while a worker starts.
HANDSHAKE_TIMEOUT = 15.0
# Seconds the whole start of one remote worker may take (two connections,
# the agent, a Python process started on the host): generous, as a loaded
# host may take seconds, but a host that froze must not hang start() long.
WORKER_START_TIMEOUT = 30.0
# Bytes of the longest rpyc message a host may answer while a worker is set
# up (the answers are tiny): a longer one means the port has another service.
MAX_SETUP_MESSAGE = 1 << 20
KEEPALIVE = _remote_agent.KEEPALIVE  # TCP keepalive seconds, as the host uses
STOP_TIMEOUT = 5.0  # seconds to wait for a remote worker to be stopped
# Seconds close() waits for a worker that got the end of its input to be
# stopped (it gets the host's STOP_GRACE to exit) before it asks the host
# to end it at once (the end of its input may be stuck behind frames).
STOP_GRACE_WAIT = _remote_agent.STOP_GRACE + 1.0
CLOSE_TIMEOUT = 2.0  # seconds to wait for rpyc's polite close of a connection
MAX_PARALLEL_STARTS = 16  # remote workers started at the same time
HEADER_SIZE = _remote_agent.HEADER_SIZE  # bytes of a raw frame's length prefix
END_FLAG = _remote_agent.END_FLAG  # in a raw frame's length: the stream's end
SMALL_FRAME = 1 << 16  # frames below this go out in one buffer with their length

_AGENT_SOURCE = inspect.getsource(_remote_agent)
_AGENT_NAME = "_numap_remote_agent_" + sha256(_AGENT_SOURCE.encode()).hexdigest()[:12]
_INSTALL_AGENT = f"""
import sys as _sys, types as _types
if {_AGENT_NAME!r} not in _sys.modules:
    _module = _types.ModuleType({_AGENT_NAME!r})
    exec(compile({_AGENT_SOURCE!r}, {_AGENT_NAME!r}, "exec"), _module.__dict__)
    _sys.modules.setdefault({_AGENT_NAME!r}, _module)
"""

# The worker subprocess's program. It reads numap._protocol's source as the
# first frame on stdin, runs it as a module of that name (so that a user's
# module that imports numap on the host finds this protocol), says it is
# ready (the agent waits for that, so that NuMap.start returns with its
# workers up, or fails naming why), then serves.
# PR_SET_PDEATHSIG (Linux) kills the worker when the server thread that
# started it ends, i.e. when its connection is gone, even mid-computation.
# As local workers do, it ignores Ctrl-C: a server started from a terminal
# shares its process group, and the parent decides when workers end.
_WORKER_BOOTSTRAP = f"""
import signal, sys, types
READY = {_remote_agent.READY!r}
signal.signal(signal.SIGINT, signal.SIG_IGN)
try:
    import ctypes
    ctypes.CDLL(None).prctl(1, signal.SIGKILL)
except Exception:
    pass
_stream = sys.stdin.buffer
_source = _stream.read(int.from_bytes(_stream.read(8), "big")).decode("utf-8")
_protocol = types.ModuleType("numap._protocol")
sys.modules["numap._protocol"] = _protocol
exec(compile(_source, "<numap._protocol>", "exec"), _protocol.__dict__)
sys.stdout.buffer.write(len(READY).to_bytes(8, "big") + READY)
sys.stdout.buffer.flush()
_protocol.serve_stdio()
"""


def _protocol_source() -> bytes:
    from numap import _protocol

    return inspect.getsource(_protocol).encode("utf-8")


def _ssl_kwargs(options: Mapping[str, Any]) -> dict[str, Any]:
    # With a CA file the server's certificate is verified, host name
    # included unless check_hostname=False; without one it is not verified.
    kwargs: dict[str, Any] = {"server_side": False}
    for key in ("keyfile", "certfile", "ca_certs"):
        if options.get(key) is not None:
            kwargs[key] = options[key]
    if options.get("ca_certs") is not None:
        kwargs["cert_reqs"] = ssl_module.CERT_REQUIRED
        kwargs["check_hostname"] = bool(options.get("check_hostname", True))
    else:
        kwargs["cert_reqs"] = ssl_module.CERT_NONE
        kwargs["check_hostname"] = False
    return kwargs


class _NotRpyc(ConnectionError):
    """The peer answered, but not as an rpyc server."""


class _SetupStream(SocketStream):
    """rpyc's socket stream, with a deadline while a worker is set up.

    rpyc limits only the wait for the first byte of an answer, and its read
    retries on socket timeouts: a peer that sends a few bytes and then waits
    (an SSH or SMTP banner, a Redis error reply) would be read for ever as
    the start of a huge message. While ``deadline`` (a time.monotonic()
    time) is set, every wait on the socket gives up at it with TimeoutError;
    ``run_without_limit`` clears it once the worker runs, when a batch may
    take longer than any timeout.

    While the deadline is set, a read of more than MAX_SETUP_MESSAGE bytes
    is refused at once with _NotRpyc: the answers while a worker is set up
    are a few bytes each, so such a length (an SSH banner read as an rpyc
    header announces ~1.4 GB) means the peer is not an rpyc server at all,
    and waiting for that many bytes would wait for the deadline for nothing.
    """

    deadline: float | None = None
    # The bytes of the last read while the deadline is set: the header
    # whose length a refused read came from, to show in the error.
    _last_read: bytes = b""

    def run_without_limit(self) -> None:
        self.deadline = None
        self.sock.settimeout(None)

    def _time_left(self) -> float:
        # Called while the deadline is set; it also bounds the socket's
        # sends, which rpyc turns into EOFError when they time out.
        assert self.deadline is not None
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no answer in time")
        self.sock.settimeout(left)
        return left

    def poll(self, timeout: Any) -> bool:
        if self.deadline is None:
            return bool(super().poll(timeout))
        left = self._time_left()
        wanted = Timeout(timeout).timeleft()  # rpyc passes a Timeout or seconds
        return bool(super().poll(left if wanted is None else min(wanted, left)))

    def read(self, count: int) -> bytes:
        if self.deadline is None:
            return super().read(count)  # type: ignore[no-any-return]
        if count > MAX_SETUP_MESSAGE + len(RpycChannel.FLUSHER):
            self.close()
            raise _NotRpyc(
                f"it answered {self._last_read!r}..., which is not rpyc: "
                "another service listens on that port"
            )
        chunks = []
        while count > 0:
            self._time_left()
            try:
                chunk = self.sock.recv(min(self.MAX_IO_CHUNK, count))
            except TimeoutError:
                continue  # _time_left raises if the deadline passed
            except OSError as error:
                self.close()
                raise EOFError(error) from error
            if not chunk:
                self.close()
                raise EOFError("connection closed by peer")
            chunks.append(chunk)
            count -= len(chunk)
        self._last_read = b"".join(chunks)
        return self._last_read

    def write(self, data: bytes) -> None:
        if self.deadline is not None:
            self._time_left()
        super().write(data)


def connect(
    address: HostAddress,
    deadline: float | None = None,
    opened: Callable[[_SetupStream], None] | None = None,
) -> rpyc.Connection:
    """Open one rpyc classic connection; HostUnreachableError if it fails.

    The host must accept within CONNECT_TIMEOUT seconds and answer as a
    classic server within HANDSHAKE_TIMEOUT (or by ``deadline``, a
    time.monotonic() time, if that is sooner); one that answers something
    else fails at once. deadline: None (default) leaves the connection
    without time limits once it is open; otherwise it stays on the
    connection's stream (see _SetupStream). opened: called with the stream
    as soon as it is connected, before the handshake (so that another
    thread can abort it). The connection exposes nothing of the parent to
    the server.
    """
    options = {
        "timeout": CONNECT_TIMEOUT,
        "attempts": 1,
        "nodelay": True,
        "keepalive": KEEPALIVE,
    }
    stream: _SetupStream | None = None
    try:
        if address.ssl:
            stream = _SetupStream.ssl_connect(
                address.host, address.port, _ssl_kwargs(address.ssl), **options
            )
        else:
            stream = _SetupStream.connect(address.host, address.port, **options)
        if opened is not None:
            opened(stream)
        handshake_end = time.monotonic() + HANDSHAKE_TIMEOUT
        stream.deadline = (
            handshake_end if deadline is None else min(deadline, handshake_end)
        )
        # zlib (rpyc's default above 3 kB) costs more than it saves on a LAN:
        # 4x slower on large frames, measured on loopback.
        channel = RpycChannel(stream, compress=False)
        connection = connect_channel(
            channel, ClassicClient, {"sync_request_timeout": HANDSHAKE_TIMEOUT}
        )
    except (OSError, EOFError, AttributeError) as error:
        if isinstance(error, AttributeError) and not hasattr(error, "_remote_tb"):
            raise  # ours, not the host's: a bug to show as it is
        if stream is not None:
            stream.close()
        raise HostUnreachableError(
            f"cannot reach NuMap remote host {address} "
            f"({_why_unreachable(error, stream)}); check that rpyc_classic is "
            f"running there and listens on port "
            f"{address.port}{' with SSL' if address.ssl else ''}"
        ) from error
    if deadline is None:
        stream.run_without_limit()
    else:
        stream.deadline = deadline
    return connection


def _why_unreachable(error: BaseException, stream: _SetupStream | None) -> str:
    if isinstance(error, TimeoutError) or _expired(stream):
        # (TimeoutError, which rpyc raises for an unanswered request, is an
        # OSError too; a send that timed out reaches here as EOFError.)
        return "no answer in time"
    if isinstance(error, AttributeError):
        # Raised by the host: its rpyc service has no getmodule, so it is
        # some other rpyc service than the classic one.
        first_line = str(error).splitlines()[0] if str(error) else ""
        return f"an rpyc server answers there, but not the classic one: {first_line}"
    if isinstance(error, ssl_module.SSLError):
        return f"SSL {error}"
    return str(error) or type(error).__name__


def _expired(stream: _SetupStream | None) -> bool:
    deadline = None if stream is None else stream.deadline
    return deadline is not None and time.monotonic() >= deadline


def _install_agent(connection: rpyc.Connection) -> Any:
    connection.execute(_INSTALL_AGENT)
    return connection.modules[_AGENT_NAME]


def _close_connection(connection: rpyc.Connection | None) -> None:
    if connection is None:
        return
    # rpyc's close asks the server politely, waiting sync_request_timeout:
    # bounded here, so that a hung host cannot hang close().
    connection._config["sync_request_timeout"] = CLOSE_TIMEOUT
    with contextlib.suppress(Exception):  # it is going away either way
        connection.close()


class RemoteChannel(Channel):
    """One worker process on a remote host, reached over two connections.

    rpyc sets the worker up (agent, subprocess, readiness); then, as each
    connection's last rpyc request, the agent's ``pump_in`` (feed) and
    ``pump_out`` (drain) take over that connection's socket (same socket,
    same SSL): frames travel raw, each with an 8-byte length, so no frame
    pays for an rpyc request or a round trip. The drain stream ends with a
    frame whose length has END_FLAG set, saying why the worker stopped;
    ending the feed stream makes the host stop and reap the worker and
    close the connection. The parent never writes on the drain connection
    once it streams: ending it (``terminate``) asks the host to end the
    worker at once.

    Concurrency: ``send`` and ``recv`` may run at the same time in two
    threads; each has its own lock and its own socket (feed, drain), so
    neither waits for the other. ``close`` may be called from any thread, at
    any time, more than once. State:
    - ``_closed`` (under ``_state_lock``) turns True once, in ``close``;
      after that ``send``/``recv`` raise ChannelLost without network I/O.
    - ``_broken`` is set by whichever of ``send``/``recv`` first learns
      that the worker or host is gone (a reason); both raise ChannelLost
      with it from then on.
    - ``_feed_stream`` is written only by ``send`` (under ``_send_lock``)
      and shut down by ``close``, which fails a ``send`` blocked on it;
      ``_drain_stream`` is read only
      by ``recv`` (under ``_recv_lock``) and shut down by ``close``, which
      wakes a ``recv`` waiting on it. rpyc no longer touches either socket:
      both connections' rpyc channels are stubs that refuse to send.
    """

    replaceable = False
    lost_error = HostLostError

    def __init__(
        self,
        address: HostAddress,
        index: int,
        registered: Callable[[RemoteChannel], None] | None = None,
    ) -> None:
        """Connect to ``address`` and start remote worker number ``index``.

        registered: called with the channel before anything is sent, so
        that another thread can ``abort`` the start. Raises
        HostUnreachableError if the host cannot be reached or stops
        answering (the whole start gets WORKER_START_TIMEOUT seconds),
        NuMapError if the server cannot run the worker.
        """
        self.address = address
        self.label = f"host {address} worker {index}"
        self._state_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._closed = False
        self._aborted = False
        self._streams: list[_SetupStream] = []
        self._broken: str | None = None
        self._feed: rpyc.Connection | None = None
        self._drain: rpyc.Connection | None = None
        self._token: str | None = None
        self.started = False  # set once the worker runs and frames stream
        try:
            if registered is not None:
                registered(self)
            self._start_worker(time.monotonic() + WORKER_START_TIMEOUT)
        except BaseException:
            self.close()
            raise

    def abort(self) -> None:
        """Make a start in progress in another thread fail at once.

        Its sockets are shut down (and any it opens later): the start then
        fails with HostUnreachableError and closes the channel itself.
        Returns at once. A started channel it breaks: close that one.
        """
        with self._state_lock:
            self._aborted = True
            streams = list(self._streams)
        for stream in streams:
            _shut_down(stream)

    def _opened(self, stream: _SetupStream) -> None:
        # connect() calls this before the handshake, the step that waits.
        with self._state_lock:
            self._streams.append(stream)
            aborted = self._aborted
        if aborted:
            _shut_down(stream)

    def _start_worker(self, deadline: float) -> None:
        try:
            self._feed = connect(self.address, deadline, self._opened)
            agent = _install_agent(self._feed)
            starting = rpyc.async_(agent.start_worker)(
                _WORKER_BOOTSTRAP, _protocol_source(), self._feed.root
            )
            starting.set_expiry(max(0.0, deadline - time.monotonic()))
            self._token = starting.value
            # rpyc.async_ wrappers are weakly cached: keep them referenced.
            self._stop = rpyc.async_(agent.stop_worker)
            self._drain = connect(self.address, deadline, self._opened)
            drain_agent = _install_agent(self._drain)
            attached = drain_agent.attach(self._token, self._drain.root)
        except HostUnreachableError:  # from connect: says it all already
            raise
        except (OSError, EOFError) as error:  # TimeoutError is an OSError
            raise self._start_failure(error, deadline) from error
        except Exception as error:
            raise NuMapError(
                f"NuMap remote host {self.address} could not start a worker "
                f"process: {error}"
            ) from error
        if not attached:
            raise NuMapError(
                f"NuMap remote host {self.address}: the rpyc_classic server "
                "serves connections in separate processes; run it in its "
                "default threaded mode (rpyc_classic -m threaded)"
            )
        self._stream_frames(agent, drain_agent)

    def _start_failure(self, error: BaseException, deadline: float) -> NuMapError:
        if isinstance(error, TimeoutError) or time.monotonic() >= deadline:
            return HostUnreachableError(
                f"NuMap remote host {self.address} stopped answering while a "
                f"worker started there (a worker's start may take "
                f"{WORKER_START_TIMEOUT:.0f} s); check that the host and its "
                "rpyc_classic server are not frozen, overloaded or cut off"
            )
        return HostUnreachableError(
            f"NuMap remote host {self.address} dropped the connection "
            f"while starting {self.label}: {error}"
        )

    def _stream_frames(self, agent: Any, drain_agent: Any) -> None:
        assert self._feed is not None and self._drain is not None
        # Started: from now on replies are awaited without limit, since a
        # batch may take longer than any timeout (rpyc's default is 30 s).
        for connection in (self._feed, self._drain):
            connection._config["sync_request_timeout"] = None
            connection._channel.stream.run_without_limit()
        # The drain connection's last request: the host streams the
        # worker's frames back raw on its socket. rpyc must not write on it
        # any more (a netref's deletion would): its channel becomes a stub.
        self._drain_stream = self._drain._channel.stream
        self._pump_out = rpyc.async_(drain_agent.pump_out)
        self._pump_out(self._token, self._drain.root)
        self._drain._channel = _RawSocketTaken()
        # Likewise the feed connection: the host writes what comes raw on
        # it into the worker, and stops and reaps the worker when it ends.
        self._feed_stream = self._feed._channel.stream
        self._pump_in = rpyc.async_(agent.pump_in)
        self._pump_in(self._token, self._feed.root)
        self._feed._channel = _RawSocketTaken()
        self.started = True

    def _lost(self, detail: object) -> ChannelLost:
        if self._broken is None:
            self._broken = f"lost {self.label}: {detail}"
        return ChannelLost(self._broken)

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise ChannelLost(self._broken)
        if self._closed:
            raise ChannelLost(f"{self.label}: the channel was closed")

    def send(self, data: bytes) -> None:
        """Send one frame to the remote worker; ChannelLost if it is gone.

        Blocks while the host and the worker's pipe are full, as a local
        pipe would.
        """
        with self._send_lock:
            self._check_usable()
            header = len(data).to_bytes(HEADER_SIZE, "big")
            sock = self._feed_stream.sock
            try:
                if len(data) < SMALL_FRAME:
                    sock.sendall(header + data)
                else:  # not worth copying into one buffer
                    sock.sendall(header)
                    sock.sendall(data)
            except Exception as error:
                raise self._lost(_describe(error)) from error

    def recv(self) -> bytes | bytearray:
        """Wait for the remote worker's next frame; ChannelLost if it is gone."""
        with self._recv_lock:
            self._check_usable()
            try:
                size = int.from_bytes(self._read_exactly(HEADER_SIZE), "big")
                if size & END_FLAG:
                    reason = self._read_exactly(size & ~END_FLAG)
                    raise self._lost(reason.decode("utf-8", "replace"))
                return self._read_exactly(size)
            except ChannelLost:
                raise
            except Exception as error:
                raise self._lost(_describe(error)) from error

    def _read_exactly(self, size: int) -> bytearray:
        # Called with _recv_lock held.
        data = _remote_agent.recv_exactly(self._drain_stream.sock, size)
        if data is None:
            raise EOFError("connection closed by peer")
        return data

    def close(self) -> None:
        """Stop and reap the remote worker, then close both connections.

        Once started, the worker is stopped by ending the feed stream: the
        host then stops and reaps it and closes the connection, which is
        awaited. When that end cannot reach a busy worker within
        STOP_GRACE_WAIT seconds (frames before it fill its pipe), ending
        the drain stream asks the host to end it at once; its end is then
        awaited STOP_TIMEOUT seconds more.
        """
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        feed_stream = getattr(self, "_feed_stream", None)
        if feed_stream is not None:
            # Not under _send_lock: a send blocked on a busy worker fails
            # at once instead; the host drops a frame cut short.
            with contextlib.suppress(OSError, AttributeError):
                feed_stream.sock.shutdown(socket.SHUT_WR)
            if not _wait_for_end(feed_stream, STOP_GRACE_WAIT):
                # The feed's end has not reached the worker: it is busy and
                # the frames before that end still fill its pipe. Ending
                # the drain stream makes the host end it at once.
                self._ask_host_to_end_worker()
                _wait_for_end(feed_stream, STOP_TIMEOUT)
        elif self._token is not None and self._feed is not None:
            # Failed while starting: rpyc still works on the feed connection.
            try:
                stopping = self._stop(self._token)
                stopping.set_expiry(STOP_TIMEOUT)
                stopping.wait()
            except Exception:  # host gone: its watchdog or death ends the worker
                pass
        for connection, stream in (
            (self._drain, getattr(self, "_drain_stream", None)),
            (self._feed, feed_stream),
        ):
            _close_connection(connection)
            if stream is not None:
                # shutdown first: it wakes a recv blocked on the socket.
                with contextlib.suppress(OSError, AttributeError):
                    stream.sock.shutdown(socket.SHUT_RDWR)
                stream.close()

    def terminate(self) -> None:
        """Make the remote worker end now, without finishing its call: the
        host sends it SIGTERM (its function unwinds: ``finally`` blocks
        run), then SIGKILL after its grace. Returns at once; ``close``
        still reaps it. Busy workers terminated one after another so end
        together, instead of each getting its grace in turn in ``close``."""
        with self._state_lock:
            if self._closed:
                return
        self._ask_host_to_end_worker()

    def _ask_host_to_end_worker(self) -> None:
        # The parent never writes on the drain connection once its frames
        # stream: its end (FIN) asks the host to end the worker at once.
        # socket.socket's shutdown, not SSLSocket's: that one would drop
        # the TLS state under a recv still reading frames.
        drain_stream: Any = getattr(self, "_drain_stream", None)
        with contextlib.suppress(OSError, AttributeError):
            socket.socket.shutdown(drain_stream.sock, socket.SHUT_WR)

    def __repr__(self) -> str:
        return f"<RemoteChannel {self.label}{' closed' if self._closed else ''}>"


def _shut_down(stream: Any) -> None:
    # socket.socket's shutdown, not SSLSocket's: that one would first try
    # to end TLS politely, with a peer that may not answer. (A closed
    # stream's sock is rpyc's ClosedFile: nothing to shut down.)
    sock = getattr(stream, "sock", None)
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _wait_for_end(stream: Any, timeout: float) -> bool:
    """Read and drop what comes on a socket until it ends (True) or
    ``timeout`` seconds passed (False)."""
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            stream.sock.settimeout(left)
            if not stream.sock.recv(65536):
                return True
    except TimeoutError:
        return False
    except (OSError, AttributeError):
        return True  # reset or closed: ended too


class _RawSocketTaken:
    """Stands in for the rpyc channel of a connection whose socket now
    carries raw frames: anything rpyc would still send fails (and rpyc
    ignores that where it does not matter, e.g. for netref deletions)."""

    compress = False

    def send(self, data: bytes) -> None:
        raise EOFError("this connection carries raw numap frames now")

    def recv(self) -> bytes:
        raise EOFError("this connection carries raw numap frames now")

    def poll(self, timeout: float | None) -> bool:
        raise EOFError("this connection carries raw numap frames now")

    def close(self) -> None:
        """The real socket is closed by RemoteChannel.close."""

    @property
    def closed(self) -> bool:
        return True

    def fileno(self) -> int:
        raise EOFError("this connection carries raw numap frames now")


def _describe(error: BaseException) -> str:
    if isinstance(error, EOFError | ConnectionError | socket.timeout):
        return f"connection to the host broken ({error or type(error).__name__})"
    return f"{type(error).__name__}: {error}"


def open_remote_channels(
    worker_remote: Iterable[tuple[str, int]],
    ssl: Mapping[str, Any] | None = None,
    interrupted: Callable[[], bool] | None = None,
) -> list[Channel]:
    """Start the remote workers of a NuMap; one Channel per worker.

    worker_remote: ('host' or 'host:port', n) pairs; n worker processes are
    started on each host. ssl: None, a dict of SSL options (keyfile,
    certfile, ca_certs, check_hostname) for every host, or a dict mapping
    host specs to such dicts (hosts not named connect without SSL).
    interrupted: polled while the workers start (None: never); once it is
    true, the start is given up as for Ctrl-C, and KeyboardInterrupt
    raised (for a Ctrl-C the caller held back).
    Raises HostUnreachableError naming host and port when a host cannot be
    reached or stops answering; no worker is left running then (after a
    Ctrl-C, the workers being started end in the background).
    """
    pairs = list(worker_remote)
    ssl_options = ssl_plan([spec for spec, _ in pairs], ssl)
    plan = [(parse_host_spec(spec, ssl_options[spec]), count) for spec, count in pairs]
    workers = [(address, index) for address, count in plan for index in range(count)]
    if not workers:
        return []
    # Started side by side: each worker costs a few network round trips and
    # a Python start-up on its host.
    starter = ThreadPoolExecutor(
        max_workers=min(len(workers), MAX_PARALLEL_STARTS),
        thread_name_prefix="numap-remote-start",
    )
    starts = _Starts()
    try:
        futures = [_submit(starter, starts.start_one, worker) for worker in workers]
        _wait_for_starts(futures, interrupted)
    except BaseException as error:
        # A failed start waits for the others to end, which the abort makes
        # quick (one still connecting takes up to CONNECT_TIMEOUT), so that
        # no worker started here is left behind when this raises. Ctrl-C
        # waits for nothing: the channels are closed in the background.
        failed = isinstance(error, Exception)  # else Ctrl-C, SystemExit...
        starts.abandon(wait=failed)
        starter.shutdown(wait=failed, cancel_futures=True)
        raise
    starter.shutdown()
    return [future.result() for future in futures]


def _wait_for_starts(futures: list, interrupted: Callable[[], bool] | None) -> None:
    """Return once every start succeeded; raise the first failure, or
    KeyboardInterrupt once ``interrupted()`` is true."""
    # The first failure ends the start: the starts still queued are
    # cancelled and those in progress aborted (by the caller), so a silent
    # host costs one HANDSHAKE_TIMEOUT, not one per MAX_PARALLEL_STARTS
    # workers. Waited in slices: see numap._waits.
    waiting = set(futures)
    while waiting:
        done, waiting = wait(
            waiting, timeout=_waits.SLICE_SECONDS, return_when=FIRST_EXCEPTION
        )
        for future in done:
            error = future.exception()
            if error is not None:
                raise error
        if interrupted is not None and interrupted():
            raise KeyboardInterrupt


def _submit(starter: ThreadPoolExecutor, start_one: Callable, worker: tuple) -> Any:
    try:
        return starter.submit(start_one, *worker)
    except RuntimeError as error:  # no thread to run the start in
        raise NuMapError(
            f"cannot start a thread to start the remote workers ({error}); "
            "free threads or memory, then start the map again"
        ) from error


class _Starts:
    """The remote workers one open_remote_channels starts, so that a failed
    or interrupted start can end them all together.

    Once ``abandon`` was called, every channel is closed: those started
    by then by ``abandon``, those still starting by their own start, which
    it aborts, and those that finish starting later by ``start_one``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: list[RemoteChannel] = []
        self._abandoned = False

    def start_one(self, address: HostAddress, index: int) -> RemoteChannel:
        """Start one remote worker; NuMapError if the start was abandoned."""
        channel = RemoteChannel(address, index, registered=self._register)
        with self._lock:
            abandoned = self._abandoned
        if abandoned:
            channel.close()
            raise NuMapError("the start of the remote workers was abandoned")
        return channel

    def _register(self, channel: RemoteChannel) -> None:
        with self._lock:
            self._channels.append(channel)
            abandoned = self._abandoned
        if abandoned:
            raise NuMapError("the start of the remote workers was abandoned")

    def abandon(self, wait: bool) -> None:
        """Abort the starts in progress, close the channels started.

        wait: return once those are closed (else they close in the
        background; the aborted starts close theirs in their own threads).
        """
        with self._lock:
            self._abandoned = True
            channels = list(self._channels)
        for channel in channels:
            channel.abort()
        _close_together([channel for channel in channels if channel.started], wait)


def _close_together(channels: list[RemoteChannel], wait: bool) -> None:
    # Each close waits for its host, up to STOP_GRACE_WAIT + STOP_TIMEOUT
    # when it froze: side by side, a frozen host costs that once, not once
    # per worker.
    _waits.side_by_side(
        (("numap-remote-close", channel.close) for channel in channels), wait
    )
