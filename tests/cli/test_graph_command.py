"""`papy graph` on the example pipelines: DOT, Mermaid, SVG/PNG."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from cli_helpers import EXAMPLES

FASTA_PIPES = {
    ("records", "stats"),
    ("records", "kmers"),
    ("stats", "tsv_row"),
    ("kmers", "tsv_row"),
    ("tsv_row", "write_tsv"),
}


def dot_pipes(text):
    """(from, to) piper names of a DOT file written by papy graph."""
    names = dict(re.findall(r'^\s*(\w+) \[label="([^"\\]+)', text, re.M))
    edges = re.findall(r"^\s*(\w+) -> (\w+);", text, re.M)
    return {(names[a], names[b]) for a, b in edges}


def mermaid_pipes(text):
    names = dict(re.findall(r'^\s*(\w+)\["([^"<]+)', text, re.M))
    edges = re.findall(r"^\s*(\w+) --> (\w+)$", text, re.M)
    return {(names[a], names[b]) for a, b in edges}


@pytest.mark.timeout(60)
def test_dot_and_mermaid_of_the_fasta_pipeline(papy, tmp_path):
    result = papy("graph", str(EXAMPLES / "fasta_stats.py"), "-o", "picture")
    assert result.status == 0, result.output
    assert "wrote picture.dot" in result.stdout and "wrote picture.mmd" in result.stdout
    # Drawing does not run the pipeline: no demo input, no output written.
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "picture.dot",
        "picture.mmd",
    ]
    dot = (tmp_path / "picture.dot").read_text()
    mermaid = (tmp_path / "picture.mmd").read_text()
    assert dot.startswith('digraph "fasta_stats" {') and dot.rstrip().endswith("}")
    assert dot.count("{") == dot.count("}")
    assert dot_pipes(dot) == FASTA_PIPES
    assert "kmer_counts\\nprocess x" in dot
    assert 'subgraph cluster_numap_0 {\n    label="NuMap cpu: process x' in dot
    assert mermaid.startswith("flowchart LR\n")
    assert mermaid_pipes(mermaid) == FASTA_PIPES
    assert "<br/>TsvSink.write<br/>linear" in mermaid
    # Without -o the Mermaid text goes to stdout.
    printed = papy("graph", str(EXAMPLES / "fasta_stats.py"))
    assert printed.status == 0
    assert printed.stdout == mermaid
    dot_program = shutil.which("dot")
    if dot_program:
        checked = subprocess.run(
            [dot_program, "-Tplain", str(tmp_path / "picture.dot")],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
        assert checked.stdout.count("\nedge ") == len(FASTA_PIPES)


@pytest.mark.timeout(60)
def test_remote_and_thread_numaps_are_labelled(papy, tmp_path):
    result = papy("graph", str(EXAMPLES / "remote_fasta_stats.py"), "-o", "r.dot")
    assert result.status == 0, result.output
    assert re.search(
        r"stats\\nsequence_stats\\nremote 127\.0\.0\.1:\d+ x2",
        (tmp_path / "r.dot").read_text(),
    )
    result = papy("graph", str(EXAMPLES / "http_checksums.py"), "-o", "h.mmd")
    assert result.status == 0, result.output
    assert 'fetch<br/>fetch<br/>thread x8"]' in (tmp_path / "h.mmd").read_text()


@pytest.mark.timeout(60)
def test_svg_and_png_with_graphviz(papy, tmp_path):
    result = papy(
        "graph", str(EXAMPLES / "fasta_stats.py"), "-o", "p.svg", "-o", "p.png"
    )
    if shutil.which("dot") is None:
        assert result.status == 6
        assert "apt-get install graphviz" in result.stderr
        assert "Traceback" not in result.output
        pytest.skip("Graphviz 'dot' is not installed: checked the message only")
    assert result.status == 0, result.output
    svg = (tmp_path / "p.svg").read_text()
    assert "<svg" in svg and "kmer_counts" in svg
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.timeout(30)
@pytest.mark.parametrize("target", ["", ".", ".."])
def test_a_folder_or_empty_target_is_a_usage_error(papy, tmp_path, target):
    result = papy("graph", str(EXAMPLES / "fasta_stats.py"), "-o", target)
    assert result.status == 2, result.output
    assert "papy: error: -o '" in result.stderr
    assert "give a file" in result.stderr
    assert list(tmp_path.iterdir()) == []
