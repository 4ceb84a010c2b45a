"""DictGraph: a directed graph stored as nested dictionaries.

The graph is a dict from node objects to DictNodes; each DictNode is a dict
from the node objects it has edges to, to their DictNodes. An edge
``(a, b)`` therefore lives only as ``graph[a][b] is graph[b]``: there is no
separate list of edges, and every method below keeps that invariant.

Orientation used throughout: an edge points from a node to a node it
depends on. A postorder lists every node after all the nodes its edges lead
to. (A papy Dagger stores pipes this way, downstream -> upstream, so its
postorder lists upstream pipers first.)
"""

from __future__ import annotations

import copy
import copyreg
from collections import Counter, deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any, Self

from ._errors import GraphError
from ._node import DictNode, PickledBare, checked_xtra
from ._order import branch_sort_key, compare_labels

Edge = tuple[Hashable, Hashable]


def _require_hashable(node: Any, argument: str) -> None:
    try:
        hash(node)
    except TypeError:
        raise TypeError(
            f"{argument} must be hashable to be a node object (anything usable "
            f"as a dict key); got unhashable {type(node).__name__}: {node!r}"
        ) from None


def _as_list(items: Any, argument: str, what: str) -> list[Any]:
    if isinstance(items, (str, bytes, bytearray)):
        raise TypeError(
            f"{argument} must be an iterable of {what}, not a {type(items).__name__}"
            f" (which would be split into characters); wrap it in a list"
        )
    if isinstance(items, Mapping):
        raise TypeError(
            f"{argument} must be an iterable of {what}, not a "
            f"{type(items).__name__}; pass a list"
        )
    try:
        return list(items)
    except TypeError:
        raise TypeError(
            f"{argument} must be an iterable of {what}; "
            f"got {type(items).__name__}: {items!r}"
        ) from None


def _as_edge(edge: Any, argument: str) -> Edge:
    unordered = isinstance(edge, (AbstractSet, Mapping))
    text = isinstance(edge, (str, bytes, bytearray))
    if unordered or text or not isinstance(edge, Iterable):
        raise TypeError(
            f"{argument} must be an ordered pair (node, node) such as a tuple; "
            f"got {type(edge).__name__}: {edge!r}"
        )
    pair = tuple(edge)
    if len(pair) != 2:
        raise ValueError(
            f"{argument} must be a pair (node, node); got {len(pair)} item(s): {edge!r}"
        )
    _require_hashable(pair[0], f"{argument}[0]")
    _require_hashable(pair[1], f"{argument}[1]")
    return pair[0], pair[1]


def _as_edges(edges: Any) -> list[Edge]:
    edge_list = _as_list(edges, "edges", "edges (pairs of node objects)")
    return [_as_edge(edge, f"edges[{index}]") for index, edge in enumerate(edge_list)]


def _as_nodes(items: Any, argument: str) -> list[Hashable]:
    node_list = _as_list(items, argument, "node objects")
    for index, node in enumerate(node_list):
        _require_hashable(node, f"{argument}[{index}]")
    return node_list


def _unique(items: Iterable[Hashable]) -> list[Hashable]:
    return list(dict.fromkeys(items))


@dataclass
class _Layout:
    """Facts about an acyclic graph computed in one dependency-first pass.

    Linear in nodes + edges. The number of nodes each node reaches (the
    last tie-break of ``postorder``) is not here: counting it for every node
    costs memory quadratic in the nodes, so ``DictGraph._reach_sizes``
    counts it only for the nodes whose order depends on it.
    """

    rank: dict[Hashable, int]
    branch: dict[Hashable, Any]


