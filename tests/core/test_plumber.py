"""Plumber on linear Pipers: state machine, stats, pause/resume, stop."""

import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import structlog
from capped_threads import CAP_THREADS, capped_address_space, run_capped
from core_functions import first as first_of_core
from papy.core import (
    DaggerError,
    Piper,
    Plumber,
    PlumberError,
    Worker,
    load_pipeline,
)
from papy.util.config import start_logger

SLEEP = 0.01  # seconds slow_first sleeps per item
CORE_TESTS = str(Path(__file__).resolve().parent)


def first(inbox):
    return inbox[0]


def slow_first(inbox):
    time.sleep(SLEEP)
    return inbox[0]


def inverse(inbox):
    return 1 / inbox[0]


class Recorder:
    """A sink that records every item it sees (thread-safe)."""

    def __init__(self, gate=None):
        self.items = []
        self.gate = gate
        self.lock = threading.Lock()

    def __call__(self, inbox):
        if self.gate is not None:
            self.gate.wait()
        with self.lock:
            self.items.append(inbox[0])
        return inbox[0]


@pytest.mark.timeout(10)
def test_run_wait_stop_and_stats():
    a = Piper(slow_first, name="a")
    b = Piper(inverse, name="b")
    plumber = Plumber(pipes=[(a, b)], name="demo")
    plumber.start([range(-2, 8)])
    assert plumber.state == "started"
    plumber.run()
    plumber.wait(5)
    assert plumber.state == "finished"
    stats = plumber.stats
    assert list(stats["pipers"]) == [a, b]  # keyed by Piper, upstream first
    assert stats["pipers"][a]["items_in"] == 10
    assert stats["pipers"][b]["items_out"] == 10
    assert stats["pipers"][b]["errors"] == 1
    # a lower bound from the work done (10 sleeps), not a speed assertion
    assert stats["pipers"][a]["busy"] >= 10 * SLEEP * 0.9
    assert stats["run_start"] <= stats["run_end"]
    assert stats["pipers_tracked"] == {}
    plumber.stop()
    assert plumber.state == "stopped"
    assert all(p.state == "new" for p in plumber)
    # a stopped pipeline can be started again on new data
    plumber.start([range(3)])
    plumber.run()
    plumber.wait(5)
    plumber.stop()
    assert plumber.stats["pipers"][a]["items_in"] == 3


@pytest.mark.timeout(10)
def test_state_rules():
    plumber = Plumber(pipers=[Piper(first)])
    for action in (plumber.run, plumber.pause, plumber.stop, plumber.wait):
        with pytest.raises(PlumberError):
            action()
    plumber.start([range(3)])
    with pytest.raises(PlumberError, match="cannot start"):
        plumber.start([range(3)])
    with pytest.raises(PlumberError, match="cannot pause"):
        plumber.pause()
    plumber.stop()
    assert plumber.state == "stopped"


@pytest.mark.timeout(10)
def test_wait_timeout_raises_runtime_error():
    gate = threading.Event()
    plumber = Plumber(pipers=[Piper(Recorder(gate))])
    plumber.start([range(5)])
    plumber.run()
    with pytest.raises(RuntimeError, match="did not finish"):
        plumber.wait(0.2)
    gate.set()
    plumber.wait(5)
    plumber.stop()


@pytest.mark.timeout(20)
def test_pause_resume_keeps_every_item_exactly_once():
    sink = Recorder()
    a = Piper(first)
    b = Piper(sink)
    plumber = Plumber(pipes=[(a, b)])
    plumber.start([range(5000)])
    plumber.run()
    for _ in range(5):
        plumber.pause()
        seen = len(sink.items)
        threading.Event().wait(0.05)  # give a wrongly running puller time
        assert len(sink.items) == seen  # nothing is pulled while paused
        plumber.run()
    plumber.wait(10)
    plumber.stop()
    assert sink.items == list(range(5000))


@pytest.mark.timeout(20)
def test_wait_on_a_paused_pipeline_raises_instead_of_hanging():
    plumber = Plumber(pipers=[Piper(first)])
    plumber.start([iter(int, 1)])  # endless zeros
    plumber.run()
    plumber.pause()
    with pytest.raises(PlumberError, match="paused pipeline.*run\\(\\) it again"):
        plumber.wait()
    plumber.stop()


