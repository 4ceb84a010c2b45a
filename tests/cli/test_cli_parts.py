"""Small parts of `papy run`: guarded input streams, totals, failed items."""

from __future__ import annotations

import traceback

import pytest
from hypothesis import given
from hypothesis import strategies as st
from numap import NuMap, WorkerLostError
from papy.core import Piper, PiperError, Plumber, Worker, WorkerError
from papy.core._cli_errors import ErrorCollector, FailedItem
from papy.core._cli_inputs import GuardedStream
from papy.core._cli_progress import PiperCounts, totals
from papy.core._cli_run import OverrideError, override_workers


def breaking(items, error):
    yield from items
    raise error


@given(st.lists(st.integers(), max_size=30), st.booleans())
@pytest.mark.timeout(30)
def test_guarded_stream_hands_out_every_item_then_ends(items, breaks):
    source = breaking(items, ValueError("bad")) if breaks else iter(items)
    stream = GuardedStream("reader", source)
    assert list(stream) == items
    assert list(stream) == []  # stays ended
    assert stream.items == len(items)
    failure = stream.failure()
    if breaks:
        assert failure is not None
        assert str(failure) == (
            f"reading the input of piper 'reader' failed after {len(items)} "
            "item(s): ValueError: bad"
        )
        assert "Traceback" in failure.details
    else:
        assert failure is None


@pytest.mark.timeout(10)
def test_guarded_stream_refuses_what_is_not_iterable():
    with pytest.raises(TypeError):
        GuardedStream("x", 5)


@pytest.mark.timeout(10)
def test_totals_count_inputs_and_outputs_once():
    counts = [
        PiperCounts("read", "linear", 10, 10, 0, 0.1, is_input=True),
        PiperCounts("work", "process x2", 10, 10, 2, 1.0),
        PiperCounts("a", "linear", 10, 10, 2, 0.1, is_output=True),
        PiperCounts("b", "linear", 10, 10, 2, 0.1, is_output=True),
    ]
    total = totals(counts, 3.0)
    assert (total.items_in, total.items_out, total.errors) == (10, 20, 4)
    assert total.pipers_with_errors == ()  # the errors reached the outputs
    assert total.failed
    stuck = totals(
        counts[:2] + [PiperCounts("a", "linear", 8, 8, 0, 0.1, False, True)], 3.0
    )
    assert (stuck.errors, stuck.pipers_with_errors, stuck.failed) == (
        0,
        ("work",),
        True,
    )
    clean = totals([PiperCounts("only", "linear", 3, 3, 0, 0.0, True, True)], 1.0)
    assert not clean.failed


@pytest.mark.timeout(10)
def test_failed_item_names_where_it_started():
    try:
        int("seven")
    except ValueError as error:
        worker_error = WorkerError(
            "Worker 'w': function 'f' raised ValueError()",
            error,
            traceback.format_exc(),
            "f",
        )
    origin = PiperError("Piper 'first': Worker 'w' ...", worker_error)
    passed_on = PiperError("Piper 'second': upstream error", origin)
    failed = FailedItem("second", 4, passed_on)
    assert failed.origin() is origin
    assert failed.summary() == "second result #4: Piper 'first': Worker 'w' ..."
    assert "ValueError: invalid literal" in failed.traceback()
    assert FailedItem("x", 0, PiperError("timeout", TimeoutError())).traceback() == ""


def ident(inbox):
    return inbox[0]


@pytest.mark.timeout(10)
def test_worker_overrides_keep_remote_workers_and_follow_default_strides():
    default = NuMap(worker_type="thread", worker_num=2)
    fixed = NuMap(worker_type="process", worker_num=2, stride=32)
    remote = NuMap(worker_num=0, worker_remote=[("127.0.0.1:1", 2)])
    pipeline = Plumber()
    pipeline.add_pipe(
        (
            Piper(Worker(ident), parallel=default),
            Piper(Worker(ident), parallel=fixed),
            Piper(Worker(ident), parallel=remote),
        )
    )
    override_workers(pipeline, 5, None)
    assert (default.worker_num, default.stride) == (5, 5)
    assert (fixed.worker_num, fixed.stride) == (5, 32)
    assert (remote.worker_num, remote.stride) == (0, 2)
    override_workers(pipeline, None, "process")
    assert default.worker_type == "process"
    with pytest.raises(OverrideError, match="has remote workers"):
        override_workers(pipeline, None, "thread")


def odd_fails(inbox):
    if inbox[0] % 2:
        raise ValueError(f"odd {inbox[0]}")
    return inbox[0]


@pytest.mark.timeout(30)
def test_error_collector_keeps_the_first_failures_at_their_positions():
    pipeline = Plumber()
    out = Piper(Worker(odd_fails), name="out")
    pipeline.add_piper(out)
    collector = ErrorCollector(2)
    collector.attach(pipeline, {id(out): "out"})
    pipeline.start([range(10)])
    pipeline.run()
    pipeline.wait(20)
    pipeline.stop()
    first = collector.first()
    assert [(f.output, f.position) for f in first] == [("out", 1), ("out", 3)]
    assert str(first[1].origin().exception.exception) == "odd 3"


def lost_to(signal_name: str) -> PiperError:
    lost = WorkerLostError(
        f"process 7 was killed by {signal_name} while it held item 0"
    )
    return PiperError("the NuMap failed", lost)


@pytest.mark.timeout(10)
def test_totals_leave_out_the_results_the_ending_signal_stopped():
    counts = [
        PiperCounts("work", "process x2", 5, 5, 3, 1.0, is_input=True),
        PiperCounts("out", "linear", 5, 5, 3, 0.1, is_output=True),
    ]
    total = totals(counts, 1.0, stopped=3)
    assert (total.errors, total.stopped, total.failed) == (0, 3, False)


@pytest.mark.timeout(10)
def test_error_collector_sets_apart_results_an_ending_signal_stopped():
    collector = ErrorCollector(2)
    collector._keep("out", 0, lost_to("SIGTERM"))
    collector._keep("out", 1, PiperError("failed", ValueError("bad")))
    collector._keep("out", 2, lost_to("SIGKILL"))  # not an ending signal
    collector._keep("out", 3, lost_to("SIGTERM"))
    assert collector.stopped("SIGTERM") == 2
    assert collector.stopped(None) == 0
    assert [f.position for f in collector.first("SIGTERM")] == [1, 2]
    assert [f.position for f in collector.first("SIGHUP")] == [0, 1]
    assert [f.position for f in collector.first()] == [0, 1]
