"""Adding, deleting and listing nodes and edges of a DictGraph."""

import copy as copy_module
import pickle

import pytest
from papy.graph import DictGraph, DictNode


@pytest.mark.timeout(5)
def test_empty_graph():
    graph = DictGraph()
    assert graph == {}
    assert graph.nodes() == []
    assert graph.edges() == ()
    assert graph.postorder() == []


@pytest.mark.timeout(5)
def test_constructor_adds_nodes_with_xtras_then_edges():
    graph = DictGraph(nodes=["a", "b"], edges=[("a", "c")], xtras=[{"k": 1}, None])
    assert graph.nodes() == ["a", "b", "c"]
    assert graph["a"].xtra == {"k": 1}
    assert graph["b"].xtra == {}
    assert graph.edges() == (("a", "c"),)


@pytest.mark.timeout(5)
def test_add_node_returns_true_only_when_new():
    graph = DictGraph()
    assert graph.add_node("a", xtra={"x": 1}, branch=3) is True
    assert graph.add_node("a", xtra={"x": 2}, branch=4) is False
    assert graph["a"].xtra == {"x": 1}
    assert graph["a"].branch == 3
    assert isinstance(graph["a"], DictNode)
    assert graph["a"].entity == "a"


@pytest.mark.timeout(5)
def test_add_node_copies_xtra():
    xtra = {"k": [1]}
    graph = DictGraph()
    graph.add_node("a", xtra)
    xtra["new"] = 2
    assert graph["a"].xtra == {"k": [1]}


@pytest.mark.timeout(5)
def test_add_node_rejects_unhashable_and_bad_xtra():
    graph = DictGraph()
    with pytest.raises(TypeError, match="node must be hashable"):
        graph.add_node(["list"])
    with pytest.raises(TypeError, match="xtra must be a dict"):
        graph.add_node("a", xtra=[1, 2])
    assert graph == {}


@pytest.mark.timeout(5)
def test_add_nodes_all_or_no_xtras():
    graph = DictGraph()
    graph.add_nodes(iter([1, 2, 3]))
    assert graph.nodes() == [1, 2, 3]
    graph.add_nodes([4, 5], xtras=[{"a": 1}, {"b": 2}])
    assert graph[5].xtra == {"b": 2}
    with pytest.raises(ValueError, match="xtras must have one xtra dict for each node"):
        graph.add_nodes([6, 7], xtras=[{}])
    assert 6 not in graph


@pytest.mark.timeout(5)
def test_add_nodes_bad_arguments_add_nothing():
    graph = DictGraph()
    with pytest.raises(TypeError, match="nodes must be an iterable"):
        graph.add_nodes("abc")
    with pytest.raises(TypeError, match="nodes must be an iterable"):
        graph.add_nodes(5)
    with pytest.raises(TypeError, match=r"nodes\[1\] must be hashable"):
        graph.add_nodes(["a", {}])
    with pytest.raises(TypeError, match=r"xtras\[0\] must be a dict"):
        graph.add_nodes(["a"], xtras=[5])
    with pytest.raises(TypeError, match="xtras must be an iterable"):
        graph.add_nodes(["a"], xtras={"k": 1})
    assert graph == {}


@pytest.mark.timeout(5)
def test_add_edge_creates_nodes_and_shares_dictnodes():
    graph = DictGraph()
    graph.add_edge(("a", "b"))
    assert graph.nodes() == ["a", "b"]
    assert graph["a"]["b"] is graph["b"]
    assert "a" not in graph["b"]
    graph.add_edge(["b", "c"], double=True)
    assert graph["b"]["c"] is graph["c"]
    assert graph["c"]["b"] is graph["b"]


@pytest.mark.timeout(5)
def test_add_edge_is_idempotent():
    graph = DictGraph(edges=[(1, 2), (1, 2)])
    assert graph.edges() == ((1, 2),)


