"""PaPy graph: DictGraph and DictNode, a directed graph made of nested dicts.

``DictGraph`` maps node objects (any hashable objects) to ``DictNode``s; a
``DictNode`` maps the node objects it has edges to, to their DictNodes.
``GraphError`` is raised when an operation needs an acyclic graph.
"""

from ._errors import GraphError
from ._graph import DictGraph
from ._node import DictNode

__all__ = ["DictGraph", "DictNode", "GraphError"]
