"""Follows its INPUT file like `tail -f` (used by the CLI tests): the input
never ends by itself, only when the run is stopped."""

from papy.core import Piper, Plumber, Worker
from papy.util.func import make_lines


def first(inbox):
    return inbox[0]


pipeline = Plumber()
pipeline.add_piper(Piper(Worker(first), name="lines"))


def make_inputs(paths):
    return [make_lines(open(paths[0]), follow=True)]  # noqa: SIM115
