"""dump_item / load_item through real files, FIFOs and sockets.

Writers and readers run in separate processes where that is the point; the
`private_tmp` fixture fails a test that leaves a file or FIFO behind.
"""

import errno
import io
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from papy.util.func import (
    ItemError,
    ItemNotFoundError,
    ItemRefusedError,
    ItemTimeoutError,
    ItemTruncatedError,
    dump_item,
    dump_stream,
    load_item,
)

pytestmark = [
    pytest.mark.usefixtures("private_tmp"),
    pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs"),
]

TYPES = ["file", "fifo", "socket"]
FIFO_HEADER_SIZE = 16  # magic (8 bytes) + item length (8 bytes) before the data


def join_writer_threads(limit=10.0):
    """Wait for this process's dump_item writer threads to finish."""
    deadline = time.monotonic() + limit
    for thread in threading.enumerate():
        if thread.name.startswith("papy-"):
            thread.join(max(0.0, deadline - time.monotonic()))
            assert not thread.is_alive(), f"{thread.name} still running"


# A writer process: dumps a generated item, prints the reference, then either
# waits for its writer threads (a live writer) or exits or dies at once.
WRITER = textwrap.dedent(
    """
    import os, signal, sys, threading
    from papy.util.func import dump_item
    kind, size, then, timeout = sys.argv[1:5]
    size, timeout = int(size), float(timeout)
    item = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    print(dump_item((item,), type=kind, timeout=timeout), flush=True)
    if then == "wait":
        # Until none is left: the connector hands the FIFO to a writer
        # thread that a single enumerate() taken earlier would miss.
        while True:
            papy = [t for t in threading.enumerate() if t.name.startswith("papy-")]
            if not papy:
                break
            for thread in papy:
                thread.join()
    elif then == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    """
)

# A reader process: loads the reference and prints the length and a checksum.
READER = textwrap.dedent(
    """
    import hashlib, sys
    from papy.util.func import load_item
    data = load_item((sys.argv[1],), timeout=float(sys.argv[2]))
    print(len(data), hashlib.sha256(data).hexdigest(), flush=True)
    """
)


