"""make_inputs fails for an INPUT it cannot read (used by the CLI tests)."""

import json

from papy.core import Piper, Plumber, Worker

pipeline = Plumber()
pipeline.add_piper(Piper(Worker(len), name="size"))


def make_inputs(paths):
    if not paths:
        return [[], []]  # one stream too many for the one input piper
    with open(paths[0]) as handle:
        return [json.load(handle)]
