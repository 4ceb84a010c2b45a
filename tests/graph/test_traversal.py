"""Traversal and ordering: deep_nodes, dfs, postorder, ranks and widths."""

from collections import deque

import pytest
from papy.graph import DictGraph, GraphError


def diamond():
    # D depends on B and C, which both depend on A.
    return DictGraph(edges=[("D", "B"), ("D", "C"), ("B", "A"), ("C", "A")])


@pytest.mark.timeout(5)
def test_deep_nodes_is_reachability():
    graph = diamond()
    assert graph.deep_nodes("D") == ["B", "A", "C"]
    assert graph.deep_nodes("A") == []
    with pytest.raises(KeyError):
        graph.deep_nodes("Z")


@pytest.mark.timeout(5)
def test_deep_nodes_includes_self_only_on_cycle():
    graph = DictGraph(edges=[(1, 2), (2, 1), (2, 3)])
    assert graph.deep_nodes(1) == [2, 1, 3]


@pytest.mark.timeout(5)
def test_dictnode_deep_nodes_with_allnodes():
    graph = diamond()
    found = ["B"]
    result = graph["D"].deep_nodes(found)
    assert result is found
    assert found == ["B", "C", "A"]


@pytest.mark.timeout(5)
def test_dfs_postorder_and_bucket():
    graph = diamond()
    assert graph.dfs("D") == ["A", "B", "C", "D"]
    graph.clear_nodes()
    bucket = deque()
    assert graph.dfs("D", bucket, "appendleft") is bucket
    assert list(bucket) == ["D", "C", "B", "A"]


@pytest.mark.timeout(5)
def test_dfs_continues_until_clear_nodes():
    graph = diamond()
    assert graph.dfs("B") == ["A", "B"]
    assert graph.dfs("D") == ["C", "D"]
    assert all(topo.discovered and topo.examined for topo in graph.values())
    graph.clear_nodes()
    assert not any(topo.discovered or topo.examined for topo in graph.values())
    assert graph.dfs("D") == ["A", "B", "C", "D"]


@pytest.mark.timeout(5)
def test_dfs_on_cycle_visits_each_node_once():
    graph = DictGraph(edges=[(1, 2), (2, 3), (3, 1)])
    assert graph.dfs(1) == [3, 2, 1]


@pytest.mark.timeout(5)
def test_dfs_bad_arguments():
    graph = diamond()
    with pytest.raises(KeyError):
        graph.dfs("Z")
    with pytest.raises(ValueError, match="order='appendleft' is not a method"):
        graph.dfs("D", [], "appendleft")
    with pytest.raises(TypeError, match="order must be a method name"):
        graph.dfs("D", [], None)


@pytest.mark.timeout(5)
def test_dfs_long_chain_has_no_recursion_limit():
    chain = DictGraph(edges=[(i + 1, i) for i in range(5000)])
    assert chain.dfs(5000) == list(range(5001))
    assert chain.postorder() == list(range(5001))
    assert chain.deep_nodes(5000) == list(range(4999, -1, -1))


@pytest.mark.timeout(5)
def test_dictnode_clear_keeps_edges():
    graph = diamond()
    graph.dfs("D")
    graph["D"].clear()
    assert not graph["D"].discovered
    assert not graph["D"].examined
    assert graph["D"].nodes() == ["B", "C"]
    assert list(graph["D"].iternodes()) == ["B", "C"]


@pytest.mark.timeout(5)
def test_postorder_diamond_branch_sorts_left_to_right():
    graph = diamond()
    assert graph.postorder() == ["A", "B", "C", "D"]
    graph["B"].branch = 2
    graph["C"].branch = 1
    assert graph.postorder() == ["A", "C", "B", "D"]


@pytest.mark.timeout(5)
def test_postorder_shorter_branch_first():
    # M depends on a chain of three and a chain of one.
    graph = DictGraph(edges=[("M", "a3"), ("a3", "a2"), ("a2", "a1"), ("M", "b1")])
    assert graph.postorder() == ["b1", "a1", "a2", "a3", "M"]


@pytest.mark.timeout(5)
def test_postorder_branch_label_beats_length():
    graph = DictGraph(edges=[("M", "a3"), ("a3", "a2"), ("a2", "a1"), ("M", "b1")])
    graph["a3"].branch = 0
    graph["b1"].branch = 1
    assert graph.postorder() == ["a1", "a2", "a3", "b1", "M"]


