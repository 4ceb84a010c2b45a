"""RemoteChannel against real rpyc_classic servers on 127.0.0.1.

These tests drive remote workers with numap._protocol frames directly, below
the NuMap engine: transport, concurrency, failures and clean-up of one
channel. NuMap-level behaviour is in test_remote_numap.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from typing import Any

import psutil
import pytest
import remote_functions
import rpyc
from hypothesis import given, settings
from hypothesis import strategies as st
from numap import HostLostError, HostUnreachableError, NuMapError
from numap import _protocol as protocol
from numap._channel import ChannelLost
from numap._hosts import DEFAULT_PORT, DEFAULT_SSL_PORT, parse_host_spec
from numap._remote import RemoteChannel, open_remote_channels
from remote_servers import (
    REMOTE_ONLY_MODULE,
    RpycServer,
    certificates,
    client_ssl,
    remote_only_rpyc_server,
    rpyc_server,
    shared_rpyc_server,
    ssl_rpyc_server,
    wait_until,
)

# Fixtures from remote_servers, named here so that pytest finds them.
FIXTURES = (
    certificates,
    remote_only_rpyc_server,
    rpyc_server,
    shared_rpyc_server,
    ssl_rpyc_server,
)


def run_batch(channel: Any, func: Any, items: list, args: tuple = ()) -> tuple:
    """Send a task and one batch through ``channel``; (values, errors)."""
    channel.send(
        protocol.encode_task(0, protocol.dumps([(func, args, {})], prefer_dill=True))
    )
    channel.send(protocol.encode_batch(1, 0, 0, len(items), protocol.dumps(items)))
    batch_id, _, payload = protocol.decode_result(channel.recv())
    assert batch_id == 1
    return protocol.loads(payload)


@pytest.fixture
def channel(shared_rpyc_server: RpycServer):
    (opened,) = open_remote_channels([(shared_rpyc_server.spec, 1)])
    yield opened
    opened.close()


# ----------------------------------------------------------------------------
# Host specifications and SSL options


@pytest.mark.timeout(5)
def test_host_spec_defaults_to_the_classic_server_ports():
    assert parse_host_spec("127.0.0.1").port == DEFAULT_PORT == 18812
    assert parse_host_spec("127.0.0.1", {"certfile": "x"}).port == DEFAULT_SSL_PORT
    address = parse_host_spec(" 127.0.0.1:6666 ")
    assert (address.host, address.port, str(address)) == (
        "127.0.0.1",
        6666,
        "127.0.0.1:6666",
    )
    assert parse_host_spec("[::1]:7000").host == "::1"
    assert parse_host_spec("[::1]:7000").port == 7000


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    "spec", ["", "  ", ":18812", "host:port", "host:0", "h:99999", "[::1]junk", "[::1"]
)
def test_bad_host_specs_are_refused_by_name(spec):
    with pytest.raises(ValueError, match="worker_remote"):
        parse_host_spec(spec)


@pytest.mark.timeout(5)
def test_bad_ssl_options_are_refused_before_connecting(tmp_path):
    with pytest.raises(ValueError, match="unknown keys"):
        open_remote_channels([("127.0.0.1:1", 1)], ssl={"certfile": None, "k": 1})
    with pytest.raises(ValueError, match="not in worker_remote"):
        open_remote_channels([("127.0.0.1:1", 1)], ssl={"127.0.0.1:2": {}})
    with pytest.raises(TypeError, match=r"worker_remote_ssl\['127.0.0.1:1'\]"):
        open_remote_channels([("127.0.0.1:1", 1)], ssl={"127.0.0.1:1": "x"})
    with pytest.raises(ValueError, match="is not a file"):
        open_remote_channels(
            [("127.0.0.1:1", 1)], ssl={"certfile": str(tmp_path / "missing")}
        )
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    with pytest.raises(ValueError, match="no certfile"):
        open_remote_channels([("127.0.0.1:1", 1)], ssl={"keyfile": str(cert)})
    with pytest.raises(TypeError, match="worker_remote_ssl"):
        open_remote_channels([("127.0.0.1:1", 1)], ssl=["keyfile"])


# ----------------------------------------------------------------------------
# Transport


@pytest.mark.timeout(20)
def test_batch_runs_remotely_and_comes_back_as_plain_values(channel):
    values, errors = run_batch(channel, remote_functions.square, [1, 2, 3])
    assert values == [1, 4, 9]
    assert errors == {}
    assert type(values) is list  # a value, not an rpyc netref
    assert not isinstance(values, rpyc.BaseNetref)


def made_elsewhere(source: str, name: str) -> Any:
    """A function defined in a module the host cannot import (nor can we)."""
    namespace: dict[str, Any] = {"__name__": "made_in_a_test"}
    exec(source, namespace)
    return namespace[name]


@pytest.mark.timeout(20)
def test_closures_travel_by_value(channel):
    make_adder = made_elsewhere(
        "def make_adder(offset):\n"
        "    def add_offset(x):\n"
        "        return x + offset\n"
        "    return add_offset\n",
        "make_adder",
    )
    values, errors = run_batch(channel, make_adder(40), [1, 2])
    assert (values, errors) == ([41, 42], {})


@pytest.mark.timeout(20)
def test_each_channel_is_its_own_process_on_the_host(shared_rpyc_server):
    channels = open_remote_channels([(shared_rpyc_server.spec, 3)])
    try:
        pids = {run_batch(c, remote_functions.worker_pid, [0])[0][0] for c in channels}
        assert len(pids) == 3
        assert shared_rpyc_server.pid not in pids
        assert pids <= set(shared_rpyc_server.worker_pids())
        labels = [c.label for c in channels]
        assert labels == [
            f"host {shared_rpyc_server.spec} worker {i}" for i in range(3)
        ]
        assert all(c.lost_error is HostLostError for c in channels)
        assert not any(c.replaceable for c in channels)
    finally:
        for c in channels:
            c.close()


@pytest.mark.timeout(20)
def test_recv_waiting_does_not_block_send(channel):
    # The parent's reader waits in recv before anything was sent; the send
    # must still get through (one connection per direction).
    channel.send(
        protocol.encode_task(
            0, protocol.dumps([(remote_functions.square, (), {})], prefer_dill=True)
        )
    )
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(channel.recv()))
    reader.start()
    assert not wait_until(lambda: bool(received), 0.3)
    channel.send(protocol.encode_batch(5, 0, 0, 2, protocol.dumps([3, 4])))
    reader.join(10)
    assert not reader.is_alive()
    batch_id, _, payload = protocol.decode_result(received[0])
    assert (batch_id, protocol.loads(payload)) == (5, ([9, 16], {}))


@pytest.mark.timeout(30)
def test_large_frames_cross_intact(channel):
    blob = os.urandom(8 * 1024 * 1024)
    values, errors = run_batch(channel, remote_functions.add, [blob], (b"!",))
    assert errors == {}
    assert values[0] == blob + b"!"


@pytest.mark.timeout(60)
@settings(max_examples=10)
@given(
    batches=st.lists(
        st.lists(st.integers(-(2**70), 2**70) | st.text(max_size=20), max_size=30),
        min_size=1,
        max_size=6,
    )
)
def test_pipelined_batches_come_back_complete_and_in_order(shared_rpyc_server, batches):
    # Property: however batches are sized, sending them all before reading
    # any (as the engine does when its buffer allows) yields one result
    # frame per batch, in order, each with the right values.
    (channel,) = open_remote_channels([(shared_rpyc_server.spec, 1)])
    try:
        channel.send(
            protocol.encode_task(
                0, protocol.dumps([(remote_functions.double, (), {})], prefer_dill=True)
            )
        )
        for batch_id, items in enumerate(batches):
            frame = protocol.dumps(items)
            channel.send(protocol.encode_batch(batch_id, 0, 0, len(items), frame))
        for batch_id, items in enumerate(batches):
            got_id, _, payload = protocol.decode_result(channel.recv())
            values, errors = protocol.loads(payload)
            assert got_id == batch_id
            assert values == [item + item for item in items]
            assert errors == {}
    finally:
        channel.close()


@pytest.mark.timeout(20)
def test_imports_attached_to_a_function_run_on_the_host(remote_only_rpyc_server):
    # The function's module cannot be imported here: numap.imports(...,
    # forgive=True) would skip it in the parent. What the function gets on
    # the host proves the host applied the imports.
    function = made_elsewhere(
        f"def call(x):\n    return {REMOTE_ONLY_MODULE}.triple(x)\n", "call"
    )
    function.__numap_imports__ = ((REMOTE_ONLY_MODULE,), False)
    with pytest.raises(ImportError):
        __import__(REMOTE_ONLY_MODULE)
    (channel,) = open_remote_channels([(remote_only_rpyc_server.spec, 1)])
    try:
        assert run_batch(channel, function, [1, 2]) == ([3, 6], {})
    finally:
        channel.close()


@pytest.mark.timeout(20)
def test_prints_in_the_remote_function_do_not_corrupt_frames(channel):
    assert run_batch(channel, remote_functions.chatty, [1, 2]) == ([2, 3], {})


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "function",
    [
        remote_functions.child_echoes,
        remote_functions.writes_to_descriptor_1,
        remote_functions.child_reads_stdin,
    ],
)
def test_a_remote_functions_children_and_descriptors_stay_off_the_frames(
    channel, function
):
    # Descriptors 0 and 1 carried the frames: a child's echo became a
    # frame length of exabytes, and the map waited for it forever.
    assert run_batch(channel, function, [1, 2]) == ([2, 3], {})


@pytest.mark.timeout(20)
def test_remote_exception_carries_the_remote_traceback(channel):
    values, errors = run_batch(channel, remote_functions.fail_on_three, [2, 3, 4])
    assert values[0] == 2 and values[2] == 4
    error = errors[1]
    assert isinstance(error, ValueError)
    notes = "\n".join(getattr(error, "__notes__", []))
    assert "item 3 is not welcome here" in str(error)
    assert "remote_functions.py" in notes and "fail_on_three" in notes


# ----------------------------------------------------------------------------
# Failures


@pytest.mark.timeout(15)
def test_unreachable_host_names_host_and_port():
    from remote_servers import free_port

    port = free_port()
    with pytest.raises(HostUnreachableError, match=f"127.0.0.1:{port}") as caught:
        open_remote_channels([(f"127.0.0.1:{port}", 2)])
    assert isinstance(caught.value, ConnectionError)


@pytest.mark.timeout(15)
def test_host_that_accepts_but_never_answers_fails_in_time(monkeypatch):
    import socket

    import numap._remote

    monkeypatch.setattr(numap._remote, "HANDSHAKE_TIMEOUT", 1.0)
    with socket.socket() as silent:  # listens, never accepts nor answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        spec = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(HostUnreachableError, match=f"{spec}.*no answer in time"):
            open_remote_channels([(spec, 1)])


@pytest.mark.timeout(20)
def test_a_silent_host_ends_the_start_at_its_first_failure(monkeypatch):
    # Workers start MAX_PARALLEL_STARTS at a time. Once one start fails, the
    # starts still queued are cancelled: before, each round of starts
    # waited out its own timeout (15 s per 16 workers at the defaults).
    import socket

    import numap._remote

    monkeypatch.setattr(numap._remote, "HANDSHAKE_TIMEOUT", 1.0)
    monkeypatch.setattr(numap._remote, "MAX_PARALLEL_STARTS", 2)
    accepted = []
    with socket.socket() as silent:  # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        silent.settimeout(0.2)

        def accept_all():
            while True:
                try:
                    accepted.append(silent.accept()[0])
                except TimeoutError:
                    continue
                except OSError:  # closed: the test is over
                    return

        acceptor = threading.Thread(target=accept_all, daemon=True)
        acceptor.start()
        spec = f"127.0.0.1:{silent.getsockname()[1]}"
        try:
            with pytest.raises(HostUnreachableError, match="no answer in time"):
                open_remote_channels([(spec, 8)])
            # The first round's 2 starts, and at most one more each that a
            # starter thread took before the cancel: not all 8.
            assert 2 <= len(accepted) <= 4
        finally:
            for connection in accepted:
                connection.close()
    acceptor.join(5)


@pytest.mark.timeout(20)
def test_unreachable_second_host_closes_workers_already_started(rpyc_server):
    from remote_servers import free_port

    with pytest.raises(HostUnreachableError):
        open_remote_channels([(rpyc_server.spec, 2), (f"127.0.0.1:{free_port()}", 1)])
    assert wait_until(lambda: rpyc_server.worker_pids() == [], 5)


@pytest.mark.timeout(20)
def test_server_killed_while_recv_waits_raises_channel_lost(rpyc_server):
    (channel,) = open_remote_channels([(rpyc_server.spec, 1)])
    try:
        errors: list[BaseException] = []

        def wait_for_frame():
            try:
                channel.recv()
            except BaseException as error:
                errors.append(error)

        reader = threading.Thread(target=wait_for_frame)
        reader.start()
        rpyc_server.kill()
        reader.join(10)
        assert not reader.is_alive()
        assert isinstance(errors[0], ChannelLost)
        assert f"host {rpyc_server.spec}" in errors[0].reason
        with pytest.raises(ChannelLost, match=rpyc_server.spec):
            channel.send(protocol.encode_stop())
    finally:
        channel.close()


@pytest.mark.timeout(20)
def test_worker_killed_on_the_host_raises_channel_lost_with_cause(channel):
    pid = run_batch(channel, remote_functions.worker_pid, [0])[0][0]
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ChannelLost, match="killed by signal 9"):
        channel.recv()


@pytest.mark.timeout(30)
def test_a_dropped_feed_connection_delivers_the_running_call_then_says_why(
    rpyc_server, tmp_path
):
    # The feed connection ends (a middlebox dropped it) while a call runs:
    # the host stops the worker, whose call still finishes, and so does
    # the batch queued behind it (within STOP_GRACE); their results come,
    # then an end that names the cause, not just "stopped".
    (channel,) = open_remote_channels([(rpyc_server.spec, 1)])
    try:
        marker = tmp_path / "call-began"
        task = (remote_functions.announce_then_sleep, (str(marker), 0.5), {})
        channel.send(protocol.encode_task(0, protocol.dumps([task])))
        channel.send(protocol.encode_batch(1, 0, 0, 1, protocol.dumps(["x"])))
        channel.send(protocol.encode_batch(2, 0, 1, 1, protocol.dumps(["y"])))
        assert wait_until(marker.exists, 10)
        channel._feed_stream.sock.shutdown(socket.SHUT_WR)
        batch_id, _, payload = protocol.decode_result(channel.recv())
        assert (batch_id, protocol.loads(payload)) == (1, (["x"], {}))
        batch_id, _, payload = protocol.decode_result(channel.recv())
        assert (batch_id, protocol.loads(payload)) == (2, (["y"], {}))
        with pytest.raises(ChannelLost, match="feed connection from the parent ended"):
            channel.recv()
        assert wait_until(lambda: rpyc_server.worker_pids() == [], 10)
    finally:
        channel.close()


@pytest.mark.timeout(20)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")
def test_busy_worker_dies_with_its_server(rpyc_server, tmp_path):
    # Only the server process is killed (not its process group), while its
    # worker is inside a 60 s call: the worker must not outlive it.
    (channel,) = open_remote_channels([(rpyc_server.spec, 1)])
    try:
        (worker,) = rpyc_server.worker_pids()
        marker = tmp_path / "call-began"
        task = (remote_functions.announce_then_sleep, (str(marker), 60), {})
        channel.send(protocol.encode_task(0, protocol.dumps([task])))
        channel.send(protocol.encode_batch(1, 0, 0, 1, protocol.dumps(["x"])))
        assert wait_until(marker.exists, 10)
        os.kill(rpyc_server.pid, signal.SIGKILL)
        rpyc_server.process.wait()

        def worker_gone():
            try:
                return psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True

        assert wait_until(worker_gone, 10)
        with pytest.raises(ChannelLost):
            channel.recv()
    finally:
        channel.close()


@pytest.mark.timeout(20)
def test_close_stops_and_reaps_the_remote_worker(rpyc_server):
    channels = open_remote_channels([(rpyc_server.spec, 2)])
    assert wait_until(lambda: len(rpyc_server.worker_pids()) == 2, 5)
    for channel in channels:
        channel.close()
        channel.close()  # idempotent
    assert rpyc_server.worker_pids() == []  # reaped: no zombie either
    with pytest.raises(ChannelLost, match="closed"):
        channels[0].recv()


@pytest.mark.timeout(30)
def test_dropped_connection_leaves_no_worker_on_the_host(rpyc_server):
    # A parent that dies without closing its channels: the host's agent
    # notices the closed connections and ends the workers.
    script = textwrap.dedent(
        f"""
        import sys, time
        from numap._remote import open_remote_channels
        channels = open_remote_channels([({rpyc_server.spec!r}, 2)])
        print("ready", flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout.readline().strip() == "ready"
        assert wait_until(lambda: len(rpyc_server.worker_pids()) == 2, 5)
        parent.kill()
        parent.wait()
        assert wait_until(lambda: rpyc_server.worker_pids() == [], 10)
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.timeout(20)
def test_worker_that_cannot_start_fails_with_its_stderr(rpyc_server, monkeypatch):
    import numap._remote

    monkeypatch.setattr(numap._remote, "_protocol_source", lambda: b"this is not(")
    with pytest.raises(NuMapError, match="did not start.*SyntaxError"):
        open_remote_channels([(rpyc_server.spec, 2)])
    assert wait_until(lambda: rpyc_server.worker_pids() == [], 5)


@pytest.mark.timeout(20)
def test_forking_server_is_refused_with_advice(tmp_path):
    server = RpycServer(tmp_path, mode="forking")
    try:
        with pytest.raises(NuMapError, match="threaded"):
            open_remote_channels([(server.spec, 1)])
    finally:
        server.stop()


# ----------------------------------------------------------------------------
# SSL


@pytest.mark.timeout(20)
def test_ssl_host_with_client_certificate(ssl_rpyc_server, certificates):
    options = client_ssl(certificates)
    (channel,) = open_remote_channels([(ssl_rpyc_server.spec, 1)], ssl=options)
    try:
        assert run_batch(channel, remote_functions.square, [7]) == ([49], {})
    finally:
        channel.close()


@pytest.mark.timeout(20)
def test_ssl_options_per_host(ssl_rpyc_server, shared_rpyc_server, certificates):
    options = {ssl_rpyc_server.spec: client_ssl(certificates)}
    channels = open_remote_channels(
        [(ssl_rpyc_server.spec, 1), (shared_rpyc_server.spec, 1)], ssl=options
    )
    try:
        for channel in channels:
            assert run_batch(channel, remote_functions.square, [3]) == ([9], {})
    finally:
        for channel in channels:
            channel.close()


@pytest.mark.timeout(20)
def test_ssl_host_refuses_clients_without_its_trust(
    ssl_rpyc_server, certificates, tmp_path
):
    from remote_servers import make_certificates

    with pytest.raises(HostUnreachableError, match=ssl_rpyc_server.spec):
        open_remote_channels([(ssl_rpyc_server.spec, 1)])  # no SSL at all
    with pytest.raises(HostUnreachableError, match="SSL"):
        open_remote_channels(  # no client certificate
            [(ssl_rpyc_server.spec, 1)], ssl={"ca_certs": certificates["ca"]}
        )
    strangers = make_certificates(tmp_path / "other")
    with pytest.raises(HostUnreachableError, match="SSL"):
        open_remote_channels(  # a server certificate from another CA
            [(ssl_rpyc_server.spec, 1)], ssl=client_ssl(strangers)
        )


@pytest.mark.timeout(10)
def test_remote_channel_is_a_channel():
    from numap._channel import Channel

    assert issubclass(RemoteChannel, Channel)
