"""An input that gives one item, then waits forever for the next one
(used by the CLI tests): nothing can make it end or give another item."""

import threading

from papy.core import Piper, Plumber, Worker


def first(inbox):
    return inbox[0]


pipeline = Plumber()
pipeline.add_piper(Piper(Worker(first), name="item"))


def one_then_nothing():
    yield 1
    threading.Event().wait()


def make_inputs(paths):
    return [one_then_nothing()]
