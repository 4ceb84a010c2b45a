"""Passers, zippers, joiners, serializers and sinks of papy.util.func."""

import json
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st
from papy.util.func import (
    ipasser,
    json_dumps,
    json_loads,
    njoiner,
    npasser,
    nzipper,
    pickle_dumps,
    pickle_loads,
    plugger,
    print_,
    sjoiner,
    spasser,
    szipper,
)

inboxes = st.lists(st.integers(), min_size=1, max_size=6).map(tuple)


@st.composite
def inbox_and_indices(draw, element=None):
    element = st.integers() if element is None else element
    inbox = tuple(draw(st.lists(element, min_size=1, max_size=6)))
    indices = draw(st.lists(st.integers(-len(inbox), len(inbox) - 1), max_size=8))
    return inbox, indices


@pytest.mark.timeout(30)
@given(inboxes, st.data())
def test_ipasser_and_npasser(inbox, data):
    i = data.draw(st.integers(-len(inbox), len(inbox) - 1))
    n = data.draw(st.integers(0, len(inbox) + 2))
    assert ipasser(inbox, i) == inbox[i]
    assert npasser(inbox, n) == inbox[:n]
    assert npasser(inbox) == inbox


@pytest.mark.timeout(30)
@given(inbox_and_indices())
def test_spasser_keeps_the_order_of_s(case):
    inbox, s = case
    assert spasser(inbox, s) == tuple(inbox[i] for i in s)
    assert spasser(inbox) == inbox


@pytest.mark.timeout(30)
@given(inbox_and_indices(element=st.lists(st.integers(), max_size=4)))
def test_zippers(case):
    inbox, s = case
    assert nzipper(inbox) == tuple(zip(*inbox, strict=False))
    assert nzipper(inbox, 2) == tuple(zip(*inbox[:2], strict=False))
    assert szipper(inbox, s) == tuple(zip(*(inbox[i] for i in s), strict=False))
    assert szipper(inbox) == nzipper(inbox)


@pytest.mark.timeout(10)
def test_zippers_by_example():
    inbox = ([1, 2, 3], "abc", (True, False, None))
    assert nzipper(inbox) == ((1, "a", True), (2, "b", False), (3, "c", None))
    assert szipper(inbox, (2, 0)) == ((True, 1), (False, 2), (None, 3))
    with pytest.raises(TypeError, match="input 1 is a int"):
        nzipper(([1], 5))


@pytest.mark.timeout(30)
@given(inbox_and_indices(element=st.text(max_size=5)), st.text(max_size=3))
def test_joiners(case, join):
    inbox, s = case
    assert njoiner(inbox) == "".join(inbox)
    assert njoiner(inbox, 2, join) == join.join(inbox[:2])
    assert sjoiner(inbox, s, join) == join.join(inbox[i] for i in s)
    assert sjoiner(inbox, join=join) == join.join(inbox)


@pytest.mark.timeout(10)
def test_joiners_bytes_and_mixed():
    assert njoiner((b"a", bytearray(b"b")), join=b"-") == b"a-b"
    with pytest.raises(TypeError, match="input 1 is bytes"):
        njoiner(("a", b"b"))
    with pytest.raises(TypeError, match="join"):
        sjoiner(("a",), join=5)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ipasser((1,), 1), IndexError, "i=1"),
        (lambda: ipasser((1,), "0"), TypeError, "i must be an int"),
        (lambda: npasser((1,), -1), ValueError, "n must be"),
        (lambda: npasser("ab"), TypeError, "inbox must be a sequence"),
        (lambda: spasser((1, 2), [2]), IndexError, "index 2"),
        (lambda: spasser((1, 2), 1), TypeError, "s must be a sequence"),
        (lambda: szipper(([1],), ["0"]), TypeError, "s must hold ints"),
        (lambda: nzipper(([1],), 1.5), ValueError, "n must be"),
        (lambda: njoiner(5), TypeError, "inbox"),
        (lambda: json_dumps(()), ValueError, "json_dumps: inbox is empty"),
        (lambda: plugger(None), TypeError, "plugger: inbox"),
    ],
)
def test_bad_arguments_name_function_and_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=10,
)


@pytest.mark.timeout(30)
@given(json_values)
def test_json_round_trip(value):
    text = json_dumps((value, "ignored"))
    assert isinstance(text, str) and json.loads(text) == value
    assert json_loads((text,)) == value
    assert json_loads((text.encode(),)) == value


@pytest.mark.timeout(30)
@given(json_values | st.tuples(st.integers(), st.binary()) | st.sets(st.integers()))
def test_pickle_round_trip_with_highest_protocol(value):
    data = pickle_dumps((value,))
    assert data[1] == pickle.HIGHEST_PROTOCOL  # the PROTO opcode's argument
    assert pickle_loads((data,)) == value


@pytest.mark.timeout(10)
def test_plugger_and_print(capsys):
    assert plugger((1, 2)) is None
    assert plugger(()) is None
    assert print_(("shown", "not shown")) is None
    assert capsys.readouterr().out == "shown\n"
