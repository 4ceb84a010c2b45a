"""Length-prefixed frames on real pipes (numap._channel.FdFrames).

A read takes whatever the pipe holds, so several frames may arrive at once
and be buffered; has_frame() must then say so, since polling the pipe no
longer would.
"""

import contextlib
import fcntl
import itertools
import os
import random
import struct
import termios
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numap._channel import _READ_SIZE, FdFrames


def framed(*frames: bytes) -> bytes:
    """The bytes that FdFrames.send writes for ``frames``."""
    return b"".join(len(frame).to_bytes(8, "big") + frame for frame in frames)


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
@pytest.mark.parametrize(
    ("whole", "size", "cut_at"),
    [
        ([], 10, 3),  # a header announcing 10 bytes, then only 3 of them
        # Whole frames that arrived in the same read as the start of a big
        # frame come out before the EOFError of the big one's missing end.
        ([b"one", b"two"], 1 << 20, 1000),
    ],
)
def test_end_of_input_inside_a_frame_raises_eof_error_after_the_whole_ones(
    pipe, whole, size, cut_at
):
    read_fd, write_fd = pipe
    reader = FdFrames(read_fd)
    os.write(write_fd, framed(*whole) + size.to_bytes(8, "big") + b"x" * cut_at)
    os.close(write_fd)
    assert [reader.recv() for _ in whole] == whole
    with pytest.raises(EOFError):
        reader.recv()


@pytest.mark.timeout(10)
def test_the_end_of_a_frame_that_looks_like_a_frame_is_not_taken_for_one(pipe):
    # The second read holds only the end of a frame begun in the first;
    # its first 8 bytes happen to be a length that fits the read exactly.
    read_fd, write_fd = pipe
    reader = FdFrames(read_fd)
    end = (72).to_bytes(8, "big") + b"e" * 72
    frame = b"s" * 20 + end
    first = b"first"
    os.write(write_fd, framed(first) + len(frame).to_bytes(8, "big") + frame[:20])
    assert reader.recv() == first
    assert not reader.has_frame()  # only the start of the next one is read
    os.write(write_fd, end)
    assert reader.recv() == frame


_SIZES = st.one_of(
    st.integers(0, 64),
    st.integers(_READ_SIZE - 16, _READ_SIZE + 16),
    st.integers(0, 3 * _READ_SIZE),
)
# Pieces are written whole into a pipe widened to hold them beside the
# unfinished frame before them.
_PIECE_LIMIT = 1 << 18


def _unread(fd: int) -> int:
    """Bytes waiting in the pipe whose read end is ``fd``."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0" * 4))[0]


def _pieces(stream: bytes, cuts: list[int]) -> list[bytes]:
    pieces = []
    start = 0
    for cut in [*cuts, len(stream)]:
        for piece_start in range(start, cut, _PIECE_LIMIT):
            pieces.append(stream[piece_start : min(cut, piece_start + _PIECE_LIMIT)])
        start = cut
    return pieces


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(fcntl, "F_SETPIPE_SZ"), reason="needs Linux pipes")
@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(_SIZES, min_size=1, max_size=12), data=st.data())
def test_any_frames_cut_anywhere_come_out_whole_and_in_order(sizes, data):
    # The byte stream of the frames is written in pieces of any length, and
    # after each piece every frame that is whole by then is received: so
    # reads end anywhere (inside a header, inside a frame, between
    # frames), and the same example always reads the same way.
    randoms = random.Random(len(sizes))
    frames = [randoms.randbytes(size) for size in sizes]
    stream = framed(*frames)
    ends = list(itertools.accumulate(8 + len(frame) for frame in frames))
    cuts = sorted(
        data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=8, unique=True))
    )
    read_fd, write_fd = os.pipe()
    try:
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, 1 << 20)
        reader = FdFrames(read_fd)
        received: list[bytes] = []
        written = 0
        for piece in _pieces(stream, cuts):
            assert os.write(write_fd, piece) == len(piece)
            written += len(piece)
            whole = sum(1 for end in ends if end <= written)
            while len(received) < whole:
                buffered = reader.has_frame()
                before = _unread(read_fd)
                received.append(bytes(reader.recv()))
                if buffered:
                    assert _unread(read_fd) == before, "has_frame() said no read"
            assert not reader.has_frame()
        os.close(write_fd)
        write_fd = -1
        with pytest.raises(EOFError):
            reader.recv()
        assert received == frames
    finally:
        os.close(read_fd)
        if write_fd != -1:
            os.close(write_fd)
