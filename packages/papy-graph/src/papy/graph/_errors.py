"""The exception raised for graphs whose shape an operation cannot handle."""

from __future__ import annotations

from collections.abc import Hashable, Sequence


class GraphError(ValueError):
    """The graph's topology does not allow the requested operation.

    Raised by ``DictGraph.postorder``, ``node_rank`` and ``rank_width`` when
    the graph has a cycle. ``cycle`` holds the node objects of one cycle in
    edge order (the first node is repeated at the end), or is empty when the
    error is not about a cycle.
    """

    def __init__(self, message: str, cycle: Sequence[Hashable] = ()) -> None:
        super().__init__(message)
        self.cycle: tuple[Hashable, ...] = tuple(cycle)