def expected_item(size):
    return bytes(range(256)) * (size // 256) + b"z" * (size % 256)


def start_writer(kind, size, then="wait", timeout=20):
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, kind, str(size), then, str(timeout)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        reference = process.stdout.readline().strip()
        assert reference, "writer process printed no reference"
    except BaseException:
        process.kill()
        process.wait()
        raise
    return process, reference


def run_reader(reference, timeout=10):
    return subprocess.run(
        [sys.executable, "-c", READER, reference, str(timeout)],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", TYPES)
def test_writer_process_to_reader_process(kind):
    import hashlib

    size = 3 * 1024 * 1024 + 17  # more than a pipe buffer and a socket buffer
    writer, reference = start_writer(kind, size)
    try:
        reader = run_reader(reference)
        assert reader.returncode == 0, reader.stderr
        digest = hashlib.sha256(expected_item(size)).hexdigest()
        assert reader.stdout.split() == [str(size), digest]
        # The writer's thread finishes once its item is read.
        assert writer.wait(timeout=10) == 0
    finally:
        writer.kill()
        writer.wait()
    if kind != "socket":
        assert not os.path.exists(reference)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", TYPES)
def test_same_process_round_trip_str_and_bytes(kind):
    assert load_item((dump_item(("text é",), type=kind),)) == "text é".encode()
    assert load_item((dump_item((b"\x00\xffbytes",), type=kind),)) == b"\x00\xffbytes"
    assert load_item((dump_item((bytearray(b""),), type=kind),)) == b""
    join_writer_threads()


@pytest.mark.timeout(60)
@settings(max_examples=15)
@given(data=st.binary(max_size=200_000), kind=st.sampled_from(TYPES))
def test_round_trip_property(data, kind):
    reference = dump_item((data,), type=kind, buffer=4096)
    assert isinstance(reference, str)
    assert load_item((reference,), buffer=1000) == data
    join_writer_threads()


@pytest.mark.timeout(10)
def test_file_prefix_suffix_dir_and_remove_false(tmp_path):
    reference = dump_item((b"keep",), prefix="stage1_", suffix=".pickle", dir=tmp_path)
    name = os.path.basename(reference)
    assert os.path.dirname(reference) == str(tmp_path)
    assert name.startswith("stage1_") and name.endswith(".pickle")
    assert load_item((reference,), remove=False) == b"keep"
    assert load_item((reference,)) == b"keep"
    assert not os.path.exists(reference)


@pytest.mark.timeout(10)
def test_default_names_use_type_prefix_in_temp_dir(private_tmp):
    reference = dump_item((b"x",))
    assert os.path.dirname(reference) == str(private_tmp)
    assert os.path.basename(reference).startswith("tmp_papy_file")
    load_item((reference,))
    fifo = dump_item((b"x",), type="fifo", dir=private_tmp)
    assert os.path.basename(fifo).startswith("tmp_papy_fifo")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    load_item((fifo,))
    join_writer_threads()


@pytest.mark.timeout(10)
def test_mmap_of_a_file_survives_removal():
    reference = dump_item((b"mapped bytes",))
    mapped = load_item((reference,), type="mmap")
    assert not os.path.exists(reference)
    assert mapped[:6] == b"mapped" and len(mapped) == 12
    mapped.close()


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_mmap_of_fifo_or_socket_is_a_clear_error(kind):
    reference = dump_item((b"x",), type=kind, timeout=0.3)
    with pytest.raises(ValueError, match="mmap.*string"):
        load_item((reference,), type="mmap")
    join_writer_threads()  # the unread writer gives up and cleans up


@pytest.mark.timeout(10)
def test_mmap_of_empty_file_is_a_clear_error():
    reference = dump_item((b"",))
    with pytest.raises(ValueError, match="empty"):
        load_item((reference,), type="mmap", remove=False)
    assert load_item((reference,)) == b""


@pytest.mark.timeout(10)
def test_missing_reference_raises_item_not_found(private_tmp):
    with pytest.raises(ItemNotFoundError) as caught:
        load_item((str(private_tmp / "tmp_papy_file_gone"),))
    assert isinstance(caught.value, FileNotFoundError)
    assert "tmp_papy_file_gone" in str(caught.value)


@pytest.mark.timeout(10)
def test_fifo_without_writer_times_out_and_is_removed(private_tmp):
    path = private_tmp / "tmp_papy_fifo_orphan"
    os.mkfifo(path)
    with pytest.raises(ItemTimeoutError) as caught:
        load_item((str(path),), timeout=0.3)
    assert isinstance(caught.value, TimeoutError)
    assert not path.exists()


@pytest.mark.timeout(20)
def test_fifo_of_a_killed_writer_fails_without_waiting_out_the_timeout():
    writer, reference = start_writer("fifo", 10, then="kill")
    try:
        assert writer.wait(timeout=10) == -signal.SIGKILL
    finally:
        writer.kill()
        writer.wait()
    assert stat.S_ISFIFO(os.stat(reference).st_mode)  # SIGKILL skips cleanup
    # The FIFO's name carries the writer's pid: the reader sees it is gone
    # (a 60 s wait would trip this test's 20 s limit).
    with pytest.raises(ItemNotFoundError, match=f"process {writer.pid} is gone"):
        load_item((reference,), timeout=60)
    assert not os.path.exists(reference)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("kind", "error"), [("fifo", ItemNotFoundError), ("socket", ItemRefusedError)]
)
def test_writer_process_that_exited_leaves_nothing(kind, error):
    writer, reference = start_writer(kind, 10, then="exit")
    try:
        assert writer.wait(timeout=10) == 0
    finally:
        writer.kill()
        writer.wait()
    with pytest.raises(error):
        load_item((reference,), timeout=2)


@pytest.mark.timeout(10)
def test_socket_writer_times_out_then_refuses():
    reference = dump_item((b"late",), type="socket", timeout=0.2)
    join_writer_threads()
    with pytest.raises(ItemRefusedError) as caught:
        load_item((reference,), timeout=2)
    assert isinstance(caught.value, ConnectionRefusedError)


@pytest.mark.timeout(10)
def test_fifo_writer_times_out_and_removes_its_fifo():
    reference = dump_item((b"late",), type="fifo", timeout=0.2)
    assert os.path.exists(reference)
    join_writer_threads()
    assert not os.path.exists(reference)
    with pytest.raises(ItemNotFoundError):
        load_item((reference,))


@pytest.mark.timeout(10)
def test_socket_listens_on_loopback_and_ignores_a_wrong_token():
    reference = dump_item((b"secret",), type="socket", timeout=5)
    address, _, token = reference.removeprefix("tcp://").partition("/")
    host, _, port = address.rpartition(":")
    assert host == "127.0.0.1"
    wrong = "0" * len(token) if token != "0" * len(token) else "1" * len(token)
    with pytest.raises(ItemRefusedError, match="without sending"):
        load_item((f"tcp://{address}/{wrong}",), timeout=2)
    assert load_item((reference,)) == b"secret"
    join_writer_threads()


@pytest.mark.timeout(10)
def test_socket_writer_that_stops_half_way_is_detected():
    import struct

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]

    def half_writer():
        connection, _ = server.accept()
        with connection:
            connection.recv(64)
            connection.sendall(struct.pack("!8sQ", b"PAPYITEM", 100) + b"only ten b")

    thread = threading.Thread(target=half_writer)
    thread.start()
    try:
        with pytest.raises(ItemTruncatedError, match="10 of 100"):
            load_item((f"tcp://127.0.0.1:{port}/{'a' * 32}",), timeout=2)
    finally:
        thread.join(5)
        server.close()


