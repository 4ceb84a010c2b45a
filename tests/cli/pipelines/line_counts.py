"""Counts the lines of each INPUT file (used by the CLI tests).

It defines no make_inputs, so its input Piper receives the INPUT paths
themselves as items. Results go to the file named by LINE_COUNTS_OUTPUT.
"""

import os
from pathlib import Path

from papy.core import Piper, Plumber, Worker


def count_lines(inbox):
    path = inbox[0]
    with open(path, "rb") as handle:
        return f"{path}\t{sum(1 for _ in handle)}"


lines = []


def collect(inbox):
    lines.append(inbox[0])
    return inbox[0]


pipeline = Plumber()
pipeline.add_pipe(
    (Piper(Worker(count_lines), name="count"), Piper(Worker(collect), name="collect"))
)


def finish():
    path = Path(os.environ["LINE_COUNTS_OUTPUT"]).resolve()
    path.write_text("".join(line + "\n" for line in lines))
    return [f"line counts written to {path}"]
