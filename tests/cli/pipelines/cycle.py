"""A pipeline whose graph has a cycle, added through the add_edge a Plumber
inherits from DictGraph (add_pipe refuses cycles) (used by the CLI tests)."""

from papy.core import Piper, Plumber, Worker
from papy.util.func import ipasser

a = Piper(Worker(ipasser), name="a")
b = Piper(Worker(ipasser), name="b")
pipeline = Plumber(pipes=[(a, b)])
pipeline.add_edge((a, b))  # with the pipe's edge (b, a): a -> b -> a


def make_inputs(paths):
    return [[1, 2, 3]]
