"""A pipeline whose finish() raises (used by the CLI tests)."""

from papy.core import Piper, Plumber, Worker


def double(inbox):
    return inbox[0] * 2


pipeline = Plumber()
pipeline.add_pipe((Piper(Worker(double), name="double"),))


def make_inputs(paths):
    return [range(5)]


def finish():
    raise OSError("the disk is full")
