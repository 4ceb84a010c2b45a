"""The public surface of papy.graph and the DictNode class on its own."""

import subprocess
import sys

import papy.graph
import pytest
from papy.graph import DictGraph, DictNode, GraphError


@pytest.mark.timeout(5)
def test_public_names():
    assert sorted(papy.graph.__all__) == ["DictGraph", "DictNode", "GraphError"]
    assert issubclass(GraphError, ValueError)
    assert issubclass(DictGraph, dict)
    assert issubclass(DictNode, dict)


@pytest.mark.timeout(30)
def test_imports_nothing_of_papy_core():
    code = "import sys, papy.graph; print(sorted(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "papy.core" not in result.stdout
    assert "papy.util" not in result.stdout


@pytest.mark.timeout(5)
def test_dictnode_defaults():
    node = DictNode()
    assert node == {}
    assert node.entity is None
    assert node.discovered is False
    assert node.examined is False
    assert node.branch is None
    assert node.xtra == {}
    assert node.nodes() == []
    assert node.deep_nodes() == []


@pytest.mark.timeout(5)
def test_dictnode_entity_and_xtra():
    xtra = {"colour": "red"}
    node = DictNode("me", xtra)
    assert node.entity == "me"
    assert node.xtra == xtra
    assert node.xtra is not xtra
    assert node == {}
    with pytest.raises(TypeError, match="xtra must be a dict"):
        DictNode("me", ["not", "a", "dict"])


@pytest.mark.timeout(5)
def test_dictnodes_nest_by_hand():
    leaf = DictNode("leaf")
    middle = DictNode("middle")
    middle["leaf"] = leaf
    top = DictNode("top")
    top["middle"] = middle
    assert top.nodes() == ["middle"]
    assert list(top.iternodes()) == ["middle"]
    assert top.deep_nodes() == ["middle", "leaf"]


@pytest.mark.timeout(5)
def test_dictnode_equality_is_shallow():
    one, other = DictNode("a"), DictNode("b")
    one["x"] = DictNode("x")
    other["x"] = DictNode("something else")
    assert one == other
    other.branch = 1
    assert one != other
    assert one != {"x": 1}
    assert DictNode() != 5
