"""make_lines(follow=True) stopped while it waits; function_code imports
builtins from their public module."""

import functools
import io
import operator
import threading
import time

import pytest
from papy.util.codefile import function_code
from papy.util.func import make_lines


def wait_until_waiting(lines):
    while not lines.waiting_for_data:
        time.sleep(0.01)


@pytest.mark.timeout(20)
def test_stop_reading_ends_a_followed_file_waiting_for_data(tmp_path):
    path = tmp_path / "growing.txt"
    path.write_text("one\ntw")  # the last line's newline has not arrived
    with open(path) as handle:
        lines = make_lines(handle, follow=True, wait=3600)
        assert next(lines) == "one\n"
        read = []
        reader = threading.Thread(target=lambda: read.extend(lines))
        reader.start()
        wait_until_waiting(lines)  # an hour-long wait for the newline
        lines.stop_reading()  # from another thread than the reader's
        reader.join(15)
        assert not reader.is_alive(), "stop_reading did not end the wait"
    assert read == ["tw"]  # the unfinished line is not lost
    assert not lines.waiting_for_data


@pytest.mark.timeout(20)
def test_make_lines_reads_lines_that_arrive_while_following(tmp_path):
    path = tmp_path / "growing.txt"
    path.write_text("a\n")
    with open(path) as handle, open(path, "a") as appending:
        lines = make_lines(handle, follow=True, wait=0.01)
        assert next(lines) == "a\n"
        appending.write("b")
        appending.flush()
        got = []
        reader = threading.Thread(target=lambda: got.append(next(lines)))
        reader.start()
        wait_until_waiting(lines)  # it has read "b" and waits for the rest
        appending.write("c\n")
        appending.flush()
        reader.join(15)
        assert got == ["bc\n"]
        lines.stop_reading()
        assert list(lines) == []


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "func, line",
    [
        (operator.add, "from operator import add"),  # operator.add is _operator's
        (io.open, "from io import open"),  # io.open is _io's
        (functools.reduce, "from functools import reduce"),
    ],
)
def test_function_code_imports_builtins_from_their_public_module(func, line):
    assert function_code(func).code.strip() == line
