"""Hypothesis properties of DictGraph over random graphs.

Every expected value here is computed independently of papy.graph, by
breadth-first search over the edge list the test itself generated.
"""

import pickle
from collections import Counter, deque
from functools import cmp_to_key

import pytest
from hypothesis import given
from hypothesis import strategies as st
from papy.graph import DictGraph, GraphError

MAX_NODES = 12
LABELS = st.one_of(st.none(), st.integers(0, 3), st.sampled_from(["a", "b"]))


@st.composite
def dags(draw, labels=LABELS):
    """A random DAG: edges go from a higher to a lower position, and nodes
    are added to the graph in a random order with random branch labels."""
    count = draw(st.integers(0, MAX_NODES))
    order = draw(st.permutations(range(count)))
    pairs = [(i, j) for i in range(count) for j in range(i)]
    edges = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    graph = DictGraph(nodes=order, edges=edges)
    for node in order:
        graph[node].branch = draw(labels)
    return graph, edges


@st.composite
def digraphs(draw):
    """A random directed graph, cycles and self-loops allowed."""
    count = draw(st.integers(1, MAX_NODES))
    node = st.integers(0, count - 1)
    edges = draw(st.lists(st.tuples(node, node), unique=True))
    return DictGraph(nodes=range(count), edges=edges), edges


def targets_of(edges, nodes):
    targets = {node: [] for node in nodes}
    for source, target in edges:
        targets[source].append(target)
    return targets


def reachable(edges, nodes, start):
    """Nodes reachable from start through one or more edges (BFS)."""
    targets = targets_of(edges, nodes)
    seen = set()
    queue = deque(targets[start])
    while queue:
        node = queue.popleft()
        if node not in seen:
            seen.add(node)
            queue.extend(targets[node])
    return seen


def has_cycle(edges, nodes):
    return any(node in reachable(edges, nodes, node) for node in nodes)


def is_postorder(order, graph):
    position = {node: index for index, node in enumerate(order)}
    return all(
        position[target] < position[source]
        for source, topo in graph.items()
        for target in topo
    )


@pytest.mark.timeout(20)
@given(dags())
def test_postorder_puts_every_node_after_its_targets(case):
    graph, _ = case
    order = graph.postorder()
    assert Counter(order) == Counter(graph.nodes())
    assert is_postorder(order, graph)
    assert graph.postorder() == order


@pytest.mark.timeout(20)
@given(dags())
def test_postorder_keeps_chains_together(case):
    graph, edges = case
    order = graph.postorder()
    incoming = Counter(target for _, target in edges)
    for source, target in edges:
        if len(graph[source]) == 1 and incoming[target] == 1:
            assert order.index(source) == order.index(target) + 1


@pytest.mark.timeout(20)
@given(dags())
def test_postorder_keeps_private_subtrees_contiguous(case):
    graph, edges = case
    order = graph.postorder()
    for head in graph:
        block = reachable(edges, graph, head) | {head}
        private = all(
            source in block for source, target in edges if target in block - {head}
        )
        if private:
            positions = sorted(order.index(node) for node in block)
            assert positions == list(range(positions[0], positions[0] + len(block)))
            assert order[positions[-1]] == head


def independent_rank(graph, node, memo):
    if node not in memo:
        memo[node] = 1 + max(
            (independent_rank(graph, t, memo) for t in graph[node]), default=-1
        )
    return memo[node]


@pytest.mark.timeout(20)
@given(dags())
def test_postorder_starts_sorted_by_branch_then_length_then_insertion(case):
    graph, edges = case
    order = graph.postorder()
    has_incoming = {target for _, target in edges}
    starts = [node for node in graph if node not in has_incoming]
    ranks = {}
    insertion = {node: index for index, node in enumerate(graph)}

    def start_cmp(node1, node2):
        by_branch = graph.cmp_branch(node1, node2)
        if by_branch:
            return by_branch
        length1 = (
            independent_rank(graph, node1, ranks),
            len(reachable(edges, graph, node1)),
            insertion[node1],
        )
        length2 = (
            independent_rank(graph, node2, ranks),
            len(reachable(edges, graph, node2)),
            insertion[node2],
        )
        return (length1 > length2) - (length1 < length2)

    expected = sorted(starts, key=cmp_to_key(start_cmp))
    # A start node is emitted last in its own depth-first search.
    assert sorted(starts, key=order.index) == expected


@pytest.mark.timeout(20)
@given(dags())
def test_inherited_branch_is_min_over_labelled_frontier(case):
    graph, edges = case
    for node in graph:
        if graph[node].branch is not None:
            assert graph.inherited_branch(node) == graph[node].branch
            continue
        labels = [
            graph[other].branch
            for other in reachable(edges, graph, node)
            if graph[other].branch is not None
        ]
        inherited = graph.inherited_branch(node)
        if not labels:
            assert inherited is None
        else:
            assert inherited in labels


@pytest.mark.timeout(20)
@given(digraphs())
def test_deep_nodes_equals_reachability(case):
    graph, edges = case
    for node in graph:
        found = graph.deep_nodes(node)
        assert len(found) == len(set(found))
        assert set(found) == reachable(edges, graph, node)


