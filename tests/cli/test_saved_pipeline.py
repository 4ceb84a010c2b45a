"""A file written by Plumber.save runs and draws with `papy` as it is."""

from __future__ import annotations

import os.path
import re

import pytest
from numap import NuMap
from papy.core import Piper, Plumber, Worker
from papy.util.func import ipasser


@pytest.mark.timeout(60)
def test_saved_pipeline_takes_paths_as_items(papy, tmp_path):
    threads = NuMap(worker_type="thread", worker_num=3, name="io")
    size = Piper(Worker((ipasser, os.path.getsize)), parallel=threads, name="size")
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
    assert '["size<br/>ipasser → getsize<br/>thread x3"]' in drawn.stdout
