"""make_lines(follow=True), review 16: a FIFO's later writers, descriptors
past select()'s limit, the decoder's last text, split characters and "\\r\\n"
in a growing text file, and long lines on a pipe.

Before the fixes: a follow stopped reading a FIFO for good once its first
writer closed (a second writer's lines were lost, a big one blocked
forever); select() raised ValueError on a descriptor >= 1024; a pipe's
trailing "\\r" or unfinished character was dropped at stop_reading(); a
regular text file read by readline() at its current end raised
UnicodeDecodeError on half a character and made "\\r" + "\\n" two lines; a
long line on a pipe took time quadratic in its length.
"""

import os
import resource
import subprocess
import sys
import threading
import time

import pytest
from line_readers import read_in_thread, wait_for
from papy.util.func import make_lines


def stop(lines, reader):
    lines.stop_reading()
    reader.join(5)
    assert not reader.is_alive(), "stop_reading did not end the follow"


@pytest.fixture
def fifo_writer():
    """Start a child process that opens a FIFO for writing, writes a text
    and closes it; it ends once a reader has taken all. Children still
    running at the end of the test are killed."""
    source = (
        "import sys\n"
        "text = sys.stdin.read()\n"
        "with open(sys.argv[1], 'w') as fifo: fifo.write(text)"
    )
    children = []

    def start(path, text):
        child = subprocess.Popen(
            [sys.executable, "-c", source, path], stdin=subprocess.PIPE
        )
        children.append(child)
        child.stdin.write(text.encode())  # all read before it opens the FIFO
        child.stdin.close()
        return child

    yield start
    for child in children:
        child.kill()
        child.wait()


@pytest.mark.timeout(60)
def test_follow_on_a_fifo_reads_the_writers_after_the_first_one(tmp_path, fifo_writer):
    path = str(tmp_path / "lines.fifo")
    os.mkfifo(path)
    first = fifo_writer(path, "first\n")
    with open(path) as handle:  # opens once the first writer has
        lines = make_lines(handle, follow=True, wait=0.05)
        reader, read = read_in_thread(lines)
        try:
            assert first.wait(10) == 0
            assert wait_for(lambda: read == ["first\n"])
            time.sleep(0.3)  # the follow is now at the end of the stream
            big = "".join(f"{number:099d}\n" for number in range(2000))  # 200 KB
            second = fifo_writer(path, big)
            # More than a pipe holds: the writer ends only if it is read.
            assert second.wait(30) == 0, "the second writer was never read"
            assert wait_for(lambda: len(read) == 2001)
            assert "".join(read[1:]) == big
        finally:
            stop(lines, reader)


@pytest.mark.timeout(60)
def test_follow_on_a_fifo_without_writers_does_not_busy_loop(tmp_path, fifo_writer):
    path = str(tmp_path / "lines.fifo")
    os.mkfifo(path)
    writer = fifo_writer(path, "only\n")
    with open(path) as handle:
        lines = make_lines(handle, follow=True, wait=0.1)
        reader, read = read_in_thread(lines)
        try:
            assert writer.wait(10) == 0
            assert wait_for(lambda: read == ["only\n"])
            cpu = time.process_time()
            time.sleep(1)  # no writer: each look ends at once with b""
            assert time.process_time() - cpu < 0.3
        finally:
            stop(lines, reader)


@pytest.fixture
def high_descriptor():
    """A free descriptor number past select()'s limit of 1024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 1600:
        pytest.skip(f"the hard limit of open files is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1600), hard))
    try:
        yield next(number for number in range(1500, 1600) if not is_open(number))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def is_open(descriptor):
    try:
        os.fstat(descriptor)
    except OSError:
        return False
    return True


@pytest.mark.timeout(60)
def test_follow_on_a_pipe_with_a_descriptor_past_1024(high_descriptor):
    read_fd, write_fd = os.pipe()
    os.dup2(read_fd, high_descriptor)
    os.close(read_fd)
    with os.fdopen(high_descriptor, "rb") as handle:
        try:
            lines = make_lines(handle, follow=True, wait=0.05)
            os.write(write_fd, b"hello\n")
            assert next(lines) == b"hello\n"
            reader, read = read_in_thread(lines)
            os.write(write_fd, b"more\n")
            assert wait_for(lambda: read == [b"more\n"])
            stop(lines, reader)
        finally:
            os.close(write_fd)


def follow_a_closed_pipe(data, errors="strict"):
    """The lines a follow gives on a pipe holding ``data``, whose writer
    has closed: its first line, then after stop_reading() the rest."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, data)
    os.close(write_fd)
    with os.fdopen(read_fd, "r", encoding="utf-8", errors=errors) as handle:
        lines = make_lines(handle, follow=True, wait=0.05)
        read = [next(lines)]
        lines.stop_reading()
        read.extend(lines)
        return read


