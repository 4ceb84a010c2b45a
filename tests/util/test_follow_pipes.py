"""make_lines(handle, follow=True) on pipes, FIFOs, sockets and a
subprocess's stdout: stop_reading() ends it even while it waits for data.

Before the fix, readline() on such a handle blocked until data or EOF came,
so stop_reading() (and a Plumber's stop()) could not end the follow.
"""

import gzip
import os
import socket
import subprocess
import sys
import time

import pytest
from line_readers import read_in_thread, wait_for
from papy.util.func import make_lines


def os_pipe(tmp_path, mode):
    read_fd, write_fd = os.pipe()
    handle = os.fdopen(read_fd, mode)
    return handle, lambda data: os.write(write_fd, data), lambda: os.close(write_fd)


def fifo(tmp_path, mode):
    path = tmp_path / "lines.fifo"
    os.mkfifo(path)
    write_fd = os.open(path, os.O_RDWR)  # keeps a writer, so reading never sees EOF
    handle = open(path, mode)  # noqa: SIM115 - closed by the test
    return handle, lambda data: os.write(write_fd, data), lambda: os.close(write_fd)


def socket_pair(tmp_path, mode):
    reading, writing = socket.socketpair()
    handle = reading.makefile(mode)
    reading.close()  # the file keeps the socket open

    def close():
        writing.close()

    return handle, writing.sendall, close


def child_stdout(tmp_path, mode):
    # The child copies its stdin to its stdout unbuffered.
    child = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-c",
            "import os\nwhile data := os.read(0, 1024): os.write(1, data)",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        bufsize=0,
    )
    handle = open(child.stdout.fileno(), mode, closefd=False)  # noqa: SIM115

    def write(data):
        child.stdin.write(data)

    def close():
        child.stdin.close()
        try:
            child.wait(10)  # ends at the end of its input
        finally:
            child.kill()
            child.wait()
            child.stdout.close()

    return handle, write, close


SOURCES = [os_pipe, fifo, socket_pair, child_stdout]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("mode", ["r", "rb"])
def test_stop_reading_ends_a_follow_waiting_on_a_pipe(tmp_path, source, mode):
    handle, write, close = source(tmp_path, mode)
    try:
        write(b"a\nb\npart")  # the writer stays open and sends no more
        lines = make_lines(handle, follow=True, wait=3600)
        expected = ["a\n", "b\n", "part"]
        if mode == "rb":
            expected = [line.encode() for line in expected]
        assert next(lines) == expected[0]
        reader, read = read_in_thread(lines)
        assert wait_for(lambda: lines.waiting_for_data), "never waited for data"
        assert wait_for(lambda: read == expected[1:2])
        lines.stop_reading()
        reader.join(5)
        assert not reader.is_alive(), "stop_reading did not end the follow"
        assert read == expected[1:]  # the unfinished line is not lost
        assert not lines.waiting_for_data
    finally:
        close()  # also releases a reader still blocked (old code)
        handle.close()


@pytest.mark.timeout(10)
@pytest.mark.parametrize("source", SOURCES)
def test_follow_on_a_pipe_reads_lines_arriving_in_pieces(tmp_path, source):
    handle, write, close = source(tmp_path, "r")
    try:
        lines = make_lines(handle, follow=True, wait=0.01)
        reader, read = read_in_thread(lines)
        encoded = "é\n".encode()
        for piece in (b"x", b"y\nz", encoded[:1]):  # split inside a character
            write(piece)
            time.sleep(0.05)
        write(encoded[1:] + b"\r\nlast")
        assert wait_for(lambda: len(read) == 3)
        lines.stop_reading()
        reader.join(5)
        assert not reader.is_alive()
        assert read == ["xy\n", "zé\n", "\n", "last"]  # universal newlines
    finally:
        close()
        handle.close()


@pytest.mark.timeout(10)
def test_follow_on_a_pipe_keeps_waiting_after_its_writer_closes(tmp_path):
    handle, write, close = os_pipe(tmp_path, "rb")
    try:
        write(b"only\n")
        close()  # end of file: tail -f keeps waiting, stop_reading ends it
        lines = make_lines(handle, follow=True, wait=0.01)
        reader, read = read_in_thread(lines)
        assert wait_for(lambda: read == [b"only\n"] and lines.waiting_for_data)
        lines.stop_reading()
        reader.join(5)
        assert not reader.is_alive()
        assert read == [b"only\n"]
    finally:
        handle.close()


@pytest.mark.timeout(10)
def test_follow_refuses_a_compressed_handle_over_a_pipe(tmp_path):
    # Its readline could block where stop_reading cannot end it, and the
    # pipe's bytes are not its lines: refused at once, with what to do.
    handle, _, close = os_pipe(tmp_path, "rb")
    try:
        with gzip.open(handle, "rt") as compressed:
            with pytest.raises(ValueError, match="follow=True on a .*cannot be"):
                make_lines(compressed, follow=True)
            assert make_lines(compressed, follow=False) is not None
    finally:
        close()
        handle.close()


@pytest.mark.timeout(10)
def test_follow_on_a_regular_compressed_file_still_polls(tmp_path):
    path = tmp_path / "lines.gz"
    with gzip.open(path, "wt") as writing:
        writing.write("a\nb\n")
    with gzip.open(path, "rt") as handle:
        lines = make_lines(handle, follow=True, wait=0.01)
        assert [next(lines), next(lines)] == ["a\n", "b\n"]
        lines.stop_reading()
        assert list(lines) == []


@pytest.mark.timeout(10)
def test_follow_on_a_non_blocking_pipe(tmp_path):
    handle, write, close = os_pipe(tmp_path, "rb")
    os.set_blocking(handle.fileno(), False)
    try:
        lines = make_lines(handle, follow=True, wait=0.01)
        reader, read = read_in_thread(lines)
        write(b"one\ntw")
        write(b"o\n")
        assert wait_for(lambda: len(read) == 2)
        lines.stop_reading()
        reader.join(5)
        assert not reader.is_alive()
        assert read == [b"one\n", b"two\n"]
    finally:
        close()
        handle.close()
