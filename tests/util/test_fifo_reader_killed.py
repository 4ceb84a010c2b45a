"""A FIFO whose reader dies mid-read is removed by its writer.

A reader that is alive removes the FIFO itself (it unlinks before it
closes). A killed one cannot: before the fix the writer, on its broken
pipe or idle timeout, assumed the reader would, dropped the FIFO from its
pending set, and the FIFO stayed on disk for good; a later load_item on it
waited out its whole timeout. The same held for a reader killed after a
small item was wholly in the pipe's buffer: the writer had nothing left to
write and counted the item as delivered. Real FIFOs and real reader
processes here.
"""

import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from papy.util.func import ItemNotFoundError, dump_item, load_item

# Opens the FIFO as load_item does, reads part of the item, reports, stalls.
PARTIAL_READER = textwrap.dedent(
    """
    import os, select, sys, time
    fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    got = b""
    while len(got) < 100:
        poller.poll(1000)
        try:
            got += os.read(fd, 100 - len(got))
        except BlockingIOError:
            pass
    print("read", len(got), flush=True)
    time.sleep(60)
    """
)

ITEM = b"z" * 2_000_000  # far more than a pipe buffer holds


def start_partial_reader(reference):
    reader = subprocess.Popen(
        [sys.executable, "-c", PARTIAL_READER, reference],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().split() == ["read", "100"]
    except BaseException:
        kill(reader)
        raise
    return reader


def kill(reader):
    reader.kill()
    reader.wait()
    reader.stdout.close()


def wait_until_gone(path, seconds):
    deadline = time.monotonic() + seconds
    while os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    return not os.path.exists(path)


@pytest.mark.timeout(15)
def test_writer_removes_the_fifo_of_a_reader_killed_mid_read(tmp_path):
    # The writer's timeout is long: the broken pipe, not the timeout, ends it.
    reference = dump_item((ITEM,), type="fifo", dir=str(tmp_path), timeout=60)
    kill(start_partial_reader(reference))
    assert wait_until_gone(reference, 5), "the killed reader's FIFO stayed"
    started = time.monotonic()
    with pytest.raises(ItemNotFoundError):
        load_item((reference,), timeout=30)
    assert time.monotonic() - started < 30  # failed at once, no timeout
    assert os.listdir(tmp_path) == []


@pytest.mark.timeout(15)
def test_writer_removes_the_fifo_when_its_reader_stalls_then_dies(tmp_path):
    # The reader stops reading: the writer gives up after its (idle)
    # timeout; the reader is killed only after that.
    reference = dump_item((ITEM,), type="fifo", dir=str(tmp_path), timeout=1)
    reader = start_partial_reader(reference)
    try:
        assert wait_until_gone(reference, 10), "the stalled transfer's FIFO stayed"
    finally:
        kill(reader)
    assert os.listdir(tmp_path) == []


@pytest.mark.timeout(15)
def test_a_reader_in_another_process_still_loads_and_removes_the_fifo(tmp_path):
    reference = dump_item((ITEM,), type="fifo", dir=str(tmp_path), timeout=10)
    loader = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys\nfrom papy.util.func import load_item\n"
            "print(len(load_item((sys.argv[1],))))",
            reference,
        ],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert loader.stdout.split() == [str(len(ITEM))], loader.stderr
    assert os.listdir(tmp_path) == []


# Opens and locks the FIFO as load_item does, waits until the writer has put
# the whole item (16-byte header and data) in the pipe's buffer, reports,
# holds the FIFO for argv[3] seconds without reading, then reads the item
# and prints it (it never removes the FIFO: only a writer can here).
BUFFERED_READER = textwrap.dedent(
    """
    import array, fcntl, os, sys, termios, time
    fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NONBLOCK)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    expected = 16 + int(sys.argv[2])
    buffered = array.array("i", [0])
    while buffered[0] < expected:
        time.sleep(0.005)
        fcntl.ioctl(fd, termios.FIONREAD, buffered)
    print("buffered", flush=True)
    time.sleep(float(sys.argv[3]))
    print(os.read(fd, expected)[16:].decode(), flush=True)
    """
)

