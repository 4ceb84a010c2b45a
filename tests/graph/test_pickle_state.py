"""Regressions from the review of the flat pickled form (review 16
follow-up): a subclass's own ``__getstate__``/``__setstate__`` and
``__slots__``, DictNodes referenced from outside the graph or from xtras,
and pickles written before the flat form."""

import copy
import copyreg
import io
import pickle
import threading

import pytest
from papy.graph import DictGraph, DictNode

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)


def pickled(value, protocol=pickle.DEFAULT_PROTOCOL):
    return pickle.loads(pickle.dumps(value, protocol))


class Locked(DictGraph):
    """A subclass that leaves its lock out of its state, as a graph guarded
    by a lock would."""

    def __init__(self):
        super().__init__()
        self.lock = threading.Lock()
        self.name = "guarded"

    def __getstate__(self):
        state = vars(self).copy()
        del state["lock"]
        return state

    def __setstate__(self, state):
        vars(self).update(state)
        self.lock = threading.Lock()


def locked_graph():
    graph = Locked()
    graph.add_edges([(1, 2), (2, 3)])
    return graph


def assert_same_locked_graph(copied, graph):
    assert type(copied) is Locked
    assert copied.edges() == graph.edges() == ((1, 2), (2, 3))
    assert copied[1][2] is copied[2]
    assert copied.name == "guarded"
    assert copied.lock is not graph.lock


@pytest.mark.timeout(10)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pickle_goes_through_the_subclass_state_methods(protocol):
    graph = locked_graph()
    assert_same_locked_graph(pickled(graph, protocol), graph)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("duplicate", [copy.deepcopy, copy.copy])
def test_copies_go_through_the_subclass_state_methods(duplicate):
    graph = locked_graph()
    assert_same_locked_graph(duplicate(graph), graph)


class Slotted(DictGraph):
    __slots__ = ("label",)


class SlottedNode(DictNode):
    __slots__ = ("weight",)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "duplicate",
    [pickled, copy.deepcopy, copy.copy],
    ids=["pickle", "deepcopy", "copy"],
)
def test_slots_of_graph_and_node_subclasses_are_kept(duplicate):
    graph = Slotted(edges=[(1, 2)])
    graph.label = "L"
    graph[3] = SlottedNode(3)
    graph[3].weight = 7
    graph.add_edge((2, 3))
    copied = duplicate(graph)
    assert copied.label == "L"
    assert type(copied[3]) is SlottedNode
    assert copied[3].weight == 7
    assert copied[2][3] is copied[3]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_pickle_keeps_a_dictnode_listed_after_its_graph(protocol):
    graph = DictGraph(edges=[(1, 2)])
    copied_graph, copied_topo = pickled([graph, graph[1]], protocol)
    assert copied_topo is copied_graph[1]
    assert copied_graph[1][2] is copied_graph[2]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("duplicate", [pickled, copy.deepcopy])
def test_a_dictnode_listed_before_its_graph_stays_the_graphs(duplicate):
    graph = DictGraph(edges=[(1, 2), (2, 3)])
    graph.add_node(4)
    copied_topo, copied_graph = duplicate([graph[1], graph])
    assert copied_topo is copied_graph[1]
    assert copied_graph.edges() == graph.edges()
    assert copied_graph[1][2] is copied_graph[2]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("duplicate", [pickled, copy.deepcopy])
def test_a_dictnode_in_an_xtra_stays_the_graphs(duplicate):
    graph = DictGraph(edges=[(1, 2)])
    graph[1].xtra["peer"] = graph[2]
    copied = duplicate(graph)
    assert copied[1].xtra["peer"] is copied[2]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("duplicate", [pickled, copy.deepcopy])
def test_graphs_sharing_dictnodes_still_share_them(duplicate):
    # The shallow copy is pickled while the first graph's DictNodes are
    # being pickled, and shares them.
    graph = DictGraph(edges=[(1, 2), (2, 3)])
    graph[1].xtra["other"] = copy.copy(graph)
    copied = duplicate(graph)
    other = copied[1].xtra["other"]
    assert all(other[node] is copied[node] for node in graph)
    assert copied.edges() == other.edges() == graph.edges()


@pytest.mark.timeout(10)
def test_a_failed_pickle_leaves_dictnodes_pickling_with_their_edges():
    # Not a regression: the DictNodes pickle bare only while a graph is
    # writing them, even if that fails on a node object that cannot pickle.
    unpicklable = threading.Lock()
    graph = DictGraph(edges=[(1, 2), (2, 3), (3, unpicklable)])
    with pytest.raises(TypeError, match="lock"):
        pickle.dumps(graph)
    graph.del_node(unpicklable)
    topo = pickled(graph[1])
    assert topo.entity == 1
    assert list(topo[2]) == [3]


