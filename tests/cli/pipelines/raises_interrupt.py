"""A pipeline whose function raises KeyboardInterrupt (or, with
RAISES=GeneratorExit, GeneratorExit) itself for item 3 (used by the CLI
tests). RUNS_ON picks where the function runs: linear, thread or process."""

import os

from numap import NuMap
from papy.core import Piper, Plumber, Worker

RAISES = {"KeyboardInterrupt": KeyboardInterrupt, "GeneratorExit": GeneratorExit}
RUNS_ON = os.environ.get("RUNS_ON", "linear")


def raise_on_three(inbox):
    if inbox[0] == 3:
        raise RAISES[os.environ.get("RAISES", "KeyboardInterrupt")]("raised by me")
    return inbox[0]


if RUNS_ON == "linear":
    raiser = Piper(Worker(raise_on_three), name="raiser")
else:
    numap = NuMap(worker_type=RUNS_ON, worker_num=2, name="numap")
    raiser = Piper(Worker(raise_on_three), parallel=numap, name="raiser")


def keep(inbox):
    return inbox[0]


pipeline = Plumber()
pipeline.add_pipe((raiser, Piper(Worker(keep), name="keep")))


def make_inputs(paths):
    return [range(8)]
