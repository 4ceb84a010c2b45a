"""`papy run --workers N` on a NuMap built with an explicit buffer: the
stride that follows the new worker count stays within that buffer."""

from __future__ import annotations

import json

import pytest

# A NuMap with 2 process workers and buffer=2 (its stride defaults to 2).
# finish() writes the results and the NuMap's settings as the run left them.
CAPPED_PIPELINE = """
import json

from numap import NuMap
from papy.core import Piper, Plumber, Worker


def square(inbox):
    return inbox[0] * inbox[0]


results = []


def keep(inbox):
    results.append(inbox[0])
    return inbox[0]


capped = NuMap(worker_type="process", worker_num=2, buffer=2, name="capped")
pipeline = Plumber()
pipeline.add_pipe(
    (
        Piper(Worker(square), parallel=capped, name="square"),
        Piper(Worker(keep), name="keep"),
    )
)


def make_inputs(paths):
    return [range(30)]


def finish():
    settings = {
        "worker_num": capped.worker_num,
        "stride": capped.stride,
        "buffer": capped.buffer,
    }
    with open("capped.json", "w") as handle:
        json.dump({"results": results, "settings": settings}, handle)
    return []
"""


@pytest.mark.timeout(40)
def test_more_workers_keep_the_stride_within_an_explicit_buffer(papy, tmp_path):
    (tmp_path / "capped.py").write_text(CAPPED_PIPELINE)
    result = papy("run", "capped.py", "--workers", "4", timeout=30)
    assert result.status == 0, result.output
    written = json.loads((tmp_path / "capped.json").read_text())
    assert written["results"] == [n * n for n in range(30)]
    settings = written["settings"]
    assert settings["worker_num"] == 4
    assert settings["buffer"] == 2
    assert settings["stride"] <= settings["buffer"]
