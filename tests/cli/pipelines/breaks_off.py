"""An input stream that breaks off after three items (used by the CLI tests).

The three items read go through and are written, one per line, to the file
named by BREAKS_OFF_OUTPUT.
"""

import os
from pathlib import Path

from papy.core import Piper, Plumber, Worker

kept = []


def keep(inbox):
    kept.append(inbox[0])
    return inbox[0]


pipeline = Plumber()
pipeline.add_piper(Piper(Worker(keep), name="keep"))


def readings():
    yield from ("a", "b", "c")
    raise OSError("the device went away")


def make_inputs(paths):
    return [readings()]


def finish():
    Path(os.environ["BREAKS_OFF_OUTPUT"]).write_text("".join(k + "\n" for k in kept))
    return []