@pytest.mark.timeout(20)
@given(digraphs())
def test_dfs_visits_exactly_the_reachable_nodes(case):
    graph, edges = case
    for node in graph:
        graph.clear_nodes()
        found = graph.dfs(node)
        assert found[-1] == node
        assert Counter(found) == Counter(reachable(edges, graph, node) | {node})


@pytest.mark.timeout(20)
@given(dags())
def test_dfs_is_a_postorder_on_dags(case):
    graph, _ = case
    graph.clear_nodes()
    found = []
    for node in graph:
        graph.dfs(node, found)
    assert Counter(found) == Counter(graph.nodes())
    assert is_postorder(found, graph)


@pytest.mark.timeout(20)
@given(digraphs())
def test_postorder_and_ranks_refuse_exactly_the_cyclic_graphs(case):
    graph, edges = case
    if has_cycle(edges, graph):
        for method in (graph.postorder, graph.node_rank, graph.rank_width):
            with pytest.raises(GraphError) as caught:
                method()
            cycle = caught.value.cycle
            assert cycle[0] == cycle[-1]
            for source, target in zip(cycle, cycle[1:], strict=False):
                assert (source, target) in edges
    else:
        assert is_postorder(graph.postorder(), graph)


@pytest.mark.timeout(20)
@given(dags())
def test_ranks_obey_their_definition(case):
    graph, _ = case
    ranks = graph.node_rank()
    assert list(ranks) == graph.nodes()
    for node, topo in graph.items():
        if not topo:
            assert ranks[node] == 0
        else:
            assert ranks[node] == 1 + max(ranks[target] for target in topo)


@pytest.mark.timeout(20)
@given(dags())
def test_rank_width_counts_nodes_of_each_rank(case):
    graph, _ = case
    widths = graph.rank_width()
    ranks = graph.node_rank()
    assert widths == dict(Counter(ranks.values()))
    assert list(widths) == list(range(len(widths)))
    assert sum(widths.values()) == len(graph)


@pytest.mark.timeout(20)
@given(digraphs())
def test_node_width_counts_reachable_sinks(case):
    graph, edges = case
    sources = {source for source, _ in edges}
    widths = graph.node_width()
    for node in graph:
        closure = reachable(edges, graph, node) | {node}
        assert widths[node] == len(closure - sources)
    if not has_cycle(edges, graph):
        assert all(width >= 1 for width in widths.values())


@pytest.mark.timeout(20)
@given(digraphs(), st.data())
def test_add_then_delete_edges_round_trips(case, data):
    graph, edges = case
    before = pickle.loads(pickle.dumps(graph))
    count = len(graph)
    fresh = [
        (source, target)
        for source in range(count)
        for target in range(count)
        if (source, target) not in edges
    ]
    new = data.draw(st.lists(st.sampled_from(fresh), unique=True)) if fresh else []
    graph.add_edges(new)
    assert set(graph.edges()) == set(edges) | set(new)
    graph.del_edges(new)
    assert graph == before
    assert set(graph.edges()) == set(edges)


@pytest.mark.timeout(20)
@given(digraphs(), st.data())
def test_delete_node_removes_exactly_its_edges(case, data):
    graph, edges = case
    victim = data.draw(st.sampled_from(graph.nodes()))
    assert graph.del_node(victim) is True
    assert victim not in graph
    assert set(graph.edges()) == {edge for edge in edges if victim not in edge}
    for topo in graph.values():
        assert victim not in topo
    graph.add_node(victim)
    graph.add_edges([edge for edge in edges if victim in edge])
    assert set(graph.edges()) == set(edges)


@pytest.mark.timeout(20)
@given(digraphs())
def test_pickle_round_trip(case):
    graph, _ = case
    copy = pickle.loads(pickle.dumps(graph))
    assert copy == graph
    assert copy.edges() == graph.edges()
    for topo in copy.values():
        for target, target_topo in topo.items():
            assert target_topo is copy[target]


@st.composite
def forests(draw):
    """A random DAG in which every node has at most one incoming edge, so the
    nodes each node's edges lead to head disjoint subtrees."""
    count = draw(st.integers(1, MAX_NODES))
    edges = []
    for child in range(1, count):
        parent = draw(st.one_of(st.none(), st.integers(0, child - 1)))
        if parent is not None:
            edges.append((parent, child))
    order = draw(st.permutations(range(count)))
    graph = DictGraph(nodes=order, edges=edges)
    for node in order:
        graph[node].branch = draw(LABELS)
    return graph, edges


@pytest.mark.timeout(20)
@given(forests())
def test_postorder_sorts_subtrees_by_branch_then_length_then_insertion(case):
    graph, edges = case
    order = graph.postorder()
    ranks = {}
    insertion = {node: index for index, node in enumerate(graph)}

    def length(node):
        return (
            independent_rank(graph, node, ranks),
            len(reachable(edges, graph, node)),
            insertion[node],
        )

    def subtree_cmp(node1, node2):
        by_branch = graph.cmp_branch(node1, node2)
        if by_branch:
            return by_branch
        return (length(node1) > length(node2)) - (length(node1) < length(node2))

    for node, topo in graph.items():
        expected = sorted(topo, key=cmp_to_key(subtree_cmp))
        assert sorted(topo, key=order.index) == expected
        block = reachable(edges, graph, node) | {node}
        positions = sorted(order.index(each) for each in block)
        assert positions == list(range(positions[0], positions[0] + len(block)))
