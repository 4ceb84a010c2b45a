"""Splits each item in two halves and joins them again (used by the CLI
tests): a produce=2 Piper on a process NuMap whose stride is its default (its
number of workers, 2) feeds a consume=2 Piper on a thread NuMap of stride 2
set explicitly. Correct as written; `--workers 4` must keep it correct.
The last Piper raises for a pair whose halves come from different items."""

from numap import NuMap
from papy.core import Piper, Plumber, Worker


def halves(inbox):
    return (f"L{inbox[0]}", f"R{inbox[0]}")


def rejoin(inbox):
    return inbox[0]  # the two items consumed from upstream


def check_pair(inbox):
    left, right = inbox[0]
    if (left[0], right[0]) != ("L", "R") or left[1:] != right[1:]:
        raise ValueError(f"mixed pair {inbox[0]}")
    return inbox[0]


cpu = NuMap(worker_type="process", worker_num=2, name="cpu")
io = NuMap(worker_type="thread", worker_num=8, stride=2, name="io")
pipeline = Plumber()
pipeline.add_pipe(
    (
        Piper(Worker(halves), parallel=cpu, produce=2, name="split"),
        Piper(Worker(rejoin), parallel=io, consume=2, name="rejoin"),
        Piper(Worker(check_pair), name="check"),
    )
)


def make_inputs(paths):
    return [range(8)]