@pytest.mark.timeout(10)
def test_socket_peer_that_says_nothing_times_out():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        with pytest.raises(ItemTimeoutError):
            load_item((f"tcp://127.0.0.1:{port}/{'a' * 32}",), timeout=0.3)
    finally:
        server.close()


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"type": "pipe"}, ValueError, "type"),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": "5"}, ValueError, "timeout"),
        ({"buffer": 0}, ValueError, "buffer"),
        ({"prefix": 3}, TypeError, "prefix"),
        ({"type": "socket", "dir": "/tmp"}, ValueError, "dir"),
        ({"dir": "/no/such/dir"}, NotADirectoryError, "dir"),
        ({"dir": 5}, TypeError, "dir"),
        ({"prefix": "a\x00b"}, ValueError, "dump_item: prefix .*NUL"),
        ({"suffix": "\x00", "type": "fifo"}, ValueError, "dump_item: suffix .*NUL"),
    ],
)
def test_dump_item_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        dump_item((b"x",), **kwargs)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("inbox", "kwargs", "error", "match"),
    [
        (("x",), {"type": "file"}, ValueError, "type"),
        ((b"x",), {}, TypeError, "reference"),
        (("x",), {"buffer": -1}, ValueError, "buffer"),
        (("x",), {"timeout": -1}, ValueError, "timeout"),
        (("tcp://127.0.0.1:1/short",), {}, ValueError, "malformed"),
        ((f"tcp://10.0.0.1:80/{'a' * 32}",), {}, ValueError, "loopback"),
        ((), {}, ValueError, "empty"),
        ("abc", {}, TypeError, "inbox"),
        (("/tmp/a\x00b",), {}, ValueError, "load_item: .*NUL"),
    ],
)
def test_load_item_bad_arguments(inbox, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_item(inbox, **kwargs)


@pytest.mark.timeout(10)
def test_a_str_utf8_cannot_encode_is_named_with_function_and_argument():
    named = r"dump_item: the item \(inbox\[0\]\)"
    with pytest.raises(UnicodeError, match=named) as got:
        dump_item(("\ud800",))
    assert isinstance(got.value.__cause__, UnicodeEncodeError)
    with pytest.raises(UnicodeError, match=r"dump_stream: the item \(inbox\[0\]\)"):
        dump_stream(("\ud800",), io.BytesIO())
    with pytest.raises(UnicodeError, match="dump_stream: delimiter"):
        dump_stream((b"x",), io.BytesIO(), delimiter="\udcff")


@pytest.mark.timeout(10)
def test_load_item_with_a_one_byte_buffer_reads_a_file_without_warnings(tmp_path):
    reference = dump_item((b"abc",), dir=str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # open(..., "rb", buffering=1) warns
        assert load_item((reference,), buffer=1) == b"abc"


@pytest.mark.timeout(10)
def test_dump_item_refuses_unserialized_objects():
    with pytest.raises(TypeError, match="pickle_dumps"):
        dump_item(({"a": 1},))


@pytest.mark.timeout(10)
def test_item_errors_are_oserrors_with_errno():
    assert issubclass(ItemError, OSError)
    try:
        load_item(("/nonexistent/tmp_papy",))
    except ItemNotFoundError as error:
        assert error.errno == errno.ENOENT


def _sleep_in_child(seconds):
    time.sleep(seconds)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_forked_child_does_not_keep_a_writer_alive(kind):
    import multiprocessing

    # Forked while the writer waits: without the at-fork cleanup the child
    # would keep the port listening (a late reader would hang until its
    # timeout instead of being refused) or hold the FIFO's write end.
    reference = dump_item((b"x" * 300_000,), type=kind, timeout=0.5)
    child = multiprocessing.get_context("fork").Process(
        target=_sleep_in_child, args=(5,)
    )
    child.start()
    try:
        if kind == "fifo":
            assert load_item((reference,), timeout=3) == b"x" * 300_000
        else:
            join_writer_threads()  # the writer gives up after 0.5 s
            with pytest.raises(ItemRefusedError):
                load_item((reference,), timeout=3)
    finally:
        child.kill()
        child.join()


def _report_then_sleep(ready, seconds):
    os.write(ready, b"!")
    time.sleep(seconds)


def _holds_write_end(pid, fifo):
    """Whether process ``pid`` has the FIFO ``fifo`` (a stat) open for
    writing, as /proc tells."""
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            opened = os.stat(f"/proc/{pid}/fd/{name}")
            with open(f"/proc/{pid}/fdinfo/{name}") as info:
                fields = dict(line.split(":", 1) for line in info if ":" in line)
        except FileNotFoundError:
            continue  # closed meanwhile
        flags = int(fields["flags"], 8)
        same = (opened.st_dev, opened.st_ino) == (fifo.st_dev, fifo.st_ino)
        if same and flags & os.O_ACCMODE == os.O_WRONLY:
            return True
    return False


@pytest.mark.timeout(20)
@pytest.mark.skipif(not os.path.isdir("/proc/self/fdinfo"), reason="needs /proc")
def test_child_forked_mid_write_does_not_hold_the_fifo_open():
    # A child holding a copy of the write end would keep a reader from ever
    # seeing the writer's end (a writer process that died half-way would
    # then be a reader's timeout, not an ItemTruncatedError).
    import multiprocessing
    import select

    size = 2_000_000  # far more than a pipe buffer: the writer blocks mid-way
    reference = dump_item((b"y" * size,), type="fifo", timeout=10)
    reader = os.open(reference, os.O_RDONLY | os.O_NONBLOCK)
    ready_to_read, ready = os.pipe()
    child = None
    try:
        poller = select.poll()
        poller.register(reader, select.POLLIN)
        assert poller.poll(5000), "the writer never connected"
        child = multiprocessing.get_context("fork").Process(
            target=_report_then_sleep, args=(ready, 10)
        )
        child.start()
        assert os.read(ready_to_read, 1) == b"!"  # its at-fork hooks have run
        assert not _holds_write_end(child.pid, os.fstat(reader))
        received = 0
        while received < FIFO_HEADER_SIZE + size:
            assert poller.poll(5000), "the writer stopped writing"
            received += len(os.read(reader, 65536))
        assert received == FIFO_HEADER_SIZE + size
    finally:
        os.close(reader)
        os.close(ready_to_read)
        os.close(ready)
        os.unlink(reference)
        if child is not None:
            child.kill()
            child.join()
    join_writer_threads()


@pytest.mark.timeout(20)
def test_fifo_reader_that_comes_after_the_writer_left_gets_the_item():
    import select

    # Another process had the FIFO open (e.g. a reader that lost the race),
    # so the writer connected and wrote everything before our reader opened:
    # the item is in the pipe, and the writer waits for its readers to close.
    reference = dump_item((b"waiting in the pipe",), type="fifo", timeout=10)
    bystander = os.open(reference, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(bystander, select.POLLIN)
        assert poller.poll(5000), "the writer never wrote"
        assert load_item((reference,), timeout=3) == b"waiting in the pipe"
    finally:
        os.close(bystander)
    join_writer_threads()  # the last reader has closed: the writer is done
    assert not os.path.exists(reference)
