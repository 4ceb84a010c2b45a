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
import os
import socket
import ssl as ssl_module
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from hashlib import sha256
from typing import Any

import rpyc
from rpyc.core.async_ import AsyncResultTimeout
from rpyc.core.channel import Channel as RpycChannel
from rpyc.core.service import ClassicClient
from rpyc.core.stream import SocketStream
from rpyc.utils.factory import connect_channel

from numap import _remote_agent
from numap._channel import Channel, ChannelLost
from numap._errors import HostLostError, HostUnreachableError, NuMapError
from numap._hosts import HostAddress, parse_host_spec

CONNECT_TIMEOUT = 5.0  # seconds to wait for a host to accept a connection
HANDSHAKE_TIMEOUT = 15.0  # seconds a host may take per request while starting
WORKER_START_TIMEOUT = 60.0  # seconds a host may take to start a worker
KEEPALIVE = _remote_agent.KEEPALIVE  # TCP keepalive seconds, as the host uses
STOP_TIMEOUT = 5.0  # seconds to wait for a remote worker to be stopped
# Seconds close() waits for a worker that got the end of its input to be
# stopped (it gets the host's STOP_GRACE to exit) before it asks the host
# to end it at once (the end of its input may be stuck behind frames).
STOP_GRACE_WAIT = _remote_agent.STOP_GRACE + 1.0
CLOSE_TIMEOUT = 2.0  # seconds to wait for rpyc's polite close of a connection
MAX_PARALLEL_STARTS = 16  # remote workers started at the same time
SSL_KEYS = frozenset({"keyfile", "certfile", "ca_certs", "check_hostname"})
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


