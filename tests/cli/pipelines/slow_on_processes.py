"""Slow items on two worker processes (used by the CLI tests of SIGTERM and
SIGHUP): each item takes SLOW_SECONDS (default 3) s; finish() reports how
many results reached the end."""

import os
import time

from numap import NuMap
from papy.core import Piper, Plumber, Worker

SECONDS = float(os.environ.get("SLOW_SECONDS", "3"))


def slowly(inbox):
    time.sleep(SECONDS)
    return inbox[0]


results = []


def keep(inbox):
    results.append(inbox[0])
    return inbox[0]


numap = NuMap(worker_type="process", worker_num=2, name="numap")
pipeline = Plumber()
pipeline.add_pipe(
    (
        Piper(Worker(slowly), parallel=numap, name="slow"),
        Piper(Worker(keep), name="keep"),
    )
)


def make_inputs(paths):
    return [range(20)]


def finish():
    return [f"finish: {len(results)} results"]