@pytest.mark.parametrize(
    ("edge", "error", "message"),
    [
        ("ab", TypeError, "edge must be an ordered pair"),
        (5, TypeError, "edge must be an ordered pair"),
        ({1, 2}, TypeError, "edge must be an ordered pair"),
        ({1: 2, 3: 4}, TypeError, "edge must be an ordered pair"),
        ((1, 2, 3), ValueError, "got 3 item"),
        ((1,), ValueError, "got 1 item"),
        (([1], 2), TypeError, r"edge\[0\] must be hashable"),
    ],
)
@pytest.mark.timeout(5)
def test_add_edge_rejects_non_pairs(edge, error, message):
    graph = DictGraph()
    with pytest.raises(error, match=message):
        graph.add_edge(edge)
    assert graph == {}


@pytest.mark.timeout(5)
def test_add_edges_checks_every_edge_first():
    graph = DictGraph()
    with pytest.raises(ValueError, match=r"edges\[1\] must be a pair"):
        graph.add_edges([(1, 2), (3, 4, 5)])
    assert graph == {}
    graph.add_edges([(1, 2), (2, 3)], double=True)
    assert set(graph.edges()) == {(1, 2), (2, 1), (2, 3), (3, 2)}
    graph2 = DictGraph()
    graph2.add_edges([(1, 2)], True)
    assert set(graph2.edges()) == {(1, 2), (2, 1)}


@pytest.mark.timeout(5)
def test_edges_may_be_one_shot_iterators():
    graph = DictGraph()
    graph.add_edges(iter(pair) for pair in [(1, 2), (2, 3)])
    assert graph.edges() == ((1, 2), (2, 3))
    graph.del_edges(iter(pair) for pair in [(1, 2)])
    assert graph.edges() == ((2, 3),)


@pytest.mark.timeout(5)
def test_copy_has_independent_topology():
    graph = DictGraph(edges=[(1, 2), (2, 3)])
    graph[2].branch = "b"
    graph[2].xtra["k"] = "v"
    graph.note = "kept"
    duplicate = graph.copy()
    assert type(duplicate) is DictGraph
    assert duplicate == graph
    assert duplicate.note == "kept"
    assert duplicate[1][2] is duplicate[2]
    assert duplicate[2] is not graph[2]
    duplicate.add_edge((3, 1))
    duplicate[2].xtra["k"] = "changed"
    assert graph.edges() == ((1, 2), (2, 3))
    assert graph[2].xtra == {"k": "v"}


@pytest.mark.timeout(5)
def test_del_node_removes_incident_edges():
    graph = DictGraph(edges=[(1, 2), (2, 3), (3, 2), (4, 2), (2, 2)])
    assert graph.del_node(2) is True
    assert graph.nodes() == [1, 3, 4]
    assert graph.edges() == ()


@pytest.mark.timeout(5)
def test_del_node_without_edges_returns_true():
    graph = DictGraph(nodes=["lonely"])
    assert graph.del_node("lonely") is True
    assert graph == {}


@pytest.mark.timeout(5)
def test_del_node_absent_raises_key_error():
    graph = DictGraph(nodes=[1])
    with pytest.raises(KeyError, match="not in the graph"):
        graph.del_node(2)


@pytest.mark.timeout(5)
def test_del_nodes_is_all_or_nothing():
    graph = DictGraph(edges=[(1, 2), (2, 3)])
    with pytest.raises(KeyError, match="99"):
        graph.del_nodes([1, 99])
    assert graph.nodes() == [1, 2, 3]
    graph.del_nodes([1, 3, 1])
    assert graph.nodes() == [2]
    assert graph.edges() == ()


@pytest.mark.timeout(5)
def test_del_edge_keeps_nodes():
    graph = DictGraph(edges=[(1, 2), (2, 1)])
    graph.del_edge((1, 2))
    assert graph.nodes() == [1, 2]
    assert graph.edges() == ((2, 1),)


@pytest.mark.timeout(5)
def test_del_edge_double_and_missing():
    graph = DictGraph(edges=[(1, 2), (2, 1), (2, 3)])
    graph.del_edge((1, 2), double=True)
    assert graph.edges() == ((2, 3),)
    with pytest.raises(KeyError, match=r"edge \(3, 2\) is not in the graph"):
        graph.del_edge((2, 3), double=True)
    assert graph.edges() == ((2, 3),)
    with pytest.raises(KeyError):
        graph.del_edge((7, 8))
    with pytest.raises(ValueError, match="edge must be a pair"):
        graph.del_edge((2,))