@pytest.mark.timeout(20)
def test_pipes_change_only_while_new_or_stopped():
    a, b, c = Piper(first, name="a"), Piper(first, name="b"), Piper(first, name="c")
    plumber = Plumber(pipes=[(a, b)])
    plumber.start([range(10)])
    for change in (
        lambda: plumber.add_pipe((b, c)),
        lambda: plumber.add_piper(c),
        lambda: plumber.del_piper(b, forced=True),
        lambda: plumber.del_pipe((a, b)),
    ):
        with pytest.raises(PlumberError, match="cannot change the pipes of a started"):
            change()
    assert set(plumber) == {a, b}
    plumber.run()
    plumber.wait(10)
    assert plumber.stats["pipers"][b]["items_out"] == 10  # nothing was lost
    plumber.stop()
    plumber.add_pipe((b, c))  # stopped: the pipes may change again
    plumber.start([range(3)])
    plumber.run()
    plumber.wait(10)
    assert plumber.stats["pipers"][c]["items_out"] == 3
    plumber.stop()


@pytest.mark.timeout(20)
def test_stop_mid_stream_processes_read_items_once():
    sink = Recorder()

    def endless():
        i = 0
        while True:
            yield i
            i += 1

    plumber = Plumber(pipers=[Piper(sink)])
    plumber.start([endless()])
    plumber.run()
    while len(sink.items) < 100:
        threading.Event().wait(0.01)
    plumber.pause()
    plumber.stop()
    assert plumber.state == "stopped"
    assert sink.items == list(range(len(sink.items)))


@pytest.mark.timeout(10)
def test_debug_error_is_reported_by_wait():
    plumber = Plumber(pipers=[Piper(inverse, debug=True)])
    plumber.start([[1, 0, 2]])
    plumber.run()
    with pytest.raises(PlumberError, match="run failed"):
        plumber.wait(5)
    plumber.stop()


@pytest.mark.timeout(10)
def test_logs_bind_pipeline_and_piper_names():
    plumber = Plumber(pipers=[Piper(inverse, name="inv")], name="logged")
    with structlog.testing.capture_logs() as logs:
        plumber.start([[1, 0]])
        plumber.run()
        plumber.wait(5)
        plumber.stop()
    failed = [e for e in logs if e["event"] == "item failed"]
    assert failed and failed[0]["piper"] == "inv"
    assert failed[0]["pipeline"] == "logged"
    assert any(e["event"] == "pipeline finished" for e in logs)


@pytest.mark.timeout(10)
def test_finished_log_counts_what_leaves_the_output_pipers():
    # 3 items through 2 Pipers; the first fails item 0 (1/0), the second
    # passes that error on: 3 items and 1 error leave the pipeline.
    first_piper = Piper(inverse, name="inv")
    second_piper = Piper(first, name="first")
    plumber = Plumber(pipes=[(first_piper, second_piper)], name="totals")
    with structlog.testing.capture_logs() as logs:
        plumber.start([[1, 0, 2]])
        plumber.run()
        plumber.wait(5)
        plumber.stop()
    (finished,) = [e for e in logs if e["event"] == "pipeline finished"]
    assert (finished["items_out"], finished["errors"]) == (3, 1)


@pytest.mark.timeout(10)
def test_logger_options_start_the_papy_logger(tmp_path):
    log_file = tmp_path / "papy.log"
    plumber = Plumber(
        logger_options={"log_to_file": True, "log_filename": str(log_file)},
        pipers=[Piper(first)],
        name="to_file",
    )
    plumber.start([range(3)])
    plumber.run()
    plumber.wait(5)
    plumber.stop()
    text = log_file.read_text()
    start_logger()  # removes the file handler again
    assert "pipeline finished" in text and "to_file" in text


@pytest.mark.timeout(10)
def test_plumber_from_dagger():
    a, b = Piper(first, name="a"), Piper(first, name="b")
    source = Plumber(pipes=[(a, b)])
    plumber = Plumber(dagger=source)
    assert set(plumber.edges()) == {(b, a)}


