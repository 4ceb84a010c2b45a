"""Regression tests for defects found in the seventh review of papy.core:
undoing a failed Plumber.start, stop/pause with a waiting input, stride
mismatches across produce/consume pipes, an interrupted stop, counters
after a worker dies in chained Pipers."""

import pytest
from core_functions import first
from numap import HostUnreachableError, NuMap
from papy.core import Piper, Plumber
from test_parallel import children

# --- 1. a failed start is undone whole ----------------------------------------


def refused_remote_numap():
    """A NuMap whose only worker is on a host that refuses (port 1 of the
    loopback: nothing listens there), so starting it fails at once."""
    return NuMap(
        worker_type="process", worker_num=0, worker_remote=[("127.0.0.1:1", 1)]
    )


@pytest.mark.timeout(60)
def test_failed_start_stops_started_numaps_and_can_start_again():
    local = NuMap(worker_type="process", worker_num=2, name="local")
    head = Piper(first, parallel=local, name="head")
    tail = Piper(first, parallel=refused_remote_numap(), name="tail")
    plumber = Plumber(pipes=[(head, tail)])
    for _ in range(2):
        # The original error, not a NuMapError from the undo.
        with pytest.raises(HostUnreachableError):
            plumber.start([range(5)])
        assert children() == []  # the local NuMap's workers are gone
        assert head.state == tail.state == "new"
    plumber.del_piper(tail, forced=True)
    plumber.add_pipe((head, Piper(first, name="linear_tail")))
    plumber.start([range(5)])
    plumber.run()
    plumber.wait(30)
    plumber.stop()
    assert plumber.stats["pipers"]["linear_tail"]["items_out"] == 5
    assert children() == []