@pytest.mark.timeout(5)
def test_postorder_branch_is_inherited_from_dependencies():
    # Data flow P -> X1 -> Y1 and P -> X2 -> Y2 (a fork), stored reversed.
    graph = DictGraph(edges=[("Y2", "X2"), ("X2", "P"), ("Y1", "X1"), ("X1", "P")])
    graph["X1"].branch = "left"
    graph["X2"].branch = "right"
    assert graph.inherited_branch("Y1") == "left"
    assert graph.inherited_branch("P") is None
    assert graph.postorder() == ["P", "X1", "Y1", "X2", "Y2"]
    graph["X1"].branch = "z"
    assert graph.postorder() == ["P", "X2", "Y2", "X1", "Y1"]


@pytest.mark.timeout(5)
def test_postorder_is_deterministic_by_insertion_order():
    graph1 = DictGraph(nodes=["x", "y", "z"])
    graph2 = DictGraph(nodes=["z", "y", "x"])
    assert graph1.postorder() == ["x", "y", "z"]
    assert graph2.postorder() == ["z", "y", "x"]


@pytest.mark.timeout(5)
def test_postorder_resets_flags():
    graph = diamond()
    graph.dfs("D")
    assert graph.postorder() == ["A", "B", "C", "D"]
    assert not any(topo.discovered for topo in graph.values())


@pytest.mark.timeout(5)
def test_postorder_refuses_cycles():
    graph = DictGraph(edges=[(0, 1), (1, 2), (2, 3), (3, 1)])
    with pytest.raises(GraphError, match="cycle") as caught:
        graph.postorder()
    assert isinstance(caught.value, ValueError)
    cycle = caught.value.cycle
    assert cycle[0] == cycle[-1]
    assert set(cycle) == {1, 2, 3}
    for source, target in zip(cycle, cycle[1:], strict=False):
        assert target in graph[source]
    assert not any(topo.discovered for topo in graph.values())


@pytest.mark.timeout(5)
def test_self_loop_is_a_cycle():
    graph = DictGraph(edges=[(1, 1)])
    with pytest.raises(GraphError):
        graph.postorder()
    with pytest.raises(GraphError):
        graph.node_rank()
    assert graph.node_width() == {1: 0}


@pytest.mark.timeout(5)
def test_node_rank_longest_path_to_sink():
    graph = DictGraph(edges=[("D", "B"), ("D", "A"), ("B", "A")], nodes=["E"])
    assert graph.node_rank() == {"E": 0, "D": 2, "B": 1, "A": 0}


@pytest.mark.timeout(5)
def test_node_width_counts_reachable_sinks():
    graph = DictGraph(edges=[("J", "X"), ("J", "Y"), ("X", "I1"), ("Y", "I2")])
    graph.add_edge(("Y", "I1"))
    assert graph.node_width() == {"J": 2, "X": 1, "Y": 2, "I1": 1, "I2": 1}


@pytest.mark.timeout(5)
def test_rank_width_counts_nodes_per_rank():
    graph = diamond()
    assert graph.rank_width() == {0: 1, 1: 2, 2: 1}
    assert DictGraph().rank_width() == {}
    with pytest.raises(GraphError):
        DictGraph(edges=[(1, 2), (2, 1)]).rank_width()


@pytest.mark.timeout(5)
def test_postorder_of_a_dagger_like_pipeline():
    # Data flow: src -> {c1 -> c2, a1 -> a2, b1 -> b2} -> merge -> out, with
    # branch labels only on the first piper after the fork. A Dagger stores
    # each pipe reversed (downstream -> upstream).
    pipes = [
        ("src", "c1", "c2", "merge"),
        ("src", "a1", "a2", "merge"),
        ("src", "b1", "b2", "merge"),
        ("merge", "out"),
    ]
    graph = DictGraph()
    for pipe in pipes:
        for upstream, downstream in zip(pipe, pipe[1:], strict=False):
            graph.add_edge((downstream, upstream))
    for first, label in (("c1", "c"), ("a1", "a"), ("b1", "b")):
        graph[first].branch = label
    expected = ["src", "a1", "a2", "b1", "b2", "c1", "c2", "merge", "out"]
    assert graph.postorder() == expected
    assert [graph.inherited_branch(p) for p in ("a2", "b2", "c2")] == ["a", "b", "c"]
    assert graph.node_rank()["out"] == 4
    assert graph.node_width() == dict.fromkeys(graph, 1)
    assert graph.rank_width() == {0: 1, 1: 3, 2: 3, 3: 1, 4: 1}