def _check_ssl_options(options: Mapping[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise TypeError(
            f"{where} must be a dict with keys keyfile, certfile, ca_certs, "
            f"check_hostname; got {type(options).__name__}"
        )
    unknown = set(options) - SSL_KEYS
    if unknown:
        raise ValueError(
            f"{where} has unknown keys {sorted(unknown)}; use only {sorted(SSL_KEYS)}"
        )
    for key in ("keyfile", "certfile", "ca_certs"):
        path = options.get(key)
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"{where}[{key!r}] = {path!r} is not a file")
    if options.get("keyfile") and not options.get("certfile"):
        raise ValueError(f"{where} has a keyfile but no certfile; give both")
    return dict(options)


def _ssl_plan(
    specs: list[str], ssl: Mapping[str, Any] | None
) -> dict[str, dict[str, Any] | None]:
    """The SSL options of each host spec.

    ``ssl`` is None, one dict of options for every host (recognised by its
    keys: keyfile, certfile, ca_certs, check_hostname), or a dict mapping
    host specs, exactly as written in worker_remote, to such dicts.
    """
    if ssl is None:
        return dict.fromkeys(specs)
    if not isinstance(ssl, Mapping):
        raise TypeError(
            "worker_remote_ssl must be a dict of SSL options or a dict "
            f"mapping host specs to such dicts; got {type(ssl).__name__}"
        )
    if set(ssl) & SSL_KEYS:
        options = _check_ssl_options(ssl, "worker_remote_ssl")
        return dict.fromkeys(specs, options)
    strangers = set(ssl) - set(specs)
    if strangers:
        raise ValueError(
            f"worker_remote_ssl names hosts {sorted(strangers)} that are not "
            f"in worker_remote {specs}; give options for listed hosts, or "
            f"one dict with keys {sorted(SSL_KEYS)} for all"
        )
    return {
        spec: None
        if ssl.get(spec) is None
        else _check_ssl_options(ssl[spec], f"worker_remote_ssl[{spec!r}]")
        for spec in specs
    }


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


def connect(address: HostAddress) -> rpyc.Connection:
    """Open one rpyc classic connection; HostUnreachableError if it fails.

    A host that accepts the connection but does not answer as a classic
    server within HANDSHAKE_TIMEOUT fails too, instead of hanging. The
    connection exposes nothing of the parent to the server.
    """
    options = {
        "timeout": CONNECT_TIMEOUT,
        "attempts": 1,
        "nodelay": True,
        "keepalive": KEEPALIVE,
    }
    try:
        if address.ssl:
            stream = SocketStream.ssl_connect(
                address.host, address.port, _ssl_kwargs(address.ssl), **options
            )
        else:
            stream = SocketStream.connect(address.host, address.port, **options)
        # The connect timeout must not stay on the socket: a send that waits
        # for a busy worker's pipe to drain would fail after it.
        stream.sock.settimeout(None)
        # zlib (rpyc's default above 3 kB) costs more than it saves on a LAN:
        # 4x slower on large frames, measured on loopback.
        channel = RpycChannel(stream, compress=False)
        return connect_channel(
            channel, ClassicClient, {"sync_request_timeout": HANDSHAKE_TIMEOUT}
        )
    except (OSError, EOFError) as error:
        # (TimeoutError, which rpyc raises for an unanswered request, is an
        # OSError too.)
        if isinstance(error, TimeoutError):
            detail = "no answer in time"
        elif isinstance(error, ssl_module.SSLError):
            detail = f"SSL {error}"
        else:
            detail = str(error) or type(error).__name__
        raise HostUnreachableError(
            f"cannot reach NuMap remote host {address} ({detail}); check that "
            f"rpyc_classic is running there and listens on port "
            f"{address.port}{' with SSL' if address.ssl else ''}"
        ) from error


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

    def __init__(self, address: HostAddress, index: int) -> None:
        """Connect to ``address`` and start remote worker number ``index``.

        Raises HostUnreachableError if the host cannot be reached, NuMapError
        if the server cannot run the worker.
        """
        self.address = address
        self.label = f"host {address} worker {index}"
        self._state_lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._recv_lock = threading.Lock()
        self._closed = False
        self._broken: str | None = None
        self._feed: rpyc.Connection | None = None
        self._drain: rpyc.Connection | None = None
        self._token: str | None = None
        try:
            self._start_worker()
        except BaseException:
            self.close()
            raise

    def _start_worker(self) -> None:
        self._feed = connect(self.address)
        try:
            agent = _install_agent(self._feed)
            starting = rpyc.async_(agent.start_worker)(
                _WORKER_BOOTSTRAP, _protocol_source(), self._feed.root
            )
            starting.set_expiry(WORKER_START_TIMEOUT)
            self._token = starting.value
            # rpyc.async_ wrappers are weakly cached: keep them referenced.
            self._stop = rpyc.async_(agent.stop_worker)
        except AsyncResultTimeout as error:  # before OSError: it is one
            raise NuMapError(
                f"NuMap remote host {self.address} did not start {self.label} "
                f"in time (within {WORKER_START_TIMEOUT:.0f} s)"
            ) from error
        except (OSError, EOFError) as error:
            raise HostUnreachableError(
                f"NuMap remote host {self.address} dropped the connection "
                f"while starting {self.label}: {error}"
            ) from error
        except Exception as error:
            raise NuMapError(
                f"NuMap remote host {self.address} could not start a worker "
                f"process: {error}"
            ) from error
        self._drain = connect(self.address)
        drain_agent = _install_agent(self._drain)
        if not drain_agent.attach(self._token, self._drain.root):
            raise NuMapError(
                f"NuMap remote host {self.address}: the rpyc_classic server "
                "serves connections in separate processes; run it in its "
                "default threaded mode (rpyc_classic -m threaded)"
            )
        # Started: from now on replies are awaited without limit, since a
        # batch may take longer than any timeout (rpyc's default is 30 s).
        for connection in (self._feed, self._drain):
            connection._config["sync_request_timeout"] = None
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
) -> list[Channel]:
    """Start the remote workers of a NuMap; one Channel per worker.

    worker_remote: ('host' or 'host:port', n) pairs; n worker processes are
    started on each host. ssl: None, a dict of SSL options (keyfile,
    certfile, ca_certs, check_hostname) for every host, or a dict mapping
    host specs to such dicts (hosts not named connect without SSL).
    Raises HostUnreachableError naming host and port when a host cannot be
    reached; no worker is left running then.
    """
    pairs = list(worker_remote)
    ssl_options = _ssl_plan([spec for spec, _ in pairs], ssl)
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
    # Every channel made, also one whose future was lost: a submit that
    # cannot start its thread has queued its work already.
    made: list[RemoteChannel] = []
    made_lock = threading.Lock()

    def start_one(address: HostAddress, index: int) -> RemoteChannel:
        channel = RemoteChannel(address, index)
        with made_lock:
            made.append(channel)
        return channel

    futures: list = []
    try:
        for worker in workers:
            try:
                futures.append(starter.submit(start_one, *worker))
            except RuntimeError as error:  # no thread to run the start in
                raise NuMapError(
                    f"cannot start a thread to start the remote workers "
                    f"({error}); free threads or memory, then start the map again"
                ) from error
        # The first failure ends the start: the starts still queued are
        # cancelled (below), so a silent host costs one HANDSHAKE_TIMEOUT,
        # not one per MAX_PARALLEL_STARTS workers.
        wait(futures, return_when=FIRST_EXCEPTION)
    finally:
        # Also on Ctrl-C: every start ends (bounded by the connect timeout),
        # so that no worker started here is left behind.
        starter.shutdown(wait=True, cancel_futures=True)
        started = [
            f.result() for f in futures if not f.cancelled() and f.exception() is None
        ]
        failures = [
            f.exception() for f in futures if not f.cancelled() and f.exception()
        ]
        if failures or len(started) < len(workers):
            for channel in made:
                channel.close()
    if failures:
        raise failures[0]  # type: ignore[misc]
    return list(started)
