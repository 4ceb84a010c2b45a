"""One input Piper feeding two output Pipers (used by the CLI tests): each
of the 5 items gives a result at both outputs, and item 2 fails, so its
error reaches both."""

from papy.core import Piper, Plumber, Worker


def fail_on_two(inbox):
    if inbox[0] == 2:
        raise ValueError("two")
    return inbox[0]


def keep(inbox):
    return inbox[0]


source = Piper(Worker(fail_on_two), name="source")
pipeline = Plumber()
pipeline.add_pipe((source, Piper(Worker(keep), name="left")))
pipeline.add_pipe((source, Piper(Worker(keep), name="right")))


def make_inputs(paths):
    return [range(5)]
