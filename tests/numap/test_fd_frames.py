"""Length-prefixed frames on real pipes (numap._channel.FdFrames).

A read takes whatever the pipe holds, so several frames may arrive at once
and be buffered; has_frame() must then say so, since polling the pipe no
longer would.
"""

import contextlib
import os
import threading

import pytest
from numap._channel import FdFrames


@pytest.fixture
def pipe():
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        with contextlib.suppress(OSError):  # a test closed it already
            os.close(fd)


@pytest.mark.timeout(10)
def test_frames_written_together_are_buffered_and_read_one_by_one(pipe):
    read_fd, write_fd = pipe
    writer, reader = FdFrames(write_fd), FdFrames(read_fd)
    frames = [b"", b"a", b"bc" * 100, bytes(range(256))]
    for frame in frames:
        writer.send(frame)
    assert not reader.has_frame()  # nothing read from the pipe yet
    assert reader.recv() == frames[0]
    # The first read took everything the pipe held.
    for frame in frames[1:]:
        assert reader.has_frame()
        assert reader.recv() == frame
    assert not reader.has_frame()


@pytest.mark.timeout(10)
def test_frames_arriving_alone_and_together_keep_their_order(pipe):
    # A frame read alone is cut from its chunk; frames read together go
    # through the buffer. Alternating the two must not lose or reorder any.
    read_fd, write_fd = pipe
    writer, reader = FdFrames(write_fd), FdFrames(read_fd)
    received = []
    for round_number in range(5):
        alone = b"alone %d" % round_number
        writer.send(alone)
        received.append(reader.recv())
        assert not reader.has_frame()
        together = [b"", b"first %d" % round_number, b"second" * round_number]
        for frame in together:
            writer.send(frame)
        received.extend(reader.recv() for _ in together)
        assert not reader.has_frame()
        expected_round = [alone, *together]
        assert received[-4:] == expected_round


@pytest.mark.timeout(20)
def test_frames_bigger_than_the_pipe_arrive_whole(pipe):
    read_fd, write_fd = pipe
    writer, reader = FdFrames(write_fd), FdFrames(read_fd)
    frames = [os.urandom(3 << 20), b"small", os.urandom(70_000)]
    sending = threading.Thread(target=lambda: [writer.send(f) for f in frames])
    sending.start()
    received = [reader.recv() for _ in frames]
    sending.join()
    assert [bytes(frame) for frame in received] == frames


@pytest.mark.timeout(10)
def test_end_of_input_raises_eof_error(pipe):
    read_fd, write_fd = pipe
    reader = FdFrames(read_fd)
    FdFrames(write_fd).send(b"last")
    os.close(write_fd)
    assert reader.recv() == b"last"
    with pytest.raises(EOFError):
        reader.recv()


@pytest.mark.timeout(10)
def test_end_of_input_inside_a_frame_raises_eof_error(pipe):
    read_fd, write_fd = pipe
    reader = FdFrames(read_fd)
    # A header announcing 10 bytes, then only 3 of them.
    os.write(write_fd, (10).to_bytes(8, "big") + b"abc")
    os.close(write_fd)
    with pytest.raises(EOFError):
        reader.recv()
