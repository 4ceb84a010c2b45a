"""A file written by Plumber.save runs and draws with `papy` as it is."""

from __future__ import annotations

import importlib
import re
import sys

import pytest
from numap import NuMap
from papy.core import Piper, Plumber, Worker
from papy.util.func import ipasser

SIZES_MODULE = """\
import os.path


def file_size(inbox):
    return os.path.getsize(inbox[0])
"""


@pytest.mark.timeout(60)
def test_saved_pipeline_takes_paths_as_items(papy, tmp_path, monkeypatch, request):
    # A module next to the saved file, so that the file imports from it.
    (tmp_path / "saved_sizes.py").write_text(SIZES_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    request.addfinalizer(lambda: sys.modules.pop("saved_sizes", None))
    file_size = importlib.import_module("saved_sizes").file_size
    threads = NuMap(worker_type="thread", worker_num=3, name="io")
    # file_size reads the path ipasser returned as its inbox[0]
    size = Piper(Worker((ipasser, file_size)), parallel=threads, name="size")
    keep = Piper(Worker(ipasser), name="keep")
    plumber = Plumber()
    plumber.add_pipe((size, keep))
    plumber.save(str(tmp_path / "saved.py"))
    (tmp_path / "a.bin").write_bytes(b"x" * 10)
    (tmp_path / "b.bin").write_bytes(b"y" * 20)

    result = papy("run", "saved.py", "a.bin", "b.bin", "a.bin")
    assert result.status == 0, result.output
    assert re.search(
        r"\] piper summary .*items_in=3 items_out=3 piper=size runs_on='thread x3'",
        result.stdout,
    )
    drawn = papy("graph", "saved.py")
    assert drawn.status == 0, drawn.output
    assert '["size<br/>ipasser → file_size<br/>thread x3"]' in drawn.stdout
