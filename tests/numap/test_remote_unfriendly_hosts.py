"""Remote hosts that do not behave: other services on the port, hosts that
freeze while workers start, servers without a stderr, Ctrl-C during start.

Against real listeners and real rpyc_classic servers on 127.0.0.1 only.
The timeouts some tests shorten are module constants of numap._remote.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import remote_functions
from numap import HostLostError, HostUnreachableError, NuMap
from numap._hosts import HostAddress, parse_host_spec
from numap._remote import open_remote_channels
from remote_servers import (
    LOOPBACK,
    RPYC_CLASSIC,
    RpycServer,
    env_with_path,
    free_port,
    rpyc_server,
    wait_until,
)

FIXTURES = (rpyc_server,)  # named here so that pytest finds it


# ----------------------------------------------------------------------------
# Other services on the port


class Listener:
    """A TCP service on 127.0.0.1 that is no rpyc server.

    behaviour: "banner" sends an SSH banner on accept, then waits (as sshd
    does); "redis" answers every read with an error line (as Redis does);
    "partial" sends the start of an rpyc message (announcing 16 bytes that
    never come), then waits.
    """

    ANSWERS = {
        "banner": b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n",
        "partial": b"\x00\x00\x00\x10\x00",
    }

    def __init__(self, behaviour: str) -> None:
        self.behaviour = behaviour
        self.server = socket.create_server((LOOPBACK, 0))
        self.spec = f"{LOOPBACK}:{self.server.getsockname()[1]}"
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:  # closed: the test is over
                return
            self.connections.append(connection)
            if self.behaviour == "redis":
                threading.Thread(
                    target=self._answer_errors, args=(connection,), daemon=True
                ).start()
            else:
                connection.sendall(self.ANSWERS[self.behaviour])

    @staticmethod
    def _answer_errors(connection: socket.socket) -> None:
        try:
            while connection.recv(4096):
                connection.sendall(b"-ERR unknown command\r\n")
        except OSError:
            pass

    def close(self) -> None:
        # shutdown, not only close: it wakes the accept() of the thread.
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()
        for connection in self.connections:
            connection.close()
        self.thread.join(5)


@pytest.fixture
def listener(request: pytest.FixtureRequest) -> Iterator[Listener]:
    service = Listener(request.param)
    yield service
    service.close()


def square(x: int) -> int:
    return x * x


@pytest.mark.timeout(20)
@pytest.mark.parametrize("listener", ["banner", "redis"], indirect=True)
def test_a_service_that_answers_no_rpyc_fails_start_at_once(listener):
    # Before, its first bytes were read as the length of a huge rpyc
    # message, and the start waited for the rest for ever.
    began = time.monotonic()
    numap = NuMap(square, range(3), worker_num=0, worker_remote=[(listener.spec, 2)])
    with pytest.raises(HostUnreachableError, match=f"{listener.spec}.*not rpyc"):
        numap.start()
    assert time.monotonic() - began < 5


@pytest.mark.timeout(20)
@pytest.mark.parametrize("listener", ["partial"], indirect=True)
def test_a_message_cut_short_fails_start_within_the_handshake_timeout(
    listener, monkeypatch
):
    import numap._remote

    monkeypatch.setattr(numap._remote, "HANDSHAKE_TIMEOUT", 1.0)
    began = time.monotonic()
    with pytest.raises(HostUnreachableError, match=f"{listener.spec}.*no answer"):
        open_remote_channels([(listener.spec, 2)])
    assert time.monotonic() - began < 5


# An rpyc server on 127.0.0.1, port argv[1], whose service is not the
# classic one.
NOT_CLASSIC_SERVER = """
import sys
from rpyc import Service
from rpyc.utils.server import ThreadedServer

class NotClassic(Service):
    def exposed_hello(self):
        return "hi"

