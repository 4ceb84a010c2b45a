"""The worker byte protocol, served by real subprocesses over real pipes."""

import functools
import inspect
import io
import operator
import os
import signal
import subprocess
import sys

import multiprocess
import pytest
from numap import _protocol
from numap._channel import ChannelLost, ProcessChannel


def test_plain_pickle_is_used_when_it_works():
    data = _protocol.dumps([1, "two", 3.0])
    assert data[:1] == _protocol.PICKLE_FLAG
    assert _protocol.loads(data) == [1, "two", 3.0]


def test_dill_is_the_fallback_for_lambdas_and_closures():
    offset = 5
    data = _protocol.dumps(lambda x: x + offset)
    assert data[:1] == _protocol.DILL_FLAG
    assert _protocol.loads(data)(1) == 6


def test_prefer_dill_pickles_functions_with_dill():
    data = _protocol.dumps(operator.neg, prefer_dill=True)
    assert data[:1] == _protocol.DILL_FLAG
    assert _protocol.loads(data)(3) == -3


def test_unpicklable_object_raises_payload_error_naming_the_cause():
    with pytest.raises(_protocol.PayloadError, match="generator"):
        _protocol.dumps(x for x in [])


def test_unknown_payload_flag_is_refused():
    with pytest.raises(_protocol.PayloadError, match="unknown payload flag"):
        _protocol.loads(b"Xjunk")


@pytest.mark.timeout(10)
def test_frames_round_trip_through_a_real_os_pipe():
    read_fd, write_fd = os.pipe()
    with os.fdopen(write_fd, "wb") as writer, os.fdopen(read_fd, "rb") as reader:
        for data in (b"", b"a", os.urandom(50_000)):
            _protocol.write_frame(writer, data)
        writer.close()
        assert _protocol.read_frame(reader) == b""
        assert _protocol.read_frame(reader) == b"a"
        assert len(_protocol.read_frame(reader)) == 50_000
        assert _protocol.read_frame(reader) is None


def test_stream_ending_inside_a_frame_is_an_eof_error():
    stream = io.BytesIO()
    _protocol.write_frame(stream, b"0123456789")
    truncated = io.BytesIO(stream.getvalue()[:-3])
    with pytest.raises(EOFError, match="7 of 10"):
        _protocol.read_frame(truncated)


class StdioWorker:
    """A client for a worker subprocess that runs serve_stdio()."""

    def __init__(self, argv):
        # The test functions below are found by reference in this module.
        # Entries already on PYTHONPATH stay (they may name the numap under
        # test, e.g. in a git worktree).
        path = [os.path.dirname(__file__), os.environ.get("PYTHONPATH", "")]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)))
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
        )
        self.batches = 0

    def send_task(self, task_id, func, args=(), kwargs=None):
        payload = _protocol.dumps_task([(func, args, kwargs)])
        _protocol.write_frame(
            self.process.stdin, _protocol.encode_task(task_id, payload)
        )

    def run(self, task_id, items, start=0):
        self.batches += 1
        frame = _protocol.encode_batch(
            self.batches, task_id, start, len(items), _protocol.dumps(items)
        )
        _protocol.write_frame(self.process.stdin, frame)
        batch_id, _, payload = _protocol.decode_result(
            _protocol.read_frame(self.process.stdout)
        )
        assert batch_id == self.batches
        return _protocol.loads(payload)

    def stop(self):
        _protocol.write_frame(self.process.stdin, _protocol.encode_stop())
        assert self.process.wait(timeout=10) == 0
        self.process.stdin.close()
        self.process.stdout.close()


def installed_worker():
    return StdioWorker(
        [sys.executable, "-c", "from numap._protocol import serve_stdio; serve_stdio()"]
    )


def shipped_source_worker():
    """The module's source run where neither numap nor dill can be imported."""
    source = inspect.getsource(_protocol) + "\nserve_stdio()\n"
    return StdioWorker([sys.executable, "-I", "-S", "-c", source])


def raise_for_three(x):
    if x == 3:
        raise ValueError(f"bad item {x}")
    return x * 10


def generator_for_two(x):
    if x == 2:
        return (i for i in range(3))
    return x


