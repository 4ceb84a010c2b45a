"""A process NuMap with 2 workers and an explicit buffer=2 (its stride
defaults to 2), for `papy run --workers N` (used by the CLI tests).
finish() writes the results and the NuMap's settings, as the run left them,
as JSON to CAPPED_BUFFER_OUTPUT."""

import json
import os
from pathlib import Path

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
    written = json.dumps({"results": results, "settings": settings})
    Path(os.environ["CAPPED_BUFFER_OUTPUT"]).write_text(written)
    return []
