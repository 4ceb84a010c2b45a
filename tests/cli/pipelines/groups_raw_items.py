"""A consume=2 Piper on a process NuMap of 2 workers (stride 2) over raw
input items, then a linear Piper printing each group (used by the CLI
tests): its groups are items (i, i + 2), laid out by the stride, which
`--workers` must not change."""

from numap import NuMap
from papy.core import Piper, Plumber, Worker


def pair_up(inbox):
    return "+".join(inbox[0])


def show(inbox):
    print(f"group {inbox[0]}", flush=True)
    return inbox[0]


pool = NuMap(worker_type="process", worker_num=2, name="pool")
pipeline = Plumber()
pipeline.add_pipe(
    (
        Piper(Worker(pair_up), parallel=pool, consume=2, name="pair_up"),
        Piper(Worker(show), name="show"),
    )
)


def make_inputs(paths):
    return [["a", "b", "c", "d", "e", "f", "g", "h"]]
