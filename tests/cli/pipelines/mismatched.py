"""A pipeline whose pipe does not align: `pairs` produces 2 items per input
but `single` consumes 1 (used by the CLI tests; refused at start)."""

from papy.core import Piper, Plumber, Worker


def pair(inbox):
    return inbox[0], inbox[0]


pairs = Piper(Worker(pair), produce=2, name="pairs")
single = Piper(Worker(pair), name="single")
pipeline = Plumber()
pipeline.add_pipe((pairs, single))


def make_inputs(paths):
    return [range(4)]
