"""Describing a real Dagger for `papy graph`: pipers upstream first, pipes in
the direction of the data flow, worker functions and settings."""

from __future__ import annotations

import pytest
from papy.core import Dagger, Piper, Worker
from papy.core._cli_graph import describe, to_dot, to_mermaid


def parse(inbox):
    return inbox[0]


def double(inbox):
    return inbox[0] * 2


def pair(inbox):
    return inbox[0], inbox[0]


def join(inbox):
    return inbox


def branched() -> tuple[Dagger, dict[str, Piper]]:
    pipers = {
        "read": Piper(Worker(parse), name="read"),
        "twice": Piper(Worker((double, double)), name="twice"),
        "split": Piper(Worker(pair), name="split", produce=2),
        "merge": Piper(Worker(join), name="merge"),
    }
    dagger = Dagger()
    dagger.add_pipe((pipers["read"], pipers["twice"], pipers["merge"]))
    dagger.add_pipe((pipers["read"], pipers["split"]))
    return dagger, pipers


@pytest.mark.timeout(10)
def test_nodes_come_upstream_first_with_their_functions():
    dagger, _ = branched()
    graph = describe(dagger, "branched")
    names = [node.name for node in graph.nodes]
    assert names[0] == "read"
    assert names.index("twice") < names.index("merge")
    by_name = {node.name: node for node in graph.nodes}
    assert by_name["twice"].functions == ("double", "double")
    assert by_name["split"].produce == 2
    assert by_name["read"].numap is None
    assert len({node.key for node in graph.nodes}) == 4


@pytest.mark.timeout(10)
def test_pipes_follow_the_data():
    dagger, _ = branched()
    graph = describe(dagger, "branched")
    key = {node.name: node.key for node in graph.nodes}
    assert sorted(graph.pipes) == sorted(
        [
            (key["read"], key["twice"]),
            (key["twice"], key["merge"]),
            (key["read"], key["split"]),
        ]
    )
    assert f"{key['read']} -> {key['twice']};" in to_dot(graph)
    assert f"{key['twice']} --> {key['merge']}" in to_mermaid(graph)


def scale(inbox, factor, offset=0):
    return inbox[0] * factor + offset


@pytest.mark.timeout(10)
def test_worker_arguments_are_shown_with_their_function():
    piper = Piper(Worker((scale, double), ((3,), ()), ({"offset": "x" * 60}, {})))
    dagger = Dagger()
    dagger.add_piper(piper)
    (node,) = describe(dagger, "args").nodes
    first, second = node.functions
    assert first.startswith("scale(3, offset='xxx") and first.endswith("…)")
    assert len(first) < 60
    assert second == "double"
