"""A remote worker stuck in its function while its input pipe is full.

The host's agent then waits for room in the worker's stdin; that wait must
not hide the parent's end from it: after ``close`` (``stop``), or once the
parent process is killed, the worker is ended on the host, not left there
for ever. Real rpyc_classic servers on 127.0.0.1, real processes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
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
