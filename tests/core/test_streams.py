"""The stream building blocks: consume/produce inverse, spawn keeps order."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from papy.core._streams import Splitter, Tee, Valve, group, merge, unroll, zip_inputs


@pytest.mark.timeout(30)
@given(
    length=st.integers(0, 40),
    n=st.integers(1, 4),
    s=st.integers(1, 5),
)
def test_group_undoes_unroll(length, n, s):
    results = [tuple((i, j) for j in range(n)) for i in range(length)]
    items = list(unroll(iter(results), n, s, lambda r: r))
    assert len(items) == n * length
    rows = iter([(item,) for item in items])
    regrouped = [inbox[0] for inbox in group(rows, n, s)]
    assert regrouped == results


@pytest.mark.timeout(5)
def test_unroll_is_element_wise_per_stride():
    results = ["ab", "cd", "ef", "gh"]
    assert "".join(unroll(iter(results), 2, 3, tuple)) == "acebdfgh"
    assert "".join(unroll(iter(results), 2, 1, tuple)) == "abcdefgh"


@pytest.mark.timeout(30)
@given(length=st.integers(0, 60), k=st.integers(1, 4), s=st.integers(1, 5))
def test_split_then_merge_keeps_order(length, k, s):
    splitter = Splitter(iter(range(length)), k, s)
    views = [splitter.view(t) for t in range(k)]
    # Each view is read in a different interleaving than the merge uses.
    copies = [iter(list(view)) for view in reversed(views)][::-1]
    for t, copy in enumerate(copies):
        blocks = list(copy)
        expected = [i for i in range(length) if (i // s) % k == t]
        assert blocks == expected
    copies = [iter([i for i in range(length) if (i // s) % k == t]) for t in range(k)]
    assert list(merge(lambda t: next(copies[t]), k, s)) == list(range(length))


@pytest.mark.timeout(5)
def test_zip_inputs_ends_with_the_shortest_source_without_reading_ahead():
    longer = iter(range(5))
    assert list(zip_inputs([iter("abc"), longer])) == [("a", 0), ("b", 1), ("c", 2)]
    assert list(longer) == [3, 4]


@pytest.mark.timeout(5)
def test_tee_gives_every_consumer_every_item():
    tee = Tee(range(5), 2)
    first, second = tee.branch(0), tee.branch(1)
    assert next(first) == 0
    assert list(second) == [0, 1, 2, 3, 4]
    assert list(first) == [1, 2, 3, 4]


@pytest.mark.timeout(5)
def test_valve_closes_the_stream():
    valve = Valve(range(100))
    assert next(valve) == 0
    valve.close()
    assert list(valve) == []