class DictGraph(dict[Hashable, DictNode]):
    """A directed graph as a dictionary: node object -> DictNode.

    Node objects are any hashable objects. ``graph[a]`` is the DictNode of
    ``a``: a dict whose keys are the node objects ``a`` has edges to. An edge
    is a pair ``(a, b)`` of node objects, directed from ``a`` to ``b``.

    Arguments:
        nodes: [default: ()] node objects to add; see ``add_nodes``.
        edges: [default: ()] edges to add (after the nodes); see
            ``add_edges``.
        xtras: [default: None] one ``xtra`` dict per node in ``nodes``:
            either all or none. See ``add_nodes``.

    Ordering: ``postorder`` and ``cmp_branch`` sort by branch labels (the
    ``branch`` attribute of the DictNodes) with the total order described
    in ``papy.graph._order``: ``None`` first, then numbers, then other
    labels grouped by type name; sorting never raises.

    Not thread-safe: guard a graph shared between threads with a lock.
    """

    def __init__(
        self,
        nodes: Iterable[Hashable] = (),
        edges: Iterable[Edge] = (),
        xtras: Iterable[Mapping[Any, Any] | None] | None = None,
    ) -> None:
        super().__init__()
        self.add_nodes(nodes, xtras)
        self.add_edges(edges)

    # -- nodes ---------------------------------------------------------------

    def add_node(
        self, node: Hashable, xtra: Mapping[Any, Any] | None = None, branch: Any = None
    ) -> bool:
        """Add a node object; return True if it is new, False if present.

        Arguments:
            node: any hashable object (``TypeError`` otherwise).
            xtra: [default: None] a dict copied into the new DictNode's
                ``xtra`` (``TypeError`` if not a mapping).
            branch: [default: None] the new DictNode's ``branch``: an
                identifier that sorts topologically equivalent branches.

        A node already present is left unchanged (its ``xtra`` and ``branch``
        are not updated).
        """
        _require_hashable(node, "node")
        topo = DictNode(node, xtra)  # checks and copies xtra, even if present
        if node in self:
            return False
        topo.branch = branch
        self[node] = topo
        return True

    def add_nodes(
        self,
        nodes: Iterable[Hashable],
        xtras: Iterable[Mapping[Any, Any] | None] | None = None,
    ) -> None:
        """Add node objects, in order; nothing is added if any is invalid.

        Arguments:
            nodes: an iterable of node objects; see ``add_node``.
            xtras: [default: None] an iterable of ``xtra`` dicts (or None),
                one for each node object: either all or none. ``ValueError``
                if the lengths differ.
        """
        node_list = _as_nodes(nodes, "nodes")
        if xtras is None:
            xtra_list: list[Any] = [None] * len(node_list)
        else:
            xtra_list = _as_list(xtras, "xtras", "xtra dicts, one per node")
            if len(xtra_list) != len(node_list):
                raise ValueError(
                    f"xtras must have one xtra dict for each node (all or none): "
                    f"got {len(xtra_list)} xtras for {len(node_list)} nodes"
                )
            for index, xtra in enumerate(xtra_list):
                checked_xtra(xtra, f"xtras[{index}]")
        for node, xtra in zip(node_list, xtra_list, strict=True):
            self.add_node(node, xtra)

    def del_node(self, node: Hashable) -> bool:
        """Remove a node object and all edges to and from it; return True.

        Raises ``KeyError`` if the node object is not in the graph.
        """
        self._topo(node, "node")
        for topo in self.values():
            topo.pop(node, None)
        del self[node]
        return True

    def del_nodes(self, nodes: Iterable[Hashable]) -> None:
        """Remove node objects; see ``del_node``.

        Raises ``KeyError`` (removing nothing) if any is not in the graph.
        A node object listed twice is removed once.
        """
        node_list = _unique(_as_nodes(nodes, "nodes"))
        self._require_all(node_list, "nodes")
        for node in node_list:
            self.del_node(node)

    # -- edges ---------------------------------------------------------------

    def add_edge(self, edge: Iterable[Hashable], double: bool = False) -> None:
        """Add an edge: a pair of node objects, directed from first to second.

        Missing node objects are added. An edge already present stays.

        Arguments:
            edge: an ordered pair ``(a, b)``. ``TypeError``/``ValueError`` if
                it is not a pair of hashable objects.
            double: [default: False] also add the reverse edge ``(b, a)``.
        """
        left, right = _as_edge(edge, "edge")
        self.add_node(left)
        self.add_node(right)
        self[left][right] = self[right]
        if double:
            self[right][left] = self[left]

    def add_edges(
        self, edges: Iterable[Iterable[Hashable]], *args: Any, **kwargs: Any
    ) -> None:
        """Add edges in order; extra arguments go to ``add_edge``.

        Every edge is checked before any is added.
        """
        for edge in _as_edges(edges):
            self.add_edge(edge, *args, **kwargs)

    def del_edge(self, edge: Iterable[Hashable], double: bool = False) -> None:
        """Remove an edge; its node objects stay in the graph.

        Arguments:
            edge: an ordered pair ``(a, b)``.
            double: [default: False] also remove the reverse edge ``(b, a)``.

        Raises ``KeyError`` (removing nothing) if an edge to remove is not in
        the graph.
        """
        left, right = _as_edge(edge, "edge")
        pairs = [(left, right), (right, left)] if double else [(left, right)]
        for source, target in pairs:
            if source not in self or target not in self[source]:
                raise KeyError(f"edge ({source!r}, {target!r}) is not in the graph")
        for source, target in pairs:
            self[source].pop(target, None)

    def del_edges(
        self, edges: Iterable[Iterable[Hashable]], *args: Any, **kwargs: Any
    ) -> None:
        """Remove edges in order; extra arguments go to ``del_edge``.

        If one cannot be removed (``KeyError``), the edges already removed
        are restored before the error propagates: all or nothing.
        """
        edge_list = _as_edges(edges)
        saved = {node: list(topo) for node, topo in self.items()}
        try:
            for edge in edge_list:
                self.del_edge(edge, *args, **kwargs)
        except BaseException:
            self._restore_edges(saved)
            raise

    def _restore_edges(self, saved: dict[Hashable, list[Hashable]]) -> None:
        for node, targets in saved.items():
            topo = self[node]
            dict.clear(topo)  # DictNode.clear only resets traversal flags
            for target in targets:
                topo[target] = self[target]

    def edges(self, nodes: Iterable[Hashable] | None = None) -> tuple[Edge, ...]:
        """Return a tuple of all edges, as pairs of node objects.

        Arguments:
            nodes: [default: None] if given, only edges going out of these
                node objects (``KeyError`` if one is not in the graph).
        """
        if nodes is None:
            sources = list(self)
        else:
            sources = _unique(_as_nodes(nodes, "nodes"))
            self._require_all(sources, "nodes")
        return tuple((source, target) for source in sources for target in self[source])

    def incoming_edges(self, node: Hashable) -> tuple[Edge, ...]:
        """Return a tuple of the edges that end at ``node``.

        Raises ``KeyError`` if ``node`` is not in the graph.
        """
        self._topo(node, "node")
        return tuple((source, node) for source, topo in self.items() if node in topo)

    def outgoing_edges(self, node: Hashable) -> tuple[Edge, ...]:
        """Return a tuple of the edges that start at ``node``.

        Raises ``KeyError`` if ``node`` is not in the graph.
        """
        return tuple((node, target) for target in self._topo(node, "node"))

    # -- queries -------------------------------------------------------------

    def iter_nodes(self) -> Iterator[Hashable]:
        """Return an iterator of all node objects, in insertion order."""
        return iter(self.keys())

    def nodes(self) -> list[Hashable]:
        """Return a list of all node objects, in insertion order."""
        return list(self.keys())

    def deep_nodes(self, node: Hashable) -> list[Hashable]:
        """Return all node objects reachable from ``node``; see ``DictNode.deep_nodes``.

        Raises ``KeyError`` if ``node`` is not in the graph.
        """
        return self._topo(node, "node").deep_nodes()

    def clear_nodes(self) -> None:
        """Reset the traversal flags of every DictNode; see ``DictNode.clear``."""
        for topo in self.values():
            topo.clear()

    def _require_all(self, nodes: list[Hashable], argument: str) -> None:
        for node in nodes:
            if node not in self:
                raise KeyError(
                    f"{argument} includes {node!r}, which is not in the graph"
                )

    def _topo(self, node: Hashable, argument: str) -> DictNode:
        _require_hashable(node, argument)
        try:
            return self[node]
        except KeyError:
            raise KeyError(f"{argument} {node!r} is not in the graph") from None

    # -- traversal -----------------------------------------------------------

    def dfs(self, node: Hashable, bucket: Any = None, order: str = "append") -> Any:
        """Depth-first search from ``node``; return ``bucket`` holding a postorder.

        Every node object reachable from ``node`` (and ``node`` itself) is
        passed to ``getattr(bucket, order)`` after all the nodes its edges
        lead to, i.e. in postorder. With a ``collections.deque`` as bucket and
        ``order="appendleft"`` the bucket holds the reverse of that order.

        The search skips nodes already ``discovered`` and marks the nodes it
        visits, so successive calls continue one traversal (as ``postorder``
        does). Call ``clear_nodes`` to start afresh. On a cycle the search
        does not loop: each node is visited once.

        Arguments:
            node: the start node object (``KeyError`` if absent).
            bucket: [default: None] the container to fill; a new list if None.
            order: [default: "append"] the name of the bucket method to call
                with each node object (``ValueError`` if it has none).
        """
        self._topo(node, "node")
        if bucket is None:
            bucket = []
        if not isinstance(order, str):
            raise TypeError(f"order must be a method name (str); got {order!r}")
        emit = getattr(bucket, order, None)
        if not callable(emit):
            raise ValueError(
                f"order={order!r} is not a method of the bucket "
                f"({type(bucket).__name__}); use e.g. 'append' for a list or "
                f"'appendleft' for a collections.deque"
            )
        self._search(node, emit, self._insertion_children)
        return bucket

    def _insertion_children(self, node: Hashable) -> Iterable[Hashable]:
        return list(self[node])

    def _search(
        self,
        start: Hashable,
        emit: Callable[[Hashable], Any],
        children: Callable[[Hashable], Iterable[Hashable]],
    ) -> None:
        """Depth-first postorder from ``start`` over undiscovered nodes.

        Iterative, so long chains do not hit the recursion limit. Cycles are
        not detected here: ``postorder`` has ruled them out (``_layout``)
        before it searches.
        """
        if self[start].discovered:
            return
        self[start].discovered = True
        path: list[tuple[Hashable, Iterator[Hashable]]] = [
            (start, iter(children(start)))
        ]
        while path:
            node, pending = path[-1]
            for child in pending:
                topo = self[child]
                if not topo.discovered:
                    topo.discovered = True
                    path.append((child, iter(children(child))))
                    break
            else:
                path.pop()
                self[node].examined = True
                emit(node)

    # -- order and shape -----------------------------------------------------

    def postorder(self) -> list[Hashable]:
        """Return all node objects in a postorder; the graph must be acyclic.

        Guarantees:

        - Valid: every node object comes after all the nodes its edges lead
          to.
        - Contiguous branches: the result is a depth-first postorder started
          from the nodes without incoming edges. Hence every node's
          dependencies that nothing else reaches (its private subtree) form
          one block ending with that node, and a chain (a node whose only
          edge leads to a node with no other incoming edge) stays together.
        - Sorted ties: the start nodes, and the nodes each node's edges lead
          to, are visited in this order: by inherited branch label (see
          ``inherited_branch``; total order as in ``cmp_branch``), then
          shorter first (smaller ``node_rank``, then fewer reachable nodes),
          then by insertion order into the graph. The result is therefore
          deterministic for a given graph and insertion order.

        Raises ``GraphError`` (a ``ValueError``) naming a cycle if there is
        one. Traversal flags are reset before and after.
        """
        layout = self._layout()
        index = {node: position for position, node in enumerate(self)}

        def sort_key(node: Hashable) -> tuple[Any, Any, int]:
            return (
                branch_sort_key(layout.branch[node]),
                layout.rank[node],
                index[node],
            )

        # Sort by branch, rank and index first; only nodes tied on branch and
        # rank need their reach size, which is costly, so count it for them
        # alone and then re-sort each tied run by (reach size, index).
        has_incoming = {target for topo in self.values() for target in topo}
        start_runs = _tied_runs([n for n in self if n not in has_incoming], sort_key)
        child_runs = {node: _tied_runs(topo, sort_key) for node, topo in self.items()}
        needed = {
            node
            for runs in (start_runs, *child_runs.values())
            for run in runs
            if len(run) > 1
            for node in run
        }
        reach_size = self._reach_sizes(needed)

        def tie_break(node: Hashable) -> tuple[int, int]:
            return (reach_size[node], index[node])

        def ordered_runs(runs: list[list[Hashable]]) -> list[Hashable]:
            merged: list[Hashable] = []
            for run in runs:
                merged.extend(sorted(run, key=tie_break) if len(run) > 1 else run)
            return merged

        starts = ordered_runs(start_runs)
        sorted_children = {
            node: ordered_runs(runs) for node, runs in child_runs.items()
        }
        del child_runs  # one list per node is enough during the search
        ordered: list[Hashable] = []
        self.clear_nodes()
        try:
            for start in starts:
                self._search(start, ordered.append, sorted_children.__getitem__)
        finally:
            self.clear_nodes()
        return ordered

    def node_rank(self) -> dict[Hashable, int]:
        """Return ``{node object: rank}``; the graph must be acyclic.

        A node with no outgoing edges has rank 0; any other node's rank is
        the number of edges on the longest path from it to a rank-0 node,
        i.e. one more than the highest rank among the nodes its edges lead
        to. (In a Dagger, the pipeline's input pipers have rank 0.)

        Raises ``GraphError`` if the graph has a cycle.
        """
        return self._layout().rank

    def node_width(self) -> dict[Hashable, int]:
        """Return ``{node object: width}``; works on any graph.

        The width of a node is the number of nodes without outgoing edges
        (rank-0 nodes) among the node itself and all nodes reachable from it:
        how many "leaves" its dependencies fan out to. A node with no
        outgoing edges has width 1; in an acyclic graph every width is at
        least 1. (In a Dagger: how many input pipers feed a piper, directly
        or not.)
        """
        try:
            self._dependencies_first()  # only to detect a cycle
        except GraphError:
            return self._node_width_by_search()
        return self._acyclic_node_width()

    def _acyclic_node_width(self) -> dict[Hashable, int]:
        """``node_width`` of an acyclic graph, in memory linear for chains.

        Only sinks get a bit, so a node's set of sinks below it is as large
        as the number of sinks, not of nodes (see ``_masks_below``).
        """
        order = self._postorder_below(self)
        sinks = (node for node in order if not self[node])
        sink_number = {sink: number for number, sink in enumerate(sinks)}

        def sink_bit(node: Hashable) -> int:
            # Made when used, not kept: a fan-out to n sinks would keep
            # n masks of up to n bits.
            number = sink_number.get(node)
            return 0 if number is None else 1 << number

        widths = {
            node: 1 if node in sink_number else mask.bit_count()
            for node, mask in self._masks_below(order, sink_bit)
        }
        return {node: widths[node] for node in self}

    def _node_width_by_search(self) -> dict[Hashable, int]:
        widths = {}
        for node, topo in self.items():
            reachable = set(topo.deep_nodes())
            reachable.add(node)
            widths[node] = sum(1 for each in reachable if not self[each])
        return widths

    def rank_width(self) -> dict[int, int]:
        """Return ``{rank: number of nodes with that rank}``, ranks ascending.

        Ranks are those of ``node_rank``; every rank from 0 to the highest is
        present. An empty graph gives ``{}``. Raises ``GraphError`` if the
        graph has a cycle.
        """
        counts = Counter(self.node_rank().values())
        return {rank: counts[rank] for rank in sorted(counts)}

    def inherited_branch(self, node: Hashable) -> Any:
        """Return the branch label that sorts ``node``.

        That is the node's own ``branch`` if it is not None; otherwise the
        smallest label (in the order of ``cmp_branch``) among the labelled
        nodes reachable from it through unlabelled nodes only; None if there
        are none. So a node inherits the branch of the nodes it depends on:
        in a Dagger, a piper inherits the branch of its upstream pipers.
        Raises ``KeyError`` if ``node`` is absent.
        """
        topo = self._topo(node, "node")
        if topo.branch is not None:
            return topo.branch
        labels = []
        seen = {node}
        queue = deque(topo)
        while queue:
            current = queue.popleft()
            if current in seen:
                continue
            seen.add(current)
            label = self[current].branch
            if label is None:
                queue.extend(self[current])
            else:
                labels.append(label)
        return min(labels, key=branch_sort_key, default=None)

    def cmp_branch(self, node1: Hashable, node2: Hashable) -> int:
        """Compare two node objects by branch: return -1, 0 or 1.

        -1 if ``node1`` sorts before ``node2``, 1 if after, 0 if tied. The
        labels compared are those of ``inherited_branch``. The order is
        total and never raises: None (no branch) first, then numbers by
        value, then other labels grouped by type name and compared within a
        type (tuples element-wise, otherwise with ``<``, falling back to
        ``repr``). Use ``functools.cmp_to_key(graph.cmp_branch)`` to sort.
        Raises ``KeyError`` if a node object is absent.
        """
        self._topo(node1, "node1")
        self._topo(node2, "node2")
        return compare_labels(
            self.inherited_branch(node1), self.inherited_branch(node2)
        )

    def _layout(self) -> _Layout:
        """Rank and inherited branch of every node, in one linear pass."""
        rank: dict[Hashable, int] = {}
        branch: dict[Hashable, Any] = {}
        for node in self._dependencies_first():
            targets = self[node]
            rank[node] = 1 + max((rank[t] for t in targets), default=-1)
            own = targets.branch
            if own is None:
                inherited = [branch[t] for t in targets if branch[t] is not None]
                own = min(inherited, key=branch_sort_key, default=None)
            branch[node] = own
        return _Layout(rank={node: rank[node] for node in self}, branch=branch)

    def _reach_sizes(self, needed: set[Hashable]) -> dict[Hashable, int]:
        """Return ``{node: count of nodes it reaches, itself included}`` for ``needed``.

        One pass over the nodes reachable from ``needed``, each node with a
        bit of its own (see ``_masks_below``).
        """
        sizes: dict[Hashable, int] = {}
        for node in needed:
            if self._rank_at_most_one(node):
                # Its targets have no edges, so each reaches only itself.
                sizes[node] = 1 + len(self[node])
        order = self._postorder_below(needed - sizes.keys())
        position = {node: place for place, node in enumerate(order)}

        def bit(node: Hashable) -> int:
            return 1 << position[node]

        for node, mask in self._masks_below(order, bit):
            if node in needed:
                sizes[node] = mask.bit_count() + 1
        return sizes

    def _masks_below(
        self, order: list[Hashable], bit: Callable[[Hashable], int]
    ) -> Iterator[tuple[Hashable, int]]:
        """Yield ``(node, mask)`` for each node of ``order``: the union of
        the bits (``bit(node)``, 0 for a node not counted) of all nodes it
        reaches, itself excluded.

        ``order`` is a postorder holding every node its nodes reach, so a
        node's mask is built from its targets' masks. A mask is dropped as
        soon as the last node with an edge to it has used it, and the
        depth-first order uses it soon after it is made: memory is the
        bits of the few masks alive at once, not one mask per node (which
        took memory quadratic in the nodes).
        """
        users = Counter(target for node in order for target in self[node])
        reached: dict[Hashable, int] = {}
        for node in order:
            mask = 0
            for target in self[node]:
                mask |= bit(target) | reached[target]
                users[target] -= 1
                if not users[target]:
                    del reached[target]
            yield node, mask
            if users[node]:  # else no node in ``order`` needs it again
                reached[node] = mask

    def _postorder_below(self, starts: Iterable[Hashable]) -> list[Hashable]:
        """The nodes reachable from ``starts`` (included), in a postorder.

        Uses its own visited set, not the DictNodes' traversal flags.
        """
        order: list[Hashable] = []
        seen: set[Hashable] = set()
        for start in starts:
            if start in seen:
                continue
            seen.add(start)
            path = [(start, iter(self[start]))]
            while path:
                node, pending = path[-1]
                for target in pending:
                    if target not in seen:
                        seen.add(target)
                        path.append((target, iter(self[target])))
                        break
                else:
                    path.pop()
                    order.append(node)
        return order

    def _rank_at_most_one(self, node: Hashable) -> bool:
        return not any(self[target] for target in self[node])

    def _dependencies_first(self) -> list[Hashable]:
        """Topological order, each node after its targets; GraphError on a cycle."""
        dependents: dict[Hashable, list[Hashable]] = {node: [] for node in self}
        waiting_on = {}
        for node, topo in self.items():
            waiting_on[node] = len(topo)
            for target in topo:
                dependents[target].append(node)
        ready = deque(node for node, count in waiting_on.items() if count == 0)
        done = []
        while ready:
            node = ready.popleft()
            done.append(node)
            for dependent in dependents[node]:
                waiting_on[dependent] -= 1
                if waiting_on[dependent] == 0:
                    ready.append(dependent)
        if len(done) < len(self):
            raise _cycle_error(
                self._find_cycle({n for n, c in waiting_on.items() if c})
            )
        return done

    def _find_cycle(self, stuck: set[Hashable]) -> list[Hashable]:
        # Every stuck node has an edge to another stuck node, so walking such
        # edges must revisit a node.
        walk: list[Hashable] = []
        position: dict[Hashable, int] = {}
        node = next(n for n in self if n in stuck)
        while node not in position:
            position[node] = len(walk)
            walk.append(node)
            node = next(t for t in self[node] if t in stuck)
        return walk[position[node] :] + [node]

    def copy(self) -> DictGraph:
        """Return a new graph of the same type with the same topology.

        Node objects are shared; DictNodes (with their ``branch`` and a copy
        of their ``xtra``) are new, so changing the copy's edges leaves this
        graph alone. Other instance attributes are copied shallowly.
        (``dict.copy`` would return a plain dict sharing the DictNodes.)
        """
        duplicate = copy.copy(self)
        for node, topo in self.items():
            fresh = DictNode(topo.entity, topo.xtra)
            fresh.branch = topo.branch
            duplicate[node] = fresh
        for node, topo in self.items():
            for target in topo:
                duplicate[node][target] = duplicate[target]
        return duplicate

    # -- copying and pickling ------------------------------------------------

    def __copy__(self) -> Self:
        """Return a shallow copy: a new graph of this type, with the same
        state, holding the same DictNodes.

        The state goes through the type's ``__getstate__`` and
        ``__setstate__``, as for any object ``copy.copy`` copies. Without
        this method ``copy.copy`` would use ``__reduce__``, whose state
        setter it does not know; ``copy`` above relies on the shallow copy.
        """
        duplicate = type(self).__new__(type(self))
        # The DictNodes first: a subclass's __setstate__ sees the graph
        # whole, as after pickle and deepcopy.
        duplicate.update(self)
        _set_state(duplicate, self.__getstate__())
        return duplicate

    def _flat_state(self) -> _FlatState:
        """The graph as flat lists, for pickle: see ``_FlatState``.

        Pickle writes the DictNodes bare as the graph's items first (see
        ``__reduce__``), so nothing here makes it write one DictNode inside
        another: it does not recurse along edges, nor along references
        between DictNodes in their attributes.
        """
        node_states = [(topo, topo.__getstate__()) for topo in self.values()]
        return node_states, list(self.edges()), self.__getstate__()

    def _restore_flat_state(self, state: _FlatState) -> None:
        """Fill a graph that holds its DictNodes from a ``_FlatState``.

        In the order of the default form: DictNodes, then edges, then the
        graph's own state, so a subclass's ``__setstate__`` finds the
        topology complete. An edge already present is set again to the same
        DictNode (a DictNode pickled before its graph comes with its edges).
        """
        node_states, edges, own_state = state
        for topo, topo_state in node_states:
            _set_state(topo, topo_state)
        for source, target in edges:
            self[source][target] = self[target]
        _set_state(self, own_state)

    def __reduce__(self) -> tuple[Any, ...]:
        # The default form nests each DictNode in the one with an edge to
        # it: a chain of a few hundred nodes hit the recursion limit. Here
        # the items are the DictNodes themselves, bare while pickle holds
        # ``_ItemsPickledBare``, so pickle's memo still makes every
        # other reference to them (in xtras, or next to the graph) the same
        # object; their attributes and edges follow in the state.
        # ``__newobj__`` (what pickle uses by default, missing from
        # typeshed) skips ``__init__``, whose arguments differ between
        # subclasses (a Dagger's are Pipers and pipes).
        make = copyreg.__newobj__  # type: ignore[attr-defined]
        items = _ItemsPickledBare(self)
        state = (_EndOfBareItems(items.bare), *self._flat_state())
        return (make, (type(self),), state, None, items, _restore)

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        """Return a deep copy, made without recursing along the edges.

        Every DictNode gets its copy in ``memo`` before any state is
        copied, so a reference to a DictNode of the graph anywhere in the
        copy (an xtra, a container copied with the graph, before or after
        it) leads to the copy's DictNode. A DictNode copied before the graph
        is reused as it was copied.
        """
        duplicate = type(self).__new__(type(self))
        memo[id(self)] = duplicate
        unfilled = _reserve_copies(self.values(), memo)
        copied_nodes = {node: copy.deepcopy(node, memo) for node in self}
        for node, topo in self.items():
            duplicate[copied_nodes[node]] = memo[id(topo)]
        node_states = [
            (memo[id(topo)], copy.deepcopy(topo.__getstate__(), memo))
            for topo in unfilled
        ]
        edges = [(copied_nodes[a], copied_nodes[b]) for a, b in self.edges()]
        own_state = copy.deepcopy(self.__getstate__(), memo)
        duplicate._restore_flat_state((node_states, edges, own_state))
        return duplicate

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(nodes={self.nodes()!r}, edges={list(self.edges())!r})"


