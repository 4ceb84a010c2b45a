"""Stream functions: dump_stream/load_stream, pickle streams, make_lines."""

import io
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st
from papy.util.func import (
    dump_pickle_stream,
    dump_stream,
    load_pickle_stream,
    load_stream,
    make_lines,
)

# Text without "\r": text-mode reading turns "\r" into "\n" (universal newlines).
line_text = st.text(
    alphabet=st.characters(blacklist_characters="\r", blacklist_categories=("Cs",)),
    max_size=20,
)


@pytest.mark.timeout(10)
def test_dump_stream_format_and_returned_name(tmp_path):
    path = tmp_path / "items.txt"
    with open(path, "w") as handle:
        assert dump_stream(("first", "ignored"), handle, "END") == str(path)
        dump_stream(("second\nline",), handle, "END")
    assert path.read_text() == "first\nEND\nsecond\nline\nEND\n"
    with open(path) as handle:
        assert list(load_stream(handle, "END")) == ["first", "second\nline"]


@pytest.mark.timeout(10)
def test_default_delimiter_is_a_blank_line(tmp_path):
    path = tmp_path / "items.txt"
    with open(path, "w") as handle:
        for item in ("a", "b c", "d\ne"):
            dump_stream((item,), handle)
    assert path.read_text() == "a\n\nb c\n\nd\ne\n\n"
    with open(path) as handle:
        assert list(load_stream(handle)) == ["a", "b c", "d\ne"]


@pytest.mark.timeout(30)
@given(st.lists(line_text.filter(lambda t: "END" not in t.split("\n")), max_size=8))
def test_stream_round_trip_with_delimiter(items):
    handle = io.StringIO()
    for item in items:
        assert dump_stream((item,), handle, delimiter="END") is None  # no name
    handle.seek(0)
    assert list(load_stream(handle, delimiter="END")) == items


@pytest.mark.timeout(10)
def test_binary_handles_take_bytes_and_str(tmp_path):
    path = tmp_path / "items.bin"
    with open(path, "wb") as handle:
        dump_stream((b"\x00raw",), handle, b"--")
        dump_stream(("téxt",), handle, "--")
    with open(path, "rb") as handle:
        assert list(load_stream(handle, b"--")) == [b"\x00raw", "téxt".encode()]
    with open(path, "rb") as handle:
        assert list(load_stream(handle, "--")) == [b"\x00raw", "téxt".encode()]


@pytest.mark.timeout(10)
def test_last_item_without_delimiter_and_bad_types(tmp_path):
    assert list(load_stream(io.StringIO("a\nEND\ntail"), "END")) == ["a", "tail"]
    with pytest.raises(TypeError, match="text handle"):
        dump_stream((b"bytes",), io.StringIO())
    with pytest.raises(TypeError, match="delimiter"):
        dump_stream(("x",), io.StringIO(), delimiter=b"END")
    with pytest.raises(TypeError, match="handle"):
        dump_stream(("x",), "not a handle")


@pytest.mark.timeout(30)
@given(
    st.lists(
        st.integers() | st.text() | st.tuples(st.floats(allow_nan=False), st.binary())
    )
)
def test_pickle_stream_round_trip(values):
    handle = io.BytesIO()
    for value in values:
        dump_pickle_stream((value,), handle)
    handle.seek(0)
    assert list(load_pickle_stream(handle)) == values


@pytest.mark.timeout(10)
def test_pickle_stream_file_and_errors(tmp_path):
    path = tmp_path / "objects.pickle"
    with open(path, "wb") as handle:
        assert dump_pickle_stream(({"k": [1, 2]},), handle) == str(path)
        dump_pickle_stream((None,), handle)
    with open(path, "rb") as handle:
        assert list(load_pickle_stream(handle)) == [{"k": [1, 2]}, None]
    with pytest.raises(TypeError, match="binary"):
        dump_pickle_stream((1,), io.StringIO())
    with pytest.raises(TypeError, match="binary"):
        list(load_pickle_stream(io.StringIO()))


@pytest.mark.timeout(10)
def test_make_lines_without_follow():
    assert list(make_lines(io.StringIO("a\nb\nlast"))) == ["a\n", "b\n", "last"]
    assert list(make_lines(io.BytesIO(b"x\n"))) == [b"x\n"]
    assert list(make_lines(io.StringIO(""))) == []
    with pytest.raises(ValueError, match="wait"):
        next(make_lines(io.StringIO("a"), wait=0))


# Appends lines to a file in pieces, as a slow producer would.
APPENDER = textwrap.dedent(
    """
    import sys, time
    with open(sys.argv[1], "a") as handle:
        for number in range(5):
            handle.write(f"line {number}"[:3]); handle.flush(); time.sleep(0.02)
            handle.write(f"line {number}"[3:] + "\\n"); handle.flush()
            time.sleep(0.02)
    """
)


@pytest.mark.timeout(20)
def test_make_lines_follows_a_growing_file_like_tail_f(tmp_path):
    path = tmp_path / "growing.log"
    path.write_text("existing\n")
    with open(path) as handle:
        lines = make_lines(handle, follow=True, wait=0.01)
        assert next(lines) == "existing\n"
        writer = subprocess.Popen([sys.executable, "-c", APPENDER, str(path)])
        try:
            followed = [next(lines) for _ in range(5)]
        finally:
            try:
                writer.wait(timeout=10)  # it ends after its lines
            finally:
                writer.kill()
                writer.wait()
        lines.close()
    assert followed == [f"line {number}\n" for number in range(5)]


@pytest.mark.timeout(20)
def test_stream_written_by_one_process_read_by_another(tmp_path):
    path = tmp_path / "stream.txt"
    writer = textwrap.dedent(
        """
        import sys
        from papy.util.func import dump_stream
        with open(sys.argv[1], "w") as handle:
            for number in range(100):
                dump_stream((f"item {number}\\nsecond line",), handle, "//")
        """
    )
    subprocess.run([sys.executable, "-c", writer, str(path)], check=True, timeout=15)
    with open(path) as handle:
        items = list(load_stream(handle, "//"))
    assert items == [f"item {number}\nsecond line" for number in range(100)]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "loader",
    [load_stream, load_pickle_stream, make_lines],
    ids=lambda f: f.__name__,
)
def test_stream_loaders_name_a_bad_handle(loader):
    with pytest.raises(TypeError, match=f"{loader.__name__}: handle"):
        next(loader(42))
