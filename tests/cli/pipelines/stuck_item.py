"""A pipeline whose function never finishes its second item (used by the
CLI tests of a second Ctrl-C): item 0 goes through, item 1 sleeps 600 s."""

import time

from papy.core import Piper, Plumber, Worker


def stall_on_one(inbox):
    if inbox[0] == 1:
        time.sleep(600)
    return inbox[0]


pipeline = Plumber()
pipeline.add_pipe((Piper(Worker(stall_on_one), name="stall"),))


def make_inputs(paths):
    return [range(3)]