PLUMBER_SHORT_OF_THREADS = (
    CAP_THREADS
    + """
import sys
from papy.core import Piper, Plumber, PlumberError

def first(inbox):
    return inbox[0]

room = int(sys.argv[1])
a, b, c, d = (Piper(first, name=name) for name in "abcd")
plumber = Plumber(pipes=[(a, b), (a, c), (a, d)])  # three outputs: two pullers
plumber.start([range(100)])
cap(room_for_stacks=room)
try:
    plumber.run()
    plumber.wait(10)
except PlumberError as error:
    print("refused:", error)
lift()
print("state:", plumber.state)
if plumber.state == "started":  # run() was refused: it can run now
    plumber.run()
    plumber.wait(10)
    print("ran:", plumber.stats["pipers"][c]["items_out"])
plumber.stop()
left = [t.name for t in threading.enumerate() if t.name.startswith("papy")]
print("threads left:", left)
"""
)


@pytest.mark.timeout(60)
@capped_address_space
def test_run_thread_that_cannot_start_is_refused_and_can_run_later():
    out = run_capped(PLUMBER_SHORT_OF_THREADS, "0")
    assert "refused: Plumber" in out and "cannot start the run thread" in out
    assert "state: started" in out
    assert "ran: 100" in out  # (of output c)
    assert "threads left: []" in out


@pytest.mark.timeout(60)
@capped_address_space
@pytest.mark.parametrize("room", [1, 2])  # the first, or the second, puller
def test_puller_that_cannot_start_fails_the_run_instead_of_hanging(room):
    out = run_capped(PLUMBER_SHORT_OF_THREADS, str(room))
    assert "cannot start a thread to pull output Piper" in out
    assert "state: finished" in out
    # A puller that did start pulls nothing and ends with the run.
    assert "threads left: []" in out


@pytest.mark.timeout(30)
def test_a_save_that_fails_keeps_the_file_it_would_replace(tmp_path):
    # A full disk is simulated with a file size limit (RLIMIT_FSIZE) in a
    # subprocess: the first save fits, the second (longer) one does not.
    target = tmp_path / "kept.py"
    script = textwrap.dedent(
        f"""
        import resource, signal
        from core_functions import first, total
        from papy.core import Piper, Plumber, Worker

        Plumber(pipers=[Piper(Worker(first), name="a")], name="p").save({str(target)!r})
        size = len(open({str(target)!r}).read())
        print(size, flush=True)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 100, resource.RLIM_INFINITY))
        long = "b" * 2000
        try:
            Plumber(pipers=[Piper(Worker(total), name=long)], name="p").save(
                {str(target)!r}
            )
        except OSError as error:
            print("refused", error.errno, flush=True)
        """
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([CORE_TESTS, *sys.path]))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env,
        timeout=20,
    )  # fmt: skip
    size, refused = done.stdout.split("\n")[:2]
    assert refused.startswith("refused"), done.stderr
    assert len(target.read_text()) == int(size)
    assert load_pipeline(target).name == "p"
    assert [p.name for p in tmp_path.iterdir()] == ["kept.py"]  # no temporary left


@pytest.mark.timeout(20)
def test_load_replaces_the_stats_of_the_pipeline_it_replaces(tmp_path):
    numap_plumber = Plumber(pipers=[Piper(first, name="a")])
    numap_plumber.start([range(3)])
    numap_plumber.run()
    numap_plumber.wait(10)
    numap_plumber.stop()
    assert numap_plumber.stats["run_start"] is not None
    saved = tmp_path / "other.py"
    Plumber(pipers=[Piper(Worker(first_of_core), name="b")], name="other").save(saved)
    numap_plumber.load(saved)
    stats = numap_plumber.stats
    assert stats["run_start"] is None and stats["run_end"] is None
    assert stats["pipers_tracked"] == {}
    assert [piper.name for piper in stats["pipers"]] == ["b"]


@pytest.mark.timeout(20)
def test_failed_start_resets_every_statistic_of_the_earlier_run():
    a = Piper(first, name="a")
    plumber = Plumber(pipers=[a])
    plumber.start([range(3)])
    plumber.run()
    plumber.wait(10)
    plumber.stop()
    assert plumber.stats["run_start"] is not None
    with pytest.raises(DaggerError, match="one input stream per input Piper"):
        plumber.start([])  # one input Piper, no input stream
    stats = plumber.stats
    # Counters, tracked results and run times are reset together: a failed
    # start must not leave the earlier run's times beside zeroed counters.
    assert stats["pipers"][a]["items_in"] == 0
    assert stats["run_start"] is None and stats["run_end"] is None
    assert stats["pipers_tracked"] == {}
