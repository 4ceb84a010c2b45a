"""A debug=True Piper whose function raises for item 3 (used by the CLI
tests); on a thread NuMap if DEBUG_FAILS_NUMAP is set, else linear."""

import os

from numap import NuMap
from papy.core import Piper, Plumber, Worker


def fail_on_three(inbox):
    if inbox[0] == 3:
        raise ValueError(f"bad item {inbox[0]}")
    return inbox[0]


numap = (
    NuMap(worker_type="thread", worker_num=1, stride=1)
    if (os.environ.get("DEBUG_FAILS_NUMAP"))
    else False
)
pipeline = Plumber()
pipeline.add_piper(Piper(Worker(fail_on_three), parallel=numap, debug=True, name="a"))


def make_inputs(paths):
    return [range(10)]


def finish():
    return ["finish called"]
