"""A pipeline whose function fails on some items (used by the CLI tests).

``invert`` divides by ``value % 7``, so items 0, 7, 14, ... raise
ZeroDivisionError; every other item goes through and is written, one per
line, to the file named by the environment variable SOME_ITEMS_FAIL_OUTPUT.
"""

import os
from pathlib import Path

from numap import NuMap
from papy.core import Piper, Plumber, Worker


def invert(inbox):
    value = inbox[0]
    return value, 1 / (value % 7)


results = []


def keep(inbox):
    results.append(inbox[0])
    return inbox[0]


threads = NuMap(worker_type="thread", worker_num=2, name="threads")
inverter = Piper(Worker(invert), parallel=threads, name="invert")
keeper = Piper(Worker(keep), name="keep")

pipeline = Plumber()
pipeline.add_pipe((inverter, keeper))


def make_inputs(paths):
    return [range(50)]


def finish():
    path = Path(os.environ["SOME_ITEMS_FAIL_OUTPUT"]).resolve()
    path.write_text("".join(f"{value}\t{inverse!r}\n" for value, inverse in results))
    return [f"{len(results)} results written to {path}"]