@pytest.mark.timeout(60)
def test_stop_reading_on_a_pipe_turns_a_trailing_carriage_return_into_a_newline():
    assert follow_a_closed_pipe(b"one\ntwo\r") == ["one\n", "two\n"]


@pytest.mark.timeout(60)
def test_stop_reading_on_a_pipe_decodes_an_unfinished_character_as_a_file_read():
    with pytest.raises(UnicodeDecodeError):
        follow_a_closed_pipe(b"one\nbad\xc3")
    assert follow_a_closed_pipe(b"one\nbad\xc3", "replace") == ["one\n", "bad\ufffd"]


def follow_a_growing_file(tmp_path, flushed, rest):
    """The lines a follow gives on a text file holding ``flushed`` when it
    starts and ``rest`` appended once it waits at the end of the file."""
    path = tmp_path / "growing.txt"
    path.write_bytes(flushed)
    with open(path, encoding="utf-8") as handle, open(path, "ab") as appending:
        lines = make_lines(handle, follow=True, wait=0.02)
        reader, read = read_in_thread(lines)
        try:
            assert wait_for(lambda: lines.waiting_for_data)
            time.sleep(0.1)  # a few looks at the end of the file
            appending.write(rest)
            appending.flush()
            assert wait_for(lambda: read and read[-1].endswith("end\n"))
        finally:
            stop(lines, reader)
        return read


@pytest.mark.timeout(60)
def test_follow_on_a_text_file_waits_for_the_rest_of_a_split_character(tmp_path):
    read = follow_a_growing_file(tmp_path, b"line one\ncaf\xc3", b"\xa9\nend\n")
    assert read == ["line one\n", "caf\u00e9\n", "end\n"]


@pytest.mark.timeout(60)
def test_follow_on_a_text_file_joins_a_carriage_return_and_its_newline(tmp_path):
    read = follow_a_growing_file(tmp_path, b"one\r\ntwo\r", b"\nend\r\n")
    assert read == ["one\n", "two\n", "end\n"]


@pytest.mark.timeout(60)
def test_follow_on_a_text_file_goes_on_after_lines_read_before_it(tmp_path):
    path = tmp_path / "growing.txt"
    path.write_text("header\n" + "".join(f"row {n}\n" for n in range(5000)))
    with open(path) as handle, open(path, "a") as appending:
        assert handle.readline() == "header\n"  # its buffer has read ahead
        lines = make_lines(handle, follow=True, wait=0.02)
        reader, read = read_in_thread(lines)
        try:
            assert wait_for(lambda: len(read) == 5000)
            appending.write("late\n")
            appending.flush()
            assert wait_for(lambda: len(read) == 5001)
        finally:
            stop(lines, reader)
    assert read == [f"row {n}\n" for n in range(5000)] + ["late\n"]


@pytest.mark.timeout(60)
def test_stop_reading_on_a_text_file_ending_in_a_carriage_return(tmp_path):
    path = tmp_path / "growing.txt"
    path.write_bytes(b"one\ntwo\r")
    with open(path, encoding="utf-8") as handle:
        lines = make_lines(handle, follow=True, wait=0.02)
        assert next(lines) == "one\n"
        reader, read = read_in_thread(lines)
        assert wait_for(lambda: lines.waiting_for_data)
        stop(lines, reader)
    assert read == ["two\n"]  # as a read of the whole file gives it


@pytest.mark.timeout(60)
def test_follow_on_a_pipe_reads_a_long_line_in_linear_time():
    read_fd, write_fd = os.pipe()
    data = b"x" * (32 * 1024 * 1024) + b"\n"

    def write():
        view = memoryview(data)
        while view:
            view = view[os.write(write_fd, view[: 1 << 20]) :]
        os.close(write_fd)

    writer = threading.Thread(target=write, daemon=True)
    with os.fdopen(read_fd, "rb") as handle:
        lines = make_lines(handle, follow=True, wait=0.05)
        started = time.monotonic()
        writer.start()
        line = next(lines)
        seconds = time.monotonic() - started
        lines.stop_reading()
        writer.join(10)
    assert line == data
    assert seconds < 3, f"{seconds:.1f} s for a 32 MB line"  # was about 7 s
