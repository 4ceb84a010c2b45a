"""A remote worker stuck in its function while its input pipe is full.

The host's agent then waits for room in the worker's stdin; that wait must
not hide the parent's end from it: after ``close`` (``stop``), or once the
parent process is killed, the worker is ended on the host, not left there
for ever. Real rpyc_classic servers on 127.0.0.1, real processes.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import pytest
import remote_functions
from numap import _protocol as protocol
from numap._channel import ChannelLost
from numap._remote import open_remote_channels
from remote_servers import (
    certificates,
    client_ssl,
    env_with_path,
    rpyc_server,
    ssl_rpyc_server,
    wait_until,
)

# Fixtures from remote_servers, named here so that pytest finds them.
FIXTURES = (certificates, rpyc_server, ssl_rpyc_server)

ITEM = b"x" * (1 << 20)  # one item is far more than a pipe holds (64 KiB)
STUCK_FOR = 600.0  # seconds the function sleeps: longer than any test


def fill_input(channel: Any, frames: int) -> threading.Thread:
    """Make the worker sleep in its function, then queue ``frames`` batches
    of one 1 MiB item behind it, in a thread (the sends may block once the
    host's buffers and the worker's pipe are full)."""
    task = [(remote_functions.sleep_then_return, (STUCK_FOR,), {})]
    channel.send(protocol.encode_task(0, protocol.dumps(task)))

    def send_all() -> None:
        try:
            for batch_id in range(1, frames + 1):
                batch = protocol.dumps([ITEM])
                channel.send(protocol.encode_batch(batch_id, 0, 0, 1, batch))
        except ChannelLost:  # close() fails a send that waits for room
            pass

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    return sender


def stuck_worker_is_ended_by_close(server: Any, ssl: Any = None) -> None:
    (channel,) = open_remote_channels([(server.spec, 1)], ssl=ssl)
    before = set(server.worker_pids())
    assert before
    sender = fill_input(channel, frames=6)
    # The first batch is in the function; the rest fill the worker's pipe
    # (the host's agent then waits for room) and the sockets' buffers.
    sender.join(2.0)
    channel.close()
    sender.join(10)
    assert not sender.is_alive()
    assert wait_until(lambda: not before & set(server.worker_pids()), 10)


@pytest.mark.timeout(30)
def test_close_ends_a_stuck_worker_whose_input_pipe_is_full(rpyc_server):
    stuck_worker_is_ended_by_close(rpyc_server)
    assert rpyc_server.worker_pids() == []


@pytest.mark.timeout(30)
def test_close_ends_a_stuck_worker_with_full_input_over_ssl(
    ssl_rpyc_server, certificates
):
    stuck_worker_is_ended_by_close(ssl_rpyc_server, client_ssl(certificates))


@pytest.mark.timeout(40)
def test_killed_parent_leaves_no_stuck_worker_with_full_input(rpyc_server):
    script = textwrap.dedent(
        f"""
        import remote_functions
        from numap import NuMap
        items = (b"x" * (1 << 20) for _ in range(50))
        numap = NuMap(remote_functions.sleep_then_return, items, args=(600.0,),
                      worker_num=0, worker_remote=[({rpyc_server.spec!r}, 1)],
                      buffer=6, stride=1)
        numap.start()
        print("started", flush=True)
        for _ in numap:
            pass
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_with_path(),
    )
    try:
        assert parent.stdout.readline().strip() == "started"
        assert len(rpyc_server.worker_pids()) == 1
        # Let the feeder fill the worker's pipe and the host's buffers.
        assert not wait_until(lambda: parent.poll() is not None, 3)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert wait_until(lambda: rpyc_server.worker_pids() == [], 10)
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.timeout(30)
def test_only_the_drain_connections_end_asks_for_the_workers_end(rpyc_server):
    # The host ends a worker when the parent's drain connection ends (the
    # parent never writes there once frames stream). Bytes that arrive
    # there all the same (say, a late rpyc message) must not end it.
    (channel,) = open_remote_channels([(rpyc_server.spec, 1)])
    try:
        workers = rpyc_server.worker_pids()
        assert run_square(channel, 1, [1, 2]) == [1, 4]
        drain = channel._drain_stream.sock
        socket.socket.send(drain, b"stray bytes")
        # Several of the host's looks at the drain connection (every 0.25 s).
        time.sleep(1.0)
        assert run_square(channel, 2, [3]) == [9]
        assert rpyc_server.worker_pids() == workers
    finally:
        channel.close()
    assert wait_until(lambda: rpyc_server.worker_pids() == [], 10)


def run_square(channel: Any, batch_id: int, items: list) -> list:
    task = [(remote_functions.square, (), {})]
    channel.send(protocol.encode_task(batch_id, protocol.dumps(task)))
    frame = protocol.dumps(items)
    channel.send(protocol.encode_batch(batch_id, batch_id, 0, len(items), frame))
    answered, _, payload = protocol.decode_result(channel.recv())
    assert answered == batch_id
    values, errors = protocol.loads(payload)
    assert not errors
    return list(values)
