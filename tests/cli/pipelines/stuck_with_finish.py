"""A pipeline whose worker process never finishes item 3 (used by the CLI
tests of a second Ctrl-C), with a finish() that says it ran."""

import time

from numap import NuMap
from papy.core import Piper, Plumber, Worker


def stall_on_three(inbox):
    if inbox[0] == 3:
        time.sleep(600)
    return inbox[0]


numap = NuMap(worker_type="process", worker_num=2)
pipeline = Plumber()
pipeline.add_pipe((Piper(Worker(stall_on_three), parallel=numap, name="stall"),))


def make_inputs(paths):
    return [range(10)]


def finish():
    return ["finish() ran after the interrupted run"]
