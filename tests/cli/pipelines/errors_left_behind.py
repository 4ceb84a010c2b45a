"""An error that never reaches the output (used by the CLI tests).

Two input Pipers are zipped by 'join': 'left' reads 3 items and fails on
its third, 'right' reads 2. 'join' pulls a third row from 'left' before it
finds 'right' at its end, so the error of 'left' is counted but no output
sees it.
"""

from papy.core import Piper, Plumber, Worker


def fail_on_third(inbox):
    if inbox[0] == 2:
        raise ValueError("third item")
    return inbox[0]


def pair(inbox):
    return tuple(inbox)


left = Piper(Worker(fail_on_third), name="left", branch=1)
right = Piper(Worker(pair), name="right", branch=2)
join = Piper(Worker(pair), name="join")
pipeline = Plumber()
pipeline.add_pipe((left, join))
pipeline.add_pipe((right, join))


def make_inputs(paths):
    return [range(3), range(2)]
