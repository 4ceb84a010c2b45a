"""papy.core failure paths:
undoing a failed Plumber.start, stop/pause with a waiting input, stride
mismatches across produce/consume pipes, an interrupted stop, counters
after a worker dies in chained Pipers."""

import functools
import operator
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from core_functions import die_on, first, plus
from numap import HostUnreachableError, NuMap
from papy.core import Dagger, DaggerError, Piper, Plumber, Worker, WorkerError
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
    linear_tail = Piper(first, name="linear_tail")
    plumber.add_pipe((head, linear_tail))
    plumber.start([range(5)])
    plumber.run()
    plumber.wait(30)
    plumber.stop()
    assert plumber.stats["pipers"][linear_tail]["items_out"] == 5
    assert children() == []


# A Ctrl-C while the start waits for a remote host (the test's socket): the
# local NuMap already started must be stopped whole, and the Ctrl-C (or, if
# the host's hang-up is seen first, the HostUnreachableError) propagates.
INTERRUPTED_START = """
import sys, psutil
from numap import NuMap
from papy.core import Piper, Plumber

def first(inbox):
    return inbox[0]

local = NuMap(worker_type="process", worker_num=2)
remote = NuMap(worker_num=0, worker_remote=[("127.0.0.1:" + sys.argv[1], 1)])
plumber = Plumber(pipes=[(Piper(first, parallel=local), Piper(first, parallel=remote))])
try:
    plumber.start([range(5)])
except BaseException as error:
    print(type(error).__name__, flush=True)
print(len(psutil.Process().children(recursive=True)), flush=True)
"""