@pytest.mark.timeout(5)
def test_del_edges_all_or_nothing():
    graph = DictGraph(edges=[(1, 2), (2, 3), (3, 4)])
    with pytest.raises(KeyError):
        graph.del_edges([(1, 2), (3, 4), (4, 5)])
    assert graph.edges() == ((1, 2), (2, 3), (3, 4))
    graph.del_edges([(1, 2), (3, 4)])
    assert graph.edges() == ((2, 3),)
    graph.add_edge((3, 2))
    graph.del_edges([(2, 3)], double=True)
    assert graph.edges() == ()


@pytest.mark.timeout(5)
def test_edges_limited_to_nodes():
    graph = DictGraph(edges=[(1, 2), (2, 3), (3, 1)])
    assert graph.edges() == ((1, 2), (2, 3), (3, 1))
    assert graph.edges(nodes=[3, 1]) == ((3, 1), (1, 2))
    assert graph.edges([]) == ()
    with pytest.raises(KeyError, match="nodes includes 9, which is not in the graph"):
        graph.edges([9])


@pytest.mark.timeout(5)
def test_incoming_and_outgoing_edges():
    graph = DictGraph(edges=[(1, 2), (3, 2), (2, 4)])
    assert graph.incoming_edges(2) == ((1, 2), (3, 2))
    assert graph.outgoing_edges(2) == ((2, 4),)
    assert graph.incoming_edges(1) == ()
    assert graph.outgoing_edges(4) == ()
    with pytest.raises(KeyError):
        graph.incoming_edges(9)
    with pytest.raises(KeyError):
        graph.outgoing_edges(9)


@pytest.mark.timeout(5)
def test_iter_nodes_and_nodes():
    graph = DictGraph(nodes=[3, 1, 2])
    iterator = graph.iter_nodes()
    assert next(iterator) == 3
    assert list(iterator) == [1, 2]
    assert graph.nodes() == [3, 1, 2]


@pytest.mark.timeout(5)
def test_arbitrary_hashable_node_objects():
    class Thing:
        pass

    a, b = Thing(), Thing()
    graph = DictGraph(edges=[(a, b), (None, a), ((1, 2), frozenset())])
    assert graph.postorder().index(b) < graph.postorder().index(a)
    assert graph.deep_nodes(None) == [a, b]


@pytest.mark.timeout(5)
def test_equality_compares_nodes_edges_branch_and_xtra():
    graph1 = DictGraph(edges=[(1, 2), (2, 1)])
    graph2 = DictGraph(edges=[(2, 1), (1, 2)])
    assert graph1 == graph2
    assert (graph1 != graph2) is False
    graph2[1].branch = "b"
    assert graph1 != graph2
    graph2[1].branch = None
    graph2[2].xtra["k"] = 1
    assert graph1 != graph2


@pytest.mark.timeout(5)
def test_pickle_round_trip_keeps_shared_dictnodes():
    graph = DictGraph(edges=[(1, 2), (2, 3), (3, 1)], nodes=[0])
    graph[2].branch = "b"
    graph[3].xtra["k"] = "v"
    copy = pickle.loads(pickle.dumps(graph))
    assert copy == graph
    assert copy[1][2] is copy[2]
    assert copy[3][1] is copy[1]
    assert copy[2].branch == "b"
    assert copy[3].xtra == {"k": "v"}


@pytest.mark.timeout(5)
def test_deepcopy_keeps_shared_dictnodes():
    graph = DictGraph(edges=[(1, 2), (2, 3), (3, 1)], nodes=[0])
    graph[2].branch = "b"
    graph[3].xtra["k"] = "v"
    copy = copy_module.deepcopy(graph)
    assert copy == graph
    assert copy[1][2] is copy[2] and copy[2] is not graph[2]
    assert copy[3][1] is copy[1]
    copy[3].xtra["k"] = "changed"
    assert graph[3].xtra == {"k": "v"}


@pytest.mark.timeout(5)
def test_repr_is_flat():
    graph = DictGraph(edges=[(1, 2), (2, 1)])
    assert repr(graph) == "DictGraph(nodes=[1, 2], edges=[(1, 2), (2, 1)])"
    assert repr(graph[1]) == "DictNode(1 -> [2])"