ThreadedServer(NotClassic, hostname="127.0.0.1", port=int(sys.argv[1])).start()
"""


@pytest.mark.timeout(30)
def test_an_rpyc_service_that_is_not_classic_is_named_as_such():
    # Before, start() raised the host's bare AttributeError.
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", NOT_CLASSIC_SERVER, str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    spec = f"{LOOPBACK}:{port}"
    try:
        assert wait_until(lambda: _listens(port), 15), "the server did not listen"
        with pytest.raises(HostUnreachableError, match=f"{spec}.*not the classic"):
            open_remote_channels([(spec, 1)])
    finally:
        server.kill()
        server.wait()


# ----------------------------------------------------------------------------
# Ctrl-C while remote workers start

# Starts 2 remote workers on each host of argv[1] (specs joined by commas)
# and sends itself SIGINT after 1 s; prints how long the start took to
# raise, then exits. argv[2]: "numap" (a NuMap's start on the main thread,
# which holds the Ctrl-C back) or "channels" (the channels alone).
CTRL_C_DURING_START = """
import os, signal, sys, threading, time
from numap import NuMap
from numap._remote import open_remote_channels

def square(x):
    return x * x

hosts = [(spec, 2) for spec in sys.argv[1].split(",")]
threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
began = time.monotonic()
try:
    if sys.argv[2] == "numap":
        NuMap(square, range(3), worker_num=0, worker_remote=hosts).start()
    else:
        open_remote_channels(hosts)
except KeyboardInterrupt:
    print(f"interrupted after {time.monotonic() - began:.1f} s", flush=True)
else:
    print("started", flush=True)
"""


def run_interrupted_start(specs: list[str], how: str) -> float:
    """Run CTRL_C_DURING_START in a fresh interpreter; how long it ran, its
    exit included. Fails the test if the start was not interrupted within
    3 s of its Ctrl-C."""
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", CTRL_C_DURING_START, ",".join(specs), how],
        capture_output=True,
        text=True,
        timeout=40,
        env=env_with_path(),
    )
    seconds = time.monotonic() - began
    output = done.stdout + done.stderr
    interrupted = re.search(r"interrupted after ([0-9.]+) s", output)
    assert interrupted, output
    assert float(interrupted.group(1)) < 1.0 + 3.0, output
    return seconds


@pytest.mark.timeout(60)
@pytest.mark.parametrize("listener", ["partial"], indirect=True)
@pytest.mark.parametrize("how", ["channels", "numap"])
def test_ctrl_c_ends_a_blocked_start_at_once(listener, how):
    # The start waits for an answer it gets only after HANDSHAKE_TIMEOUT
    # (15 s). Before, a Ctrl-C waited for the start threads: for ever.
    seconds = run_interrupted_start([listener.spec], how)
    assert seconds < 8  # the interpreter's exit waits for nothing either


# A server whose worker processes sleep before they start, once a marker
# file exists: a start then takes that long, as on a host that froze.
SLOW_START = """
import os, time
_marker = os.path.join(os.path.dirname(os.path.abspath(__file__)), "slow_start")
if os.path.exists(_marker):
    with open(_marker) as _file:
        time.sleep(float(_file.read()))
