"""Long chains of Pipers: each pulls from the one before in the same
thread, one stack frame inside another, so a chain longer than Python's
recursion limit allows (about 160 linear Pipers at the default 1000)
failed with a RecursionError; Dagger.start makes room for the chain."""

import itertools

import pytest
from numap import NuMap
from papy.core import Piper, Plumber


def add_one(inbox):
    return inbox[0] + 1


def tracked_last():
    # Results are kept for Pipers on a NuMap only.
    return Piper(
        add_one, parallel=NuMap(worker_type="thread", worker_num=1), track=True
    )


def run_chain(pipers, items):
    plumber = Plumber()
    for upstream, downstream in itertools.pairwise(pipers):
        plumber.add_pipe((upstream, downstream))
    plumber.start([range(items)])
    plumber.run()
    plumber.wait(60)
    results = plumber.stats["pipers_tracked"][pipers[-1]]
    plumber.stop()
    return results


@pytest.mark.timeout(90)
def test_a_chain_of_250_linear_pipers_runs():
    pipers = [Piper(add_one) for _ in range(249)] + [tracked_last()]
    assert run_chain(pipers, 10) == {index: index + 250 for index in range(10)}
