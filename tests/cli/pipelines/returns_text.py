"""Hooks that return text where a list is expected (used by the CLI tests).
RETURNS picks which: "make_inputs" returns a str, "stream" returns a list
holding a str as the one input stream, "finish" has finish() return a str,
"finish_number" has it return 5."""

import os

from papy.core import Piper, Plumber, Worker

RETURNS = os.environ["RETURNS"]


def keep(inbox):
    return inbox[0]


pipeline = Plumber()
pipeline.add_pipe((Piper(Worker(keep), name="first"), Piper(Worker(keep), name="last")))


def make_inputs(paths):
    if RETURNS == "make_inputs":
        return "abc"
    if RETURNS == "stream":
        return ["abc"]
    return [range(3)]


def finish():
    if RETURNS == "finish":
        return "all done"
    if RETURNS == "finish_number":
        return 5
    return ["finished"]