class DefaultFormPickler(pickle.Pickler):
    """Pickles a graph in the form pickle gave any dict subclass, the form
    of graphs pickled before the flat one."""

    def reducer_override(self, obj):
        if isinstance(obj, DictGraph):
            make = copyreg.__newobj__
            return (make, (type(obj),), vars(obj) or None, None, iter(obj.items()))
        return NotImplemented


@pytest.mark.timeout(10)
def test_graphs_pickled_in_the_old_form_still_load():
    graph = DictGraph(edges=[(1, 2)])
    graph.note = "kept"
    stream = io.BytesIO()
    DefaultFormPickler(stream).dump(graph)
    loaded = pickle.loads(stream.getvalue())
    assert loaded.edges() == ((1, 2),)
    assert loaded[1][2] is loaded[2]
    assert loaded.note == "kept"


LONG_CHAIN = 100_000


@pytest.mark.timeout(60)
def test_a_long_chain_keeps_its_dictnodes_listed_after_it():
    graph = DictGraph(edges=[(i, i + 1) for i in range(LONG_CHAIN)])
    copied_graph, copied_topos = pickled([graph, list(graph.values())])
    assert copied_graph.edges() == graph.edges()
    assert all(
        topo is copied_graph[node]
        for node, topo in zip(graph, copied_topos, strict=True)
    )


@pytest.mark.timeout(60)
@pytest.mark.parametrize("duplicate", [pickled, copy.deepcopy])
def test_dictnodes_chained_through_xtras_do_not_recurse(duplicate):
    graph = DictGraph(edges=[(i, i + 1) for i in range(LONG_CHAIN)])
    for node in range(LONG_CHAIN):
        graph[node].xtra["next"] = graph[node + 1]
    copied = duplicate(graph)
    assert copied.edges() == graph.edges()
    assert all(copied[n].xtra["next"] is copied[n + 1] for n in range(LONG_CHAIN))


class SeesItsNodes(DictGraph):
    """Records the nodes its __setstate__ finds."""

    def __setstate__(self, state):
        vars(self).update(state or {})
        self.nodes_seen = sorted(self)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "duplicate",
    [
        copy.copy,
        copy.deepcopy,
        lambda graph: pickle.loads(pickle.dumps(graph)),
        lambda graph: graph.copy(),
    ],
    ids=["copy", "deepcopy", "pickle", "graph.copy"],
)
def test_a_subclass_setstate_sees_the_nodes_in_place(duplicate):
    graph = SeesItsNodes()
    graph.add_edge((1, 2))
    graph.add_edge((2, 3))
    assert duplicate(graph).nodes_seen == [1, 2, 3]


def pickled_in_python(value):
    """Pickled by the pure-Python pickler, which dill extends: it takes a
    dict's items a thousand at a time ahead of writing them."""
    stream = io.BytesIO()
    pickle._Pickler(stream, pickle.DEFAULT_PROTOCOL).dump(value)
    return pickle.loads(stream.getvalue())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("length", [900, 2500])
def test_the_python_pickler_writes_a_long_chain_flat(length):
    # Regression: the DictNodes pickled bare only until pickle had taken
    # the last item, so those it had taken ahead were written nested.
    graph = DictGraph(edges=[(i, i + 1) for i in range(length)])
    copied = pickled_in_python(graph)
    assert copied.edges() == graph.edges()
    assert all(copied[i][i + 1] is copied[i + 1] for i in range(length))


@pytest.mark.timeout(60)
def test_dill_pickles_a_long_chain():
    dill = pytest.importorskip("dill")
    graph = DictGraph(edges=[(i, i + 1) for i in range(2500)])
    copied = dill.loads(dill.dumps(graph))
    assert copied.edges() == graph.edges()


@pytest.mark.timeout(10)
def test_dictnodes_pickle_with_their_edges_once_the_graph_is_written():
    graph = DictGraph(edges=[(1, 2), (2, 3)])
    pickled_in_python(graph)
    pickle.dumps(graph)
    topo = pickled(graph[1])
    assert list(topo[2]) == [3]


class RefusesPickling:
    """Any pickler fails on it (dill pickles even a lock)."""

    def __reduce__(self):
        raise TypeError("this object cannot be pickled")


@pytest.mark.timeout(10)
def test_a_failed_python_pickle_leaves_no_dictnode_bare_while_its_error_lives():
    # Regression: the DictNodes stayed bare until the items iterator went,
    # which the kept traceback of a failure while writing the graph's
    # state (an xtra that does not pickle) held: a DictNode pickled alone
    # meanwhile lost its edges.
    graph = DictGraph(nodes=["w"], edges=[("x", "y")])
    graph["x"].xtra = {"note": 1}
    graph["w"].xtra = {"refuses": RefusesPickling()}
    with pytest.raises(TypeError) as kept:
        pickled_in_python(graph)
    assert kept.value.__traceback__ is not None
    lone = pickled(graph["x"])
    assert list(lone) == ["y"]
    assert lone.xtra == {"note": 1}