SMALL_ITEM = b"small item"  # fits in any pipe buffer


def start_buffered_reader(reference, hold_seconds):
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            BUFFERED_READER,
            reference,
            str(len(SMALL_ITEM)),
            str(hold_seconds),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "buffered"
    except BaseException:
        kill(reader)
        raise
    return reader


@pytest.mark.timeout(30)
def test_writer_removes_the_fifo_of_a_reader_killed_with_the_item_buffered(tmp_path):
    reference = dump_item((SMALL_ITEM,), type="fifo", dir=str(tmp_path), timeout=60)
    kill(start_buffered_reader(reference, hold_seconds=60))
    assert wait_until_gone(reference, 5), "the killed reader's FIFO stayed"
    started = time.monotonic()
    with pytest.raises(ItemNotFoundError):
        load_item((reference,), timeout=20)
    assert time.monotonic() - started < 5  # failed at once, no timeout
    assert os.listdir(tmp_path) == []


@pytest.mark.timeout(30)
def test_a_reader_holding_the_fifo_past_the_timeout_loses_the_name_not_the_item(
    tmp_path,
):
    # A frozen reader: the writer removes the FIFO after its timeout (the
    # reader might never come back), but a reader that does come back still
    # reads the whole item from the pipe's buffer.
    reference = dump_item((SMALL_ITEM,), type="fifo", dir=str(tmp_path), timeout=1)
    reader = start_buffered_reader(reference, hold_seconds=4)
    try:
        assert wait_until_gone(reference, 10), "the held FIFO stayed"
        assert reader.stdout.readline().strip() == SMALL_ITEM.decode()
    finally:
        kill(reader)
    assert os.listdir(tmp_path) == []


@pytest.mark.timeout(30)
def test_after_a_normal_load_the_writer_ends_at_once_and_spares_a_new_file(tmp_path):
    # The writer waits for its reader to close, then removes the FIFO only
    # if the path still names it: here the reader removed it, and a new
    # file took the name.
    reference = dump_item((SMALL_ITEM,), type="fifo", dir=str(tmp_path), timeout=60)
    writer_name = f"papy-fifo-writer:{os.path.basename(reference)}"
    assert load_item((reference,), timeout=10) == SMALL_ITEM
    with open(reference, "w") as handle:
        handle.write("another file")
    for thread in threading.enumerate():
        if thread.name == writer_name:
            thread.join(5)
            assert not thread.is_alive(), "the writer still waits for its reader"
    with open(reference) as handle:
        assert handle.read() == "another file"


@pytest.mark.timeout(30)
def test_the_writer_ends_once_its_reader_removed_the_fifo_a_child_holds(tmp_path):
    # A process that a reader forked while it held the FIFO open inherits
    # the read end and may keep it long after the reader has loaded and
    # removed the item. Before the fix the writer waited for that process
    # to close it too (up to its timeout), keeping its thread and
    # descriptor all that time.
    reference = dump_item((SMALL_ITEM,), type="fifo", dir=str(tmp_path), timeout=60)
    writer_name = f"papy-fifo-writer:{os.path.basename(reference)}"
    read_end = os.open(reference, os.O_RDONLY | os.O_NONBLOCK)
    try:
        holder = subprocess.Popen(
            [sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=[read_end]
        )
    finally:
        os.close(read_end)
    try:
        assert load_item((reference,), timeout=10) == SMALL_ITEM
        for thread in threading.enumerate():
            if thread.name == writer_name:
                thread.join(5)
                assert not thread.is_alive(), "the writer waits for the holder"
        assert holder.poll() is None  # the read end was still held
    finally:
        holder.kill()
        holder.wait()
    assert os.listdir(tmp_path) == []
