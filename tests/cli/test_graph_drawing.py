"""DOT and Mermaid text for small hand-made pipeline graphs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from papy.core._cli_graph import (
    GraphOutputError,
    NuMapInfo,
    PipelineGraph,
    PiperNode,
    output_paths,
    to_dot,
    to_mermaid,
    write_picture,
)

SHARED = NuMapInfo(key="numap0", name="cpu", worker_type="process", worker_num=2)
REMOTE = NuMapInfo(
    key="numap1",
    name="far",
    worker_type="process",
    worker_num=0,
    remote=(("127.0.0.1:18812", 2),),
)


def small_graph() -> PipelineGraph:
    graph = PipelineGraph(title='demo "quoted"')
    graph.nodes = [
        PiperNode("p0_read", "read", ("parse",)),
        PiperNode("p1_a", "a", ("f", "g"), numap=SHARED, produce=2),
        PiperNode("p2_b", "b<x>", ("h",), numap=SHARED, consume=2, spawn=3),
        PiperNode("p3_far", "far", ("remote_fn",), numap=REMOTE, repeat=True),
        PiperNode("p4_sink", "sink", ()),
    ]
    graph.pipes = [
        ("p0_read", "p1_a"),
        ("p1_a", "p2_b"),
        ("p0_read", "p3_far"),
        ("p2_b", "p4_sink"),
        ("p3_far", "p4_sink"),
    ]
    return graph


def balanced(text: str, open_: str, close: str) -> bool:
    depth = 0
    for char in text:
        depth += char == open_
        depth -= char == close
        if depth < 0:
            return False
    return depth == 0


@pytest.mark.timeout(10)
def test_dot_has_every_piper_pipe_and_setting():
    dot = to_dot(small_graph())
    assert dot.startswith('digraph "demo \\"quoted\\"" {')
    assert balanced(dot, "{", "}")
    for upstream, downstream in small_graph().pipes:
        assert f"  {upstream} -> {downstream};" in dot
    assert "f → g\\nprocess x2\\nproduce=2" in dot
    assert "consume=2 spawn=3" in dot
    assert "remote 127.0.0.1:18812 x2\\nrepeat" in dot
    assert "read\\nparse\\nlinear" in dot
    assert "(no function)" in dot
    # the two pipers sharing NuMap "cpu" sit in one dashed cluster
    cluster = re.search(r"subgraph cluster_numap_0 \{(.*?)\n  \}", dot, re.S)
    assert cluster is not None
    assert "p1_a [" in cluster.group(1) and "p2_b [" in cluster.group(1)
    assert "p3_far [" not in cluster.group(1)


@pytest.mark.timeout(10)
def test_mermaid_has_every_piper_pipe_and_escapes_labels():
    text = to_mermaid(small_graph())
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    for upstream, downstream in small_graph().pipes:
        assert f"  {upstream} --> {downstream}" in lines
    assert 'p2_b["b#lt;x#gt;<br/>h<br/>process x2<br/>consume=2 spawn=3"]' in text
    assert 'subgraph numap_0["NuMap cpu: process x2"]' in text
    assert text.count("\n  end\n") == 1
    assert "class p1_a,p2_b,p3_far parallel" in text
    # every label is one quoted string: quotes inside are entities
    for line in lines:
        if "[" in line:
            assert line.count('"') == 2


@pytest.mark.timeout(10)
def test_output_paths_by_suffix(tmp_path):
    assert output_paths(tmp_path / "x.dot") == [tmp_path / "x.dot"]
    assert output_paths(tmp_path / "x.SVG") == [tmp_path / "x.SVG"]
    assert output_paths(tmp_path / "x") == [tmp_path / "x.dot", tmp_path / "x.mmd"]
    with pytest.raises(GraphOutputError, match=r"unknown suffix '\.txt'.*\.mmd"):
        output_paths(tmp_path / "x.txt")


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", [".", "..", "folder"])
def test_output_paths_refuse_folders(tmp_path, name):
    (tmp_path / "folder").mkdir()
    with pytest.raises(GraphOutputError, match=r"is a folder; give a file"):
        output_paths(tmp_path / name if name == "folder" else Path(name))


@pytest.mark.timeout(10)
def test_output_paths_refuse_an_empty_name():
    with pytest.raises(GraphOutputError, match=r"^-o '': give a file name"):
        output_paths("")


@pytest.mark.timeout(10)
def test_output_paths_refuse_a_bare_suffix(tmp_path):
    with pytest.raises(GraphOutputError, match=r"give a name before the suffix"):
        output_paths(tmp_path / ".mmd")


@pytest.mark.timeout(10)
def test_text_pictures_are_written(tmp_path):
    for name in ("g.dot", "g.gv", "g.mmd"):
        write_picture(small_graph(), tmp_path / name)
    assert (tmp_path / "g.dot").read_text() == to_dot(small_graph())
    assert (tmp_path / "g.mmd").read_text() == to_mermaid(small_graph())


@pytest.mark.timeout(30)
def test_svg_needs_graphviz(tmp_path):
    target = tmp_path / "g.svg"
    if shutil.which("dot") is None:
        with pytest.raises(GraphOutputError, match="apt-get install graphviz"):
            write_picture(small_graph(), target)
        assert not target.exists()
    else:
        write_picture(small_graph(), target)
        assert "<svg" in target.read_text()


@pytest.mark.timeout(30)
def test_graphviz_accepts_the_dot_text(tmp_path):
    dot = shutil.which("dot")
    if dot is None:
        pytest.skip("Graphviz 'dot' is not installed")
    result = subprocess.run(
        [dot, "-Tplain"],
        input=to_dot(small_graph()),
        text=True,
        capture_output=True,
        timeout=20,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\nedge ") == len(small_graph().pipes)


def dot_unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda match: {"n": "\n"}.get(match[1], match[1]), text)


names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


@given(st.lists(names, min_size=1, max_size=6))
@pytest.mark.timeout(60)
def test_any_piper_name_survives_dot_and_mermaid(piper_names):
    graph = PipelineGraph(title="t")
    graph.nodes = [
        PiperNode(f"p{number}", name, ("f",)) for number, name in enumerate(piper_names)
    ]
    graph.pipes = [(f"p{n}", f"p{n + 1}") for n in range(len(piper_names) - 1)]
    dot = to_dot(graph)
    labels = re.findall(r'^  p\d+ \[label="((?:[^"\\]|\\.)*)"\];$', dot, re.M)
    shown = [" ".join(name.splitlines()) or " " for name in piper_names]
    assert [dot_unescape(label).split("\n")[0] for label in labels] == shown
    mermaid = to_mermaid(graph)
    for line in mermaid.splitlines()[1:]:
        if "[" in line:
            assert line.count('"') == 2 and line.endswith('"]')
            assert "<" not in line.replace("<br/>", "")
            assert "\n" not in line