"""


@pytest.fixture
def slow_start_server(tmp_path: Path) -> Iterator[tuple[RpycServer, Path]]:
    """An rpyc_classic server and the marker file (write the seconds its
    workers sleep before they start into it)."""
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(SLOW_START)
    server = RpycServer(tmp_path, python_path=(folder,))
    yield server, folder / "slow_start"
    server.stop()


@pytest.mark.timeout(60)
def test_ctrl_c_while_workers_start_leaves_none_on_the_host(slow_start_server):
    server, marker = slow_start_server
    marker.write_text("6")
    seconds = run_interrupted_start([server.spec], "numap")
    assert seconds < 8
    # The aborted starts closed their connections: the host ends the
    # workers that were starting.
    assert wait_until(lambda: server.worker_pids() == [], 15), server.worker_pids()


# ----------------------------------------------------------------------------
# A host that freezes while workers start


@pytest.mark.timeout(30)
def test_a_host_that_freezes_while_workers_start_is_unreachable(
    slow_start_server, monkeypatch
):
    # Before, this failed after WORKER_START_TIMEOUT (then 60 s) with a
    # plain NuMapError, not as the host being unreachable.
    import numap._remote

    monkeypatch.setattr(numap._remote, "WORKER_START_TIMEOUT", 3.0)
    server, marker = slow_start_server
    marker.write_text("30")

    def freeze_once_a_worker_starts() -> None:
        if wait_until(lambda: server.worker_pids() != [], 10):
            os.killpg(server.pid, signal.SIGSTOP)

    freezer = threading.Thread(target=freeze_once_a_worker_starts, daemon=True)
    freezer.start()
    began = time.monotonic()
    try:
        with pytest.raises(HostUnreachableError, match=f"{server.spec}.*stopped"):
            open_remote_channels([(server.spec, 2)])
        assert time.monotonic() - began < 8
    finally:
        freezer.join(15)
        os.killpg(server.pid, signal.SIGCONT)


# ----------------------------------------------------------------------------
# A host that freezes while its workers run


@pytest.mark.timeout(60)
def test_stopping_a_frozen_hosts_workers_costs_one_bound_not_one_each(
    rpyc_server, monkeypatch
):
    # Each remote worker's close waits for its host (STOP_GRACE_WAIT, then
    # STOP_TIMEOUT). Before, the workers were closed in turn: a frozen host
    # cost that once per worker (8 s each at the defaults).
    import numap._remote

    monkeypatch.setattr(numap._remote, "STOP_GRACE_WAIT", 1.0)
    monkeypatch.setattr(numap._remote, "STOP_TIMEOUT", 1.0)
    numap = NuMap(
        remote_functions.slow_identity,
        range(100),
        worker_num=0,
        worker_remote=[(rpyc_server.spec, 4)],
        stride=1,
        buffer=8,
    )
    began = 0.0
    try:
        # Left by an exception: the workers are terminated and closed.
        with numap:
            assert numap.next(timeout=20) == 0
            os.killpg(rpyc_server.pid, signal.SIGSTOP)
            began = time.monotonic()
            raise LookupError("leaving while the host is frozen")
    except LookupError:
        seconds = time.monotonic() - began
    finally:
        os.killpg(rpyc_server.pid, signal.SIGCONT)
    assert seconds < 4, f"{seconds:.1f} s: one close takes 2 s, four took 8 s"


# ----------------------------------------------------------------------------
# SSL options


@pytest.mark.timeout(10)
def test_ssl_options_are_checked_by_the_constructor(tmp_path):
    # Before, they were checked only by start(); a misspelled option was
    # taken for a host name, and options without worker_remote were ignored.
    def make(**options: Any) -> NuMap:
        return NuMap(square, [1], worker_num=0, **options)

    host = [(f"{LOOPBACK}:1", 1)]
    with pytest.raises(ValueError, match=r"worker_remote_ssl .*\['keyfil'\]"):
        make(worker_remote=host, worker_remote_ssl={"keyfil": "client.key"})
    missing = str(tmp_path / "missing.crt")
    with pytest.raises(
        ValueError, match=r"worker_remote_ssl\['certfile'\].*not a file"
    ):
        make(worker_remote=host, worker_remote_ssl={"certfile": missing})
    with pytest.raises(TypeError, match=r"worker_remote_ssl\['check_hostname'\]"):
        make(worker_remote=host, worker_remote_ssl={"check_hostname": "no"})
    with pytest.raises(ValueError, match="worker_remote_ssl.*without worker_remote"):
        NuMap(square, [1], worker_num=1, worker_remote_ssl={"certfile": missing})


# ----------------------------------------------------------------------------
# A server whose stderr cannot take the workers' prints


@pytest.fixture(params=["closed", "never read"])
def server_with_unusable_stderr(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[str]:
    """An rpyc_classic server whose stderr is closed (as a daemon's may be:
    ``2>&-``; its sys.stderr is then None) or a pipe nobody reads (it
    fills up); yields its spec."""
    port = free_port()
    command = " ".join(
        [*RPYC_CLASSIC, "--host", LOOPBACK, "--port", str(port), "--quiet"]
    )
    closed = request.param == "closed"
    process = subprocess.Popen(
        ["/bin/sh", "-c", f"exec {command} {'2>&-' if closed else ''}"],
        cwd=tmp_path,
        env=env_with_path(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=None if closed else subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert wait_until(lambda: _listens(port), 15), "the server did not listen"
        yield f"{LOOPBACK}:{port}"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _listens(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=1):
            return True
    except OSError:
        return False


PRINTS_A_LOT = """
import sys

