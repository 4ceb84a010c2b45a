"""Length-prefixed frames on real pipes (numap._channel.FdFrames).

A read takes whatever the pipe holds, so several frames may arrive at once
and be buffered; has_frame() must then say so, since polling the pipe no
longer would.
"""

import contextlib
import os
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numap._channel import _READ_SIZE, FdFrames


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


@pytest.mark.timeout(10)
def test_frames_read_before_a_cut_off_big_frame_are_returned(pipe):
    # Whole frames that arrived in the same read as the start of a big
    # frame come out before the EOFError of the big one's missing end.
    read_fd, write_fd = pipe
    reader = FdFrames(read_fd)
    small = [b"one", b"two"]
    stream = b"".join(len(frame).to_bytes(8, "big") + frame for frame in small)
    os.write(write_fd, stream + (1 << 20).to_bytes(8, "big") + b"x" * 1000)
    os.close(write_fd)
    assert [reader.recv(), reader.recv()] == small
    with pytest.raises(EOFError):
        reader.recv()


_SIZES = st.one_of(
    st.integers(0, 64),
    st.integers(_READ_SIZE - 16, _READ_SIZE + 16),
    st.integers(0, 3 * _READ_SIZE),
)


@pytest.mark.timeout(60)
@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(_SIZES, min_size=1, max_size=12), data=st.data())
def test_any_frames_cut_anywhere_come_out_whole_and_in_order(sizes, data):
    # The byte stream of the frames is written in pieces of any length, so
    # reads end anywhere: inside a header, inside a frame, between frames.
    frames = [bytes([index % 251]) * size for index, size in enumerate(sizes)]
    stream = b"".join(len(frame).to_bytes(8, "big") + frame for frame in frames)
    cuts = sorted(
        data.draw(st.lists(st.integers(0, len(stream)), max_size=8, unique=True))
    )
    read_fd, write_fd = os.pipe()
    try:

        def write_pieces() -> None:
            start = 0
            for cut in [*cuts, len(stream)]:
                view = memoryview(stream)[start:cut]
                while view:
                    view = view[os.write(write_fd, view) :]
                start = cut
            os.close(write_fd)

        writing = threading.Thread(target=write_pieces)
        writing.start()
        reader = FdFrames(read_fd)
        received = [bytes(reader.recv()) for _ in frames]
        with pytest.raises(EOFError):
            reader.recv()
        writing.join()
        assert received == frames
        assert not reader.has_frame()
    finally:
        os.close(read_fd)
