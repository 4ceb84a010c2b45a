"""Regressions from review 16: flat pickling and deep-copying of long chains,
node_width memory on chains, argument names in the errors for unhashable
node objects, and branch labels that contain themselves."""

import copy
import pickle
import tracemalloc

import pytest
from papy.graph import DictGraph, DictNode

LONG_CHAIN = 100_000


def chain(n):
    return DictGraph(edges=[(i, i + 1) for i in range(n)])


def assert_same_topology(copied, graph):
    assert copied == graph
    assert copied.edges() == graph.edges()
    for topo in copied.values():
        for target, target_topo in topo.items():
            assert target_topo is copied[target]


# -- pickle and deepcopy ------------------------------------------------------


@pytest.mark.timeout(60)
def test_pickle_of_a_long_chain_does_not_recurse():
    graph = chain(LONG_CHAIN)
    copied = pickle.loads(pickle.dumps(graph))
    assert_same_topology(copied, graph)


@pytest.mark.timeout(60)
def test_deepcopy_of_a_long_chain_does_not_recurse():
    graph = chain(LONG_CHAIN)
    copied = copy.deepcopy(graph)
    assert_same_topology(copied, graph)
    assert copied[0] is not graph[0]


class LabelledGraph(DictGraph):
    """A subclass with an instance attribute and its own constructor, as a
    Dagger has."""

    def __init__(self, label):
        super().__init__()
        self.label = label


def labelled_graph():
    graph = LabelledGraph("mine")
    graph.add_node("a", xtra={"k": [1, 2]}, branch=("x", 1))
    graph.add_edges([("a", "b"), ("b", "c"), ("c", "a"), ("a", "c")])
    graph["b"].discovered = True
    graph["c"].note = "an attribute of my own"
    return graph


def assert_same_labelled_graph(copied, graph):
    assert type(copied) is LabelledGraph
    assert copied.label == "mine"
    assert_same_topology(copied, graph)
    assert list(copied["a"]) == ["b", "c"]
    assert copied["a"].branch == ("x", 1)
    assert copied["a"].xtra == {"k": [1, 2]}
    assert copied["a"].entity == "a"
    assert copied["b"].discovered is True
    assert copied["c"].note == "an attribute of my own"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_pickle_keeps_subclass_attributes_and_node_attributes(protocol):
    graph = labelled_graph()
    copied = pickle.loads(pickle.dumps(graph, protocol))
    assert_same_labelled_graph(copied, graph)


@pytest.mark.timeout(10)
def test_deepcopy_keeps_attributes_and_copies_xtra():
    graph = labelled_graph()
    copied = copy.deepcopy(graph)
    assert_same_labelled_graph(copied, graph)
    copied["a"].xtra["k"].append(3)
    assert graph["a"].xtra == {"k": [1, 2]}


class Task:
    """A node object that deepcopy copies (it is not atomic)."""


@pytest.mark.timeout(10)
def test_pickle_and_deepcopy_keep_node_objects_shared():
    node = Task()
    graph = DictGraph(edges=[(node, "b")])
    graph[node].entity = node
    for copied_graph, copied_node in (
        pickle.loads(pickle.dumps((graph, node))),
        copy.deepcopy((graph, node)),
    ):
        assert isinstance(copied_node, Task) and copied_node is not node
        assert copied_graph[copied_node].entity is copied_node
        assert next(iter(copied_graph)) is copied_node


@pytest.mark.timeout(10)
def test_deepcopy_maps_the_dictnodes_of_the_graph():
    graph = DictGraph(edges=[(1, 2)])
    copied_graph, copied_topo = copy.deepcopy((graph, graph[2]))
    assert copied_topo is copied_graph[2] is copied_graph[1][2]


@pytest.mark.timeout(10)
def test_shallow_copy_shares_the_dictnodes():
    graph = DictGraph(edges=[(1, 2)])
    shallow = copy.copy(graph)
    assert type(shallow) is DictGraph
    assert shallow[1] is graph[1] and shallow[2] is graph[2]


@pytest.mark.timeout(10)
def test_dictnode_alone_still_pickles_with_its_edges():
    graph = DictGraph(edges=[(1, 2), (2, 3)])
    topo = pickle.loads(pickle.dumps(graph[1]))
    assert isinstance(topo, DictNode)
    assert topo.entity == 1
    assert list(topo[2]) == [3]


# -- node_width memory ----------------------------------------------------------

WIDTH_CHAIN = 20_000
WIDTH_PEAK_BYTES = 20_000_000  # old code: about 80 MB (sink last), 30 MB (first)


def peak_bytes_of_node_width(graph):
    tracemalloc.start()
    try:
        widths = graph.node_width()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return widths, peak


@pytest.mark.timeout(60)
@pytest.mark.parametrize("sink_inserted", ["last", "first"])
def test_node_width_of_a_chain_takes_little_memory(sink_inserted):
    if sink_inserted == "last":
        graph = DictGraph(edges=[(i, i + 1) for i in range(WIDTH_CHAIN)])
    else:
        graph = DictGraph(edges=[(i + 1, i) for i in range(WIDTH_CHAIN)])
    widths, peak = peak_bytes_of_node_width(graph)
    assert widths == dict.fromkeys(graph, 1)
    assert list(widths) == list(graph)
    assert peak < WIDTH_PEAK_BYTES


@pytest.mark.timeout(60)
def test_node_width_of_a_fan_out_takes_little_memory():
    graph = DictGraph(edges=[("root", i) for i in range(WIDTH_CHAIN)])
    widths, peak = peak_bytes_of_node_width(graph)
    assert widths["root"] == WIDTH_CHAIN
    assert peak < WIDTH_PEAK_BYTES


@pytest.mark.timeout(10)
def test_node_width_counts_shared_sinks_once():
    graph = DictGraph(
        edges=[("top", "l"), ("top", "r"), ("l", "s1"), ("r", "s1"), ("r", "s2")]
    )
    graph.add_node("alone")
    assert graph.node_width() == {
        "top": 2,
        "l": 1,
        "r": 2,
        "s1": 1,
        "s2": 1,
        "alone": 1,
    }


# -- errors for unhashable node objects ----------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "call",
    [
        lambda graph: graph.del_nodes([1, [2]]),
        lambda graph: graph.edges(nodes=[1, [2]]),
        lambda graph: graph.add_nodes([1, [2]]),
    ],
    ids=["del_nodes", "edges", "add_nodes"],
)
def test_unhashable_node_in_a_list_names_the_argument(call):
    graph = DictGraph(edges=[(1, 2)])
    with pytest.raises(TypeError, match=r"nodes\[1\] must be hashable"):
        call(graph)
    assert graph.edges() == ((1, 2),)


# -- self-containing branch labels ------------------------------------------------


@pytest.mark.timeout(10)
def test_postorder_with_a_self_containing_list_label_does_not_raise():
    label = []
    label.append(label)
    graph = DictGraph(edges=[("r", "x"), ("r", "y")])
    graph["x"].branch = label
    graph["y"].branch = [1]
    # The inner reference sorts as an empty list, after the number 1.
    assert graph.postorder() == ["y", "x", "r"]
    assert graph.cmp_branch("x", "y") == 1
    assert graph.cmp_branch("x", "x") == 0


@pytest.mark.timeout(10)
def test_labels_containing_themselves_through_a_tuple_sort():
    inner = []
    label = (inner,)
    inner.append(label)
    graph = DictGraph(edges=[("r", "x"), ("r", "y")])
    graph["x"].branch = ([1],)
    graph["y"].branch = label
    assert graph.postorder() == ["x", "y", "r"]
    assert graph.cmp_branch("y", "y") == 0
