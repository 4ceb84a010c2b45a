"""cmp_branch and the total order over branch labels of any type."""

import math
from decimal import Decimal
from fractions import Fraction
from functools import cmp_to_key

import pytest
from hypothesis import given
from hypothesis import strategies as st
from papy.graph import DictGraph


class Opaque:
    """A label type with no ordering of its own."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"Opaque({self.name!r})"


LABELS = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-5, 5),
        st.floats(allow_nan=True, allow_infinity=True),
        st.fractions(max_denominator=5),
        st.decimals(allow_nan=True, places=2),
        st.text(max_size=2),
        st.binary(max_size=2),
        st.builds(Opaque, st.sampled_from("xyz")),
        st.frozensets(st.integers(0, 2), max_size=2),
        st.dictionaries(st.integers(0, 2), st.integers(0, 2), max_size=2),
    ),
    lambda inner: st.one_of(st.tuples(inner, inner), st.lists(inner, max_size=2)),
    max_leaves=4,
)


def labelled(labels):
    graph = DictGraph()
    for index, label in enumerate(labels):
        graph.add_node(index, branch=label)
    return graph


@pytest.mark.timeout(5)
def test_cmp_branch_returns_minus_one_zero_one():
    graph = labelled([1, 2, 2, None])
    assert graph.cmp_branch(0, 1) == -1
    assert graph.cmp_branch(1, 0) == 1
    assert graph.cmp_branch(1, 2) == 0
    assert graph.cmp_branch(3, 0) == -1
    assert graph.cmp_branch(3, 3) == 0
    with pytest.raises(KeyError, match="node2"):
        graph.cmp_branch(0, 99)


@pytest.mark.timeout(5)
def test_documented_order_of_mixed_labels():
    labels = ["b", None, (1, "x"), 2.5, math.nan, 1, Opaque("q"), (1, 2), "a"]
    graph = labelled(labels)
    ordered = sorted(graph, key=cmp_to_key(graph.cmp_branch))
    assert [labels[node] for node in ordered][:4] == [None, 1, 2.5, labels[4]]
    rest = [labels[node] for node in ordered][4:]
    # Other labels are grouped by type name: builtins.str < builtins.tuple,
    # and this test module's Opaque type sorts by its module name.
    assert rest.index("a") < rest.index("b")
    assert rest.index((1, 2)) < rest.index((1, "x"))
    assert rest.index("b") < rest.index((1, 2))


@pytest.mark.timeout(5)
def test_numbers_of_different_types_compare_by_value():
    graph = labelled([Decimal("2.5"), Fraction(1, 3), 2, True, 0.5])
    ordered = sorted(graph, key=cmp_to_key(graph.cmp_branch))
    assert ordered == [1, 4, 3, 2, 0]


@pytest.mark.timeout(5)
def test_cmp_branch_uses_inherited_branches():
    graph = DictGraph(edges=[("y1", "x1"), ("y2", "x2")])
    graph["x1"].branch = 2
    graph["x2"].branch = 1
    assert graph.cmp_branch("y1", "y2") == 1
    assert sorted(["y1", "y2"], key=cmp_to_key(graph.cmp_branch)) == ["y2", "y1"]


@pytest.mark.timeout(5)
def test_inherited_branch_on_cycle_terminates():
    graph = DictGraph(edges=[(1, 2), (2, 1), (2, 3)])
    graph[3].branch = "c"
    assert graph.inherited_branch(1) == "c"
    graph[3].branch = None
    assert graph.inherited_branch(1) is None


@pytest.mark.timeout(20)
@given(st.lists(LABELS, min_size=1, max_size=6))
def test_sorting_any_labels_never_raises_and_is_consistent(labels):
    graph = labelled(labels)
    nodes = graph.nodes()
    ordered = sorted(nodes, key=cmp_to_key(graph.cmp_branch))
    for earlier, later in zip(ordered, ordered[1:], strict=False):
        assert graph.cmp_branch(earlier, later) <= 0
    for a in nodes:
        assert graph.cmp_branch(a, a) == 0
        for b in nodes:
            assert graph.cmp_branch(a, b) == -graph.cmp_branch(b, a)
            for c in nodes:
                if graph.cmp_branch(a, b) <= 0 and graph.cmp_branch(b, c) <= 0:
                    assert graph.cmp_branch(a, c) <= 0


@pytest.mark.timeout(20)
@given(st.lists(LABELS, min_size=1, max_size=6))
def test_postorder_with_any_labels_never_raises(labels):
    graph = labelled(labels)
    for index in range(1, len(labels)):
        graph.add_edge((index, index - 1) if index % 2 else (0, index))
    order = graph.postorder()
    assert sorted(order) == sorted(graph)