# A graph as flat lists: (DictNode, its ``__getstate__``) for each node, the
# edges as pairs of node objects, and what the graph's ``__getstate__``
# returns (its own state, kept through the subclass's methods if it has
# them).
_FlatState = tuple[list[tuple[DictNode, Any]], list[Edge], Any]


class _ItemsPickledBare:
    """A graph's items as pickle takes them: their DictNodes pickle bare
    from the moment this iterator is made until pickle lets go of it, once
    it has written the graph (or failed to); the graph's state carries
    their attributes and edges.

    Not only until the last item is taken: pickle takes items ahead of
    writing them (the pure-Python pickler, which dill extends, a thousand
    at a time), so the DictNodes taken last would be written after that,
    with their edges, each nested in the one before.
    """

    def __init__(self, graph: DictGraph) -> None:
        items = list(graph.items())
        self.bare = PickledBare(topo for _, topo in items)
        self._items = iter(items)

    def __iter__(self) -> _ItemsPickledBare:
        return self

    def __next__(self) -> tuple[Hashable, DictNode]:
        return next(self._items)


class _EndOfBareItems:
    """First in a graph's pickled state, which pickle writes after all the
    items: writing it ends the items' bare window. Otherwise a failure
    while the state is written (an xtra that does not pickle) would leave
    the DictNodes bare for as long as its traceback holds the items
    iterator, and a DictNode pickled alone meanwhile would lose its edges.
    It unpickles as 0, which ``_restore`` skips."""

    def __init__(self, bare: PickledBare) -> None:
        self._bare = bare

    def __reduce__(self) -> tuple[Any, ...]:
        self._bare.end()
        return (int, ())