@pytest.mark.timeout(40)
def test_start_interrupted_while_connecting_stops_the_started_numaps(tmp_path):
    script = tmp_path / "interrupted_start.py"
    script.write_text(INTERRUPTED_START)
    host = socket.socket()
    host.bind(("127.0.0.1", 0))
    host.listen(1)
    host.settimeout(30)
    port = str(host.getsockname()[1])
    process = subprocess.Popen(
        [sys.executable, str(script), port],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        connection, _ = host.accept()  # the local NuMap has started by now
        process.send_signal(signal.SIGINT)
        connection.close()  # ends the handshake the start waits in
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
        host.close()
    raised, children = out.split()
    assert raised in ("KeyboardInterrupt", "HostUnreachableError"), err
    assert children == "0", err


# --- 5. stop() again after a Ctrl-C interrupted stop() ------------------------

# The item 0 is held until the main thread waits inside the second stop():
# a stop that does not wait reads the tracked results without it.
INTERRUPTED_STOP = """
import os, sys, threading, time
from numap import NuMap
from papy.core import Piper, Plumber

gate = threading.Event()
entered = threading.Event()

def held(inbox):
    if inbox[0] == 0:
        entered.set()
        gate.wait()
    return inbox[0]

def first(inbox):
    return inbox[0]

def main_thread_waits_in_stop():
    frame = sys._current_frames().get(threading.main_thread().ident)
    top = frame
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return "stop" in names and top.f_code.co_filename.endswith("threading.py")

def when_main_waits_in_stop(action):
    def watch():
        while not main_thread_waits_in_stop():
            time.sleep(0.01)
        action()
    threading.Thread(target=watch, daemon=True).start()

numap = NuMap(worker_type="thread", worker_num=1, stride=1)
tracked = Piper(held, parallel=numap, name="tracked", track=True)
after = Piper(first, name="after")
plumber = Plumber(pipes=[(tracked, after)])
plumber.start([range(3)])
plumber.run()
entered.wait()
when_main_waits_in_stop(lambda: print("waiting in stop", flush=True))
try:
    plumber.stop()
except KeyboardInterrupt:
    print("interrupted", flush=True)
when_main_waits_in_stop(gate.set)
plumber.stop()
print(sorted(plumber.stats["pipers_tracked"][tracked]), flush=True)
print(plumber.stats["pipers"][after]["items_out"], flush=True)
"""


@pytest.mark.timeout(30)
def test_stop_after_an_interrupted_stop_waits_for_the_items(tmp_path):
    script = tmp_path / "interrupted_stop.py"
    script.write_text(INTERRUPTED_STOP)
    process = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout.readline() == "waiting in stop\n"
        process.send_signal(signal.SIGINT)  # the Ctrl-C, from another process
        out, err = process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 0, err
    # The first stop closed the input, so only item 0 (in flight) is out.
    assert out.splitlines() == ["interrupted", "[0]", "1"]


# --- 2. stop() and pause() while the input waits for data -------------------


def follow_pipeline(path, kind):
    """A Plumber reading ``path`` with make_lines(follow=True), on a NuMap of
    ``kind`` ("linear": none); its Piper is named "lines"."""
    from papy.util.func import make_lines

    numap = None if kind == "linear" else NuMap(worker_type=kind, worker_num=2)
    piper = Piper(first, parallel=numap or False, name="lines")
    plumber = Plumber()
    plumber.add_piper(piper)
    handle = open(path)  # noqa: SIM115 (closed by the caller)
    return plumber, handle, make_lines(handle, follow=True)


def wait_items_out(plumber, count):
    """Poll until the "lines" Piper has put out ``count`` items."""
    (lines,) = plumber
    while plumber.stats["pipers"][lines]["items_out"] < count:
        time.sleep(0.02)


def returns(call, seconds=20):
    """Whether ``call()`` returns within ``seconds`` (run in a thread, so a
    hang fails the test instead of the whole run)."""
    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive()


@pytest.mark.timeout(40)
@pytest.mark.parametrize("kind", ["linear", "thread", "process"])
def test_stop_ends_a_following_input_at_once(tmp_path, kind):
    path = tmp_path / "growing.txt"
    path.write_text("line1\nline2\n")
    plumber, handle, lines = follow_pipeline(path, kind)
    with handle:
        plumber.start([lines])
        plumber.run()
        wait_items_out(plumber, 2)
        assert returns(plumber.stop), "stop() waits for a line that never comes"
    assert plumber.state == "stopped"
    assert [c["items_out"] for c in plumber.stats["pipers"].values()] == [2]


@pytest.mark.timeout(40)
@pytest.mark.parametrize("kind", ["linear", "process"])
def test_pause_does_not_wait_for_a_following_input(tmp_path, kind):
    path = tmp_path / "growing.txt"
    path.write_text("line1\n")
    plumber, handle, lines = follow_pipeline(path, kind)
    with handle:
        plumber.start([lines])
        plumber.run()
        wait_items_out(plumber, 1)
        assert returns(plumber.pause), "pause() waits for a line that never comes"
        assert plumber.state == "paused"
        with open(path, "a") as appending:
            appending.write("line2\n")
        # The read that was waiting gives its line (as pause() documents).
        wait_items_out(plumber, 2)
        plumber.run()
        assert returns(plumber.stop)
    assert [c["items_out"] for c in plumber.stats["pipers"].values()] == [2]


# --- 3. produce/consume pairs of different strides are refused ---------------


def halves(inbox):
    return (f"L{inbox[0]}", f"R{inbox[0]}")


def on(stride):
    """A thread NuMap of that stride, or False (linear: stride 1)."""
    if stride is None:
        return False
    return NuMap(worker_type="thread", worker_num=2, stride=stride)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    "producer_stride, consumer_stride", [(2, None), (None, 2), (2, 3), (3, 2)]
)
def test_consume_of_another_stride_than_produce_is_refused(
    producer_stride, consumer_stride
):
    split = Piper(halves, parallel=on(producer_stride), produce=2, name="split")
    join = Piper(first, parallel=on(consumer_stride), consume=2, name="join")
    dagger = Dagger(pipes=[(split, join)])
    with pytest.raises(DaggerError) as refused:
        dagger.connect([range(6)])
    message = str(refused.value)
    for part in (
        f"'split' (produce=2, stride {producer_stride or 1})",
        f"'join' (consume=2, stride {consumer_stride or 1})",
        "NuMap(stride=...)",
    ):
        assert part in message
    assert split.state == join.state == "new"


@pytest.mark.timeout(20)
def test_default_stride_producer_and_linear_consumer_are_refused():
    # NuMap's default stride is its number of workers (2), a linear Piper's 1.
    numap = NuMap(worker_type="thread", worker_num=2)
    split = Piper(halves, parallel=numap, produce=2, name="split")
    join = Piper(first, consume=2, name="join")
    with pytest.raises(DaggerError, match="stride 2.*stride 1|stride 1.*stride 2"):
        Dagger(pipes=[(split, join)]).connect([range(4)])


