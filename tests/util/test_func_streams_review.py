"""Stream functions with compressed and plain handles, text and binary."""

import bz2
import gzip
import io
import lzma

import pytest
from papy.util.func import (
    dump_pickle_stream,
    dump_stream,
    load_pickle_stream,
    load_stream,
    make_lines,
)

OPENERS = [
    pytest.param(gzip.open, id="gzip"),
    pytest.param(bz2.open, id="bz2"),
    pytest.param(lzma.open, id="lzma"),
    pytest.param(open, id="plain"),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("opener", OPENERS)
def test_binary_handles_round_trip_items_and_pickles(tmp_path, opener):
    items_path = tmp_path / "items"
    with opener(items_path, "wb") as handle:
        dump_stream((b"first",), handle)
        dump_stream(("second, as UTF-8 \u00e9",), handle)
    with opener(items_path, "rb") as handle:
        assert list(load_stream(handle)) == [
            b"first",
            "second, as UTF-8 \u00e9".encode(),
        ]
    with opener(items_path, "rb") as handle:
        assert list(make_lines(handle))[0] == b"first\n"

    pickles_path = tmp_path / "pickles"
    with opener(pickles_path, "wb") as handle:
        dump_pickle_stream(({"a": 1},), handle)
        dump_pickle_stream(([2, 3],), handle)
    with opener(pickles_path, "rb") as handle:
        assert list(load_pickle_stream(handle)) == [{"a": 1}, [2, 3]]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("opener", OPENERS)
def test_text_handles_take_str_and_refuse_pickles(tmp_path, opener):
    path = tmp_path / "text"
    with opener(path, "wt") as handle:
        dump_stream(("one",), handle)
        dump_stream(("two",), handle)
        with pytest.raises(TypeError, match="dump_stream: the item .* must be str"):
            dump_stream((b"bytes",), handle)
        with pytest.raises(TypeError, match="dump_pickle_stream: handle must be"):
            dump_pickle_stream(({"a": 1},), handle)
    with opener(path, "rt") as handle:
        assert list(load_stream(handle)) == ["one", "two"]
    refused = pytest.raises(TypeError, match="load_pickle_stream: handle must be")
    with opener(path, "rt") as handle, refused:
        next(load_pickle_stream(handle))


@pytest.mark.timeout(10)
def test_in_memory_handles_are_told_apart():
    binary = io.BytesIO()
    dump_stream((b"b",), binary)
    assert binary.getvalue() == b"b\n\n"
    text = io.StringIO()
    dump_stream(("t",), text)
    assert text.getvalue() == "t\n\n"
