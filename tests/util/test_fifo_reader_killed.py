"""A FIFO whose reader dies mid-read is removed by its writer.

A reader that is alive removes the FIFO itself (it unlinks before it
closes). A killed one cannot: before the fix the writer, on its broken
pipe or idle timeout, assumed the reader would, dropped the FIFO from its
pending set, and the FIFO stayed on disk for good; a later load_item on it
waited out its whole timeout. Real FIFOs and real reader processes here.
"""

import os
import subprocess
import sys
import textwrap
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