def prints_a_lot(x):
    for _ in range(2000):  # 200 kB: more than a pipe holds
        print("x" * 100, file=sys.stderr)
    return x
"""


def by_value(source: str, name: str) -> Any:
    """The function ``name`` defined by ``source`` in a module of no file
    (the host cannot import it): it travels by value."""
    namespace: dict[str, Any] = {"__name__": "made_in_a_test"}
    exec(source, namespace)
    return namespace[name]


@pytest.mark.timeout(60)
def test_prints_never_block_a_worker_whatever_the_servers_stderr(
    server_with_unusable_stderr,
):
    # Before, the agent's stderr drain died on its first line when the
    # server's stderr was closed (it wrote to None), or waited for a full
    # one: then a worker that printed more than a pipe holds blocked for
    # ever.
    numap = NuMap(
        by_value(PRINTS_A_LOT, "prints_a_lot"),
        range(4),
        worker_num=0,
        worker_remote=[(server_with_unusable_stderr, 2)],
    )
    with numap:  # left by an exception: the workers are terminated
        got = sorted(numap.next(timeout=20) for _ in range(4))
    assert got == [0, 1, 2, 3]


@pytest.mark.timeout(30)
def test_prints_reach_the_servers_stderr(rpyc_server):
    # They go there through a thread of the agent's own (which also keeps
    # a server's stderr that is full from blocking the workers).
    numap = NuMap(
        remote_functions.chatty,
        [7],
        worker_num=0,
        worker_remote=[(rpyc_server.spec, 1)],
    )
    assert list(numap) == [8]
    assert wait_until(
        lambda: "] printing while working on 7" in rpyc_server.log_path.read_text(),
        10,
    )


# ----------------------------------------------------------------------------
# Messages


@pytest.mark.timeout(5)
def test_ipv6_hosts_are_shown_in_brackets():
    assert str(parse_host_spec("[::1]:7000")) == "[::1]:7000"
    assert str(parse_host_spec("::1")) == "[::1]:18812"
    assert str(HostAddress("127.0.0.1", 7000)) == "127.0.0.1:7000"


@pytest.mark.timeout(5)
@pytest.mark.parametrize("spec", ["127.0.0.1:34421:1", "host:1:2", "::1:18812:x"])
def test_more_than_one_colon_outside_brackets_is_refused(spec):
    with pytest.raises(ValueError, match=r"worker_remote.*more than one ':'.*\[::1\]"):
        parse_host_spec(spec)


DIES_WITH_A_LONG_LINE = """
import os, sys

def dies_with_a_long_line(x):
    print("start of the line " + "y" * 1_000_000 + " end of the line", file=sys.stderr)
    sys.stderr.flush()
    os._exit(3)
"""


@pytest.mark.timeout(60)
def test_a_huge_stderr_line_is_cut_in_the_lost_message(rpyc_server):
    numap = NuMap(
        by_value(DIES_WITH_A_LONG_LINE, "dies_with_a_long_line"),
        [1],
        worker_num=0,
        worker_remote=[(rpyc_server.spec, 1)],
    )
    with numap, pytest.raises(HostLostError) as caught:
        numap.next(timeout=30)
    message = str(caught.value)
    assert "exited with code 3" in message
    assert "characters cut]" in message
    assert "end of the line" in message  # the tail of the line is kept
    assert len(message) < 6000
