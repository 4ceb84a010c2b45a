"""DictNode: the topological node of a DictGraph."""

from __future__ import annotations

import copyreg
import threading
from collections import Counter
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, SupportsIndex


class _Bare(threading.local):
    """Per thread: ``id(DictNode)`` -> how many graphs being pickled now
    carry that DictNode's attributes and edges themselves."""

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()


_BARE = _Bare()


class PickledBare:
    """While this object lives, pickle the DictNodes ``topos`` bare: only
    their type.

    Its owner (a graph being pickled) pickles their attributes and edges
    itself. The DictNodes are held here, so their ids stay theirs. Counting
    rather than flagging keeps a DictNode shared by two graphs, one pickled
    inside the other, bare until both are written.
    """

    def __init__(self, topos: Iterable[DictNode]) -> None:
        self._topos = list(topos)
        # The counts of this thread, also if this object is released in
        # another thread.
        self._counts = _BARE.counts
        self._counts.update(id(topo) for topo in self._topos)

    def end(self) -> None:
        """Pickle the DictNodes as usual again (at the latest when this
        object goes). Idempotent."""
        topos, self._topos = self._topos, []
        counts = self._counts
        ids = [id(topo) for topo in topos]
        counts.subtract(ids)
        for done in {each for each in ids if counts[each] <= 0}:
            del counts[done]

    def __del__(self) -> None:
        self.end()


def checked_xtra(xtra: Any, argument: str) -> dict[Any, Any]:
    """Return a fresh dict with the contents of ``xtra`` (a mapping or None)."""
    if xtra is None:
        return {}
    if not isinstance(xtra, Mapping):
        raise TypeError(
            f"{argument} must be a dict (a mapping of node properties) or None; "
            f"got {type(xtra).__name__}: {xtra!r}"
        )
    return dict(xtra)


class DictNode(dict[Hashable, "DictNode"]):
    """The topological node of one node object in a ``DictGraph``.

    A DictNode is a dictionary of outgoing edges: its keys are the node
    objects this node has edges to, and each value is the DictNode of that
    node object. The node object itself can be any hashable object; the
    DictNode holds the topology around it.

    Arguments:
        entity: [default: None] the node object this topological node stands
            for. Kept as the ``entity`` attribute (shown in ``repr``); it adds
            no edge.
        xtra: [default: None] a dict of arbitrary properties; it is copied
            into the ``xtra`` attribute. Raises ``TypeError`` if it is not a
            mapping.

    Attributes:
        discovered, examined: traversal flags set by ``DictGraph.dfs`` and
            ``DictGraph.postorder``; ``clear`` resets them.
        branch: an identifier that sorts topologically equivalent branches
            (see ``DictGraph.postorder``); ``None`` means "no branch".
        xtra: dict of arbitrary properties.

    Two DictNodes are equal when they have edges to the same node objects and
    equal ``branch`` and ``xtra``; the nodes behind the edges are not
    compared again, so comparing large or cyclic graphs stays cheap.
    """

    def __init__(self, entity: Hashable = None, xtra: Mapping[Any, Any] | None = None):
        super().__init__()
        self.entity = entity
        self.discovered = False
        self.examined = False
        self.branch: Any = None
        self.xtra: dict[Any, Any] = checked_xtra(xtra, "xtra")

    def clear(self) -> None:
        """Set the ``discovered`` and ``examined`` attributes to False.

        Unlike ``dict.clear`` this keeps the edges: it only resets the
        traversal state.
        """
        self.discovered = False
        self.examined = False

    def deep_nodes(self, allnodes: list[Hashable] | None = None) -> list[Hashable]:
        """Return a list of all node objects reachable from this node.

        Reachable means through one or more edges, so this node's own object
        is included only if it lies on a cycle. Nodes are listed in
        depth-first preorder, following edges in insertion order.

        Arguments:
            allnodes: [default: None] a list to extend and return. Node
                objects already in it are neither listed again nor searched
                through.
        """
        found: list[Hashable] = [] if allnodes is None else allnodes
        seen = set(found)
        # An explicit stack of edge iterators keeps the preorder of a recursive
        # search without Python's recursion limit on long chains.
        stack: list[Iterator[tuple[Hashable, DictNode]]] = [iter(self.items())]
        while stack:
            for node, topo in stack[-1]:
                if node not in seen:
                    seen.add(node)
                    found.append(node)
                    stack.append(iter(topo.items()))
                    break
            else:
                stack.pop()
        return found

    def iternodes(self) -> Iterator[Hashable]:
        """Return an iterator of the node objects this node has edges to."""
        return iter(self.keys())

    def nodes(self) -> list[Hashable]:
        """Return a list of the node objects this node has edges to."""
        return list(self.keys())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DictNode):
            return NotImplemented
        return (
            self.keys() == other.keys()
            and self.branch == other.branch
            and self.xtra == other.xtra
        )

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None

    def __reduce_ex__(self, protocol: SupportsIndex) -> str | tuple[Any, ...]:
        """Pickle bare while a graph being pickled carries the attributes
        and edges (see ``DictGraph.__reduce__``).

        Otherwise pickle as a dict does: edges included, so a DictNode
        pickled on its own keeps the nodes it reaches (nested, one inside
        the other, so a long chain hits the recursion limit).
        """
        if _BARE.counts[id(self)]:
            # ``__newobj__`` (missing from typeshed) is what pickle uses by
            # default: it skips ``__init__``.
            make = copyreg.__newobj__  # type: ignore[attr-defined]
            return (make, (type(self),))
        return super().__reduce_ex__(protocol)

    def __repr__(self) -> str:
        targets = ", ".join(repr(node) for node in self)
        return f"{type(self).__name__}({self.entity!r} -> [{targets}])"