def _reserve_copies(topos: Iterable[DictNode], memo: dict[int, Any]) -> list[DictNode]:
    """Enter an empty copy of each DictNode not yet in ``memo``; return those.

    A DictNode already in ``memo`` was copied before its graph, with its
    state and edges, and stays as it was copied.
    """
    unfilled = []
    for topo in topos:
        if id(topo) not in memo:
            memo[id(topo)] = type(topo).__new__(type(topo))
            unfilled.append(topo)
    return unfilled


def _restore(graph: DictGraph, state: tuple[Any, ...]) -> None:
    """Pickle's state setter for a graph: a function, which every pickle
    protocol can name. ``state`` is a ``_FlatState`` after what
    ``_EndOfBareItems`` unpickled to (absent in pickles made before it)."""
    node_states, edges, own_state = state[-3:]
    graph._restore_flat_state((node_states, edges, own_state))


def _set_state(target: Any, state: Any) -> None:
    """Give ``target`` a state returned by ``__getstate__``, as pickle does.

    Through the object's own ``__setstate__`` if its type has one;
    otherwise ``state`` is None, the attribute dict, or a pair of the
    attribute dict (or None) and a dict of ``__slots__`` values.
    """
    setstate = getattr(target, "__setstate__", None)
    if setstate is not None:
        setstate(state)
        return
    slots = None
    if isinstance(state, tuple) and len(state) == 2:
        state, slots = state
    if state:
        vars(target).update(state)
    for name, value in (slots or {}).items():
        setattr(target, name, value)


def _cycle_error(cycle: list[Hashable]) -> GraphError:
    path = " -> ".join(repr(node) for node in cycle)
    return GraphError(
        f"the graph has a cycle ({path}); this needs a directed acyclic graph: "
        f"remove an edge of the cycle",
        cycle,
    )


def _tied_runs(
    nodes: Iterable[Hashable], sort_key: Callable[[Hashable], tuple[Any, Any, int]]
) -> list[list[Hashable]]:
    """Sort ``nodes`` by ``sort_key``; group neighbours equal but for the index.

    The last element of the key (the insertion index) is unique, so a later
    re-sort of each run by a finer key ending with the index gives the same
    order as sorting everything by that finer key.
    """
    keyed = sorted((sort_key(node), node) for node in nodes)
    runs: list[list[Hashable]] = []
    previous: tuple[Any, Any] | None = None
    for key, node in keyed:
        label_and_rank = (key[0], key[1])
        if runs and previous == label_and_rank:
            runs[-1].append(node)
        else:
            runs.append([node])
        previous = label_and_rank
    return runs