@pytest.mark.timeout(20)
def test_serve_runs_batches_and_reports_errors_per_item():
    worker = installed_worker()
    worker.send_task(0, raise_for_three)
    values, errors = worker.run(0, [1, 2, 3, 4])
    assert values == [10, 20, None, 40]
    assert list(errors) == [2]
    error = errors[2]
    assert isinstance(error, ValueError)
    assert "bad item 3" in str(error)
    assert "raise ValueError" in error.__notes__[0]
    assert "Traceback in worker pid" in error.__notes__[0]
    worker.stop()


@pytest.mark.timeout(20)
def test_serve_sends_lambdas_with_dill_and_uses_args_and_kwargs():
    worker = installed_worker()
    worker.send_task(7, lambda x, a, b=0: x + a + b, args=(100,), kwargs={"b": 1000})
    values, errors = worker.run(7, [1, 2], start=50)
    assert values == [1101, 1102]
    assert errors == {}
    worker.stop()


@pytest.mark.timeout(20)
def test_unpicklable_result_is_an_error_for_that_item_only():
    worker = installed_worker()
    worker.send_task(0, generator_for_two)
    values, errors = worker.run(0, [1, 2, 3], start=10)
    assert values == [1, None, 3]
    kind, message = errors[1]
    assert kind == _protocol.SERIALIZATION_ERROR
    assert "item 11 of task 0" in message
    worker.stop()


class NeedsTwoArgs(Exception):
    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")


def raise_unrebuildable(x):
    raise NeedsTwoArgs(x, x)


@pytest.mark.timeout(20)
def test_exception_that_cannot_be_rebuilt_travels_as_text():
    worker = installed_worker()
    worker.send_task(0, raise_unrebuildable)
    values, errors = worker.run(0, [5])
    kind, message = errors[0]
    assert kind == _protocol.REMOTE_ERROR
    assert "NeedsTwoArgs: 5-5" in message
    assert "raise NeedsTwoArgs" in message
    worker.stop()


@pytest.mark.timeout(20)
def test_shipped_source_serves_without_numap_or_dill():
    worker = shipped_source_worker()
    worker.send_task(0, operator.neg)
    assert worker.run(0, [1, 2]) == ([-1, -2], {})
    # A lambda needs dill, which is missing there: every item says so.
    worker.send_task(1, lambda x: x)
    values, errors = worker.run(1, [1, 2])
    assert values == [None, None]
    kind, message = errors[0]
    assert kind == _protocol.SERIALIZATION_ERROR
    assert "dill" in message
    worker.stop()


@pytest.mark.timeout(20)
def test_serve_returns_at_end_of_input():
    worker = installed_worker()
    worker.process.stdin.close()
    assert worker.process.wait(timeout=10) == 0
    worker.process.stdout.close()


def _task_frame(task_id, func):
    payload = _protocol.dumps_task([(func, (), {})])
    return _protocol.encode_task(task_id, payload)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_process_channel_round_trip_and_close(start_method):
    # fork: two os.pipe()s; spawn: one duplex Pipe passed to the child.
    channel = ProcessChannel(multiprocess.get_context(start_method))
    assert channel.label == f"process {channel.pid}"
    # A builtin: a spawned child cannot import this test module to rebuild a
    # function defined here.
    channel.send(_task_frame(0, functools.partial(pow, exp=2)))
    channel.send(_protocol.encode_batch(1, 0, 0, 3, _protocol.dumps([1, 2, 3])))
    batch_id, _, payload = _protocol.decode_result(channel.recv())
    assert (batch_id, _protocol.loads(payload)) == (1, ([1, 4, 9], {}))
    channel.close()
    channel.close()
    assert not channel.is_alive()


@pytest.mark.timeout(20)
def test_killed_process_channel_reports_the_signal():
    channel = ProcessChannel()
    os.kill(channel.pid, signal.SIGKILL)
    with pytest.raises(ChannelLost, match="killed by SIGKILL") as lost:
        channel.recv()
    assert str(channel.pid) in lost.value.reason
    channel.close()


@pytest.mark.timeout(20)
def test_process_channel_reports_exit_code():
    channel = ProcessChannel()
    channel.send(_task_frame(0, lambda x: os._exit(3)))
    channel.send(_protocol.encode_batch(1, 0, 0, 1, _protocol.dumps([0])))
    with pytest.raises(ChannelLost, match="exited with code 3"):
        channel.recv()
    channel.close()