@pytest.mark.timeout(20)
@pytest.mark.parametrize("stride", [None, 2, 3])
def test_consume_of_the_same_stride_rejoins_every_pair(stride):
    split = Piper(halves, parallel=on(stride), produce=2, name="split")
    # A 1:1 Piper in between (spawned too) keeps the layout.
    middle = Piper(first, parallel=on(stride), spawn=2, name="middle")
    join = Piper(first, parallel=on(stride), consume=2, spawn=1, name="join")
    dagger = Dagger(pipes=[(split, middle, join)])
    dagger.connect([range(7)])
    dagger.start()
    pairs = list(join)
    dagger.stop()
    dagger.disconnect()
    assert pairs == [(f"L{n}", f"R{n}") for n in range(7)]


@pytest.mark.timeout(20)
def test_join_of_streams_laid_out_with_different_strides_is_refused():
    left = Piper(halves, parallel=on(2), produce=2, name="left")
    right = Piper(halves, parallel=on(3), produce=2, name="right")
    zipper = Piper(first, spawn=2, name="zipper")
    dagger = Dagger(pipes=[(left, zipper), (right, zipper)])
    with pytest.raises(DaggerError, match="'zipper' zips .*'left'.*'right'"):
        dagger.connect([range(4), range(4)])


# --- 6. counters when a worker dies inside natively chained Pipers ----------


@pytest.mark.timeout(60)
def test_counters_are_exact_when_a_worker_dies_in_a_chained_run():
    numap = NuMap(worker_type="process", worker_num=2, stride=1)
    # On one NuMap, one reader each, 1:1: chained natively inside the map.
    head = Piper(Worker(plus, (1,)), parallel=numap, name="head")
    dies = Piper(Worker(die_on, ((5,),)), parallel=numap, name="dies")
    tail = Piper(Worker(plus, (100,)), parallel=numap, name="tail", track=True)
    plumber = Plumber(pipes=[(head, dies, tail)])
    plumber.start([range(12)])
    assert tail._chained_from is dies and dies._chained_from is head
    plumber.run()
    plumber.wait(50)
    plumber.stop()
    counters = plumber.stats["pipers"]
    for piper in (head, dies, tail):
        assert counters[piper]["items_in"] == 12, (piper, counters)
        assert counters[piper]["items_out"] == 12, (piper, counters)
    # The lost item is an error of each Piper of the run (which of them
    # held it when the worker died is not known).
    errors = {counters[piper]["errors"] for piper in (head, dies, tail)}
    assert len(errors) == 1 and errors.pop() >= 1, counters


# --- 8. messages ----------------------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "functions, arguments, named",
    [
        (operator.add, 5, r"'arguments' of 'add' must be a tuple .*got 5"),
        (operator.add, "ab", r"'arguments' of 'add' must be a tuple .*got 'ab'"),
        ((operator.add,), 5, r"'arguments' must be a sequence .* per function"),
    ],
)
def test_worker_names_arguments_that_are_not_a_tuple(functions, arguments, named):
    with pytest.raises(WorkerError, match=named):
        Worker(functions, arguments)


@pytest.mark.timeout(10)
def test_start_of_a_pipeline_without_pipers_says_so():
    with pytest.raises(DaggerError, match="has no Pipers; add"):
        Plumber().start([])


@pytest.mark.timeout(20)
def test_save_imports_a_builtin_from_its_public_module(tmp_path):
    plumber = Plumber()
    plumber.add_piper(Piper(Worker(functools.partial(operator.add, 5)), name="a"))
    plumber.save(tmp_path / "saved.py")
    source = (tmp_path / "saved.py").read_text()
    assert "from operator import add" in source
    assert "_operator" not in source
    loaded = Plumber().load(tmp_path / "saved.py")
    loaded.start([[1, 2]])
    loaded.run()
    loaded.wait(10)
    loaded.stop()
    ((loaded_piper, counters),) = loaded.stats["pipers"].items()
    assert loaded_piper.name == "a" and counters["items_out"] == 2
