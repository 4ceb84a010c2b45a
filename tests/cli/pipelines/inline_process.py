"""Worker functions defined in the pipeline file itself, run on worker
processes (used by the CLI tests). Results go to INLINE_PROCESS_OUTPUT."""

import os
from pathlib import Path

from numap import NuMap
from papy.core import Piper, Plumber, Worker

OFFSET = 1000


def square_plus_offset(inbox):
    return inbox[0] * inbox[0] + OFFSET


results = []


def keep(inbox):
    results.append(inbox[0])
    return inbox[0]


processes = NuMap(worker_type="process", worker_num=2, name="squares")
pipeline = Plumber()
pipeline.add_pipe(
    (
        Piper(Worker(square_plus_offset), parallel=processes, name="square"),
        Piper(Worker(keep), name="keep"),
    )
)


def make_inputs(paths):
    return [range(40)]


def finish():
    Path(os.environ["INLINE_PROCESS_OUTPUT"]).write_text(
        "".join(f"{value}\n" for value in results)
    )
    return []
