"""Plumber.save writes Python source; load rebuilds an equal pipeline."""

import subprocess
import sys
import textwrap

import pytest
from core_functions import both, first, scale, square_root
from numap import NuMap
from papy.core import Dagger, Piper, Plumber, PlumberError, Worker, load_pipeline


def describe(plumber):
    """Everything that defines a pipeline, with objects replaced by names."""
    pipers = []
    for piper in plumber.postorder():
        worker = piper.worker
        pipers.append(
            (
                piper.name,
                tuple(f.__qualname__ for f in worker.task),
                worker.args,
                worker.kwargs,
                piper.consume,
                piper.produce,
                piper.spawn,
                piper.timeout,
                piper.branch,
                piper.debug,
                piper.track,
                piper.repeat,
                plumber[piper].xtra,
                numap_settings(piper.imap),
                [p.name for p in plumber.postorder() if p.imap is piper.imap],
            )
        )
    pipes = sorted((up.name, down.name) for down, up in plumber.edges())
    return plumber.name, plumber.logger_options, pipers, pipes


def numap_settings(numap):
    if numap is None:
        return None
    keys = ("worker_type", "worker_num", "worker_remote", "stride", "buffer")
    keys += ("ordered", "skip", "name")
    return {key: getattr(numap, key) for key in keys}


def run(plumber, datas):
    outputs = plumber.get_outputs()
    plumber.connect(datas)
    Dagger.start(plumber)
    results = [list(piper) for piper in outputs]
    Dagger.stop(plumber)
    plumber.disconnect()
    return results


def build():
    a = Piper(Worker((first, square_root), ((), ()), ({}, {})), name="a", branch=1)
    b = Piper(Worker(scale, (3,), {"offset": 1}), name="b", consume=1)
    c = Piper(Worker((first, scale), ((), (10,)), ({}, {})), name="c", branch="z")
    d = Piper(both, name="d", debug=False, track=True)
    plumber = Plumber(name="saved", pipes=[(a, d), (c, d)])
    plumber.add_piper(b, xtra={"color": "red"})
    plumber.del_piper(b)
    return plumber


@pytest.mark.timeout(20)
def test_round_trip_of_linear_pipeline(tmp_path):
    plumber = build()
    path = tmp_path / "pipeline.py"
    plumber.save(path)
    text = path.read_text()
    assert "from core_functions import first" in text
    assert "EXECUTES" in text
    loaded = load_pipeline(path)
    assert describe(loaded) == describe(plumber)
    datas = [[1, 4, 9], [1, 2, 3]]
    assert run(loaded, datas) == run(plumber, datas)
    again = Plumber().load(path)
    assert describe(again) == describe(plumber)


@pytest.mark.timeout(30)
def test_functions_of_the_script_are_saved_as_source(tmp_path):
    script = tmp_path / "script.py"
    saved = tmp_path / "saved.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import math as m
            from papy.core import Piper, Plumber, Worker

            def root_plus(inbox, plus):
                return m.sqrt(inbox[0]) + plus

            a = Piper(Worker(root_plus, (1,)), name="a")
            plumber = Plumber(pipers=[a], name="scripted")
            plumber.save({str(saved)!r})
            """
        )
    )
    subprocess.run([sys.executable, str(script)], check=True, timeout=20)
    text = saved.read_text()
    assert "def root_plus(inbox, plus):" in text
    assert "import math as m" in text
    loaded = load_pipeline(saved)
    assert loaded.name == "scripted"
    assert run(loaded, [[4, 9]]) == [[3.0, 4.0]]


@pytest.mark.timeout(10)
def test_unsavable_functions_and_files_without_pipeline(tmp_path):
    plumber = Plumber(pipers=[Piper(lambda inbox: inbox)])
    with pytest.raises(PlumberError, match="lambda"):
        plumber.save(tmp_path / "x.py")
    empty = tmp_path / "empty.py"
    empty.write_text("x = 1\n")
    with pytest.raises(PlumberError, match="pipeline"):
        load_pipeline(empty)


@pytest.mark.timeout(60)
def test_round_trip_with_numaps_and_their_settings(tmp_path):
    threads = NuMap(
        worker_type="thread", worker_num=3, stride=2, buffer=9, skip=True, name="t"
    )
    processes = NuMap(worker_type="process", worker_num=2, stride=1, name="p")
    a = Piper(first, parallel=threads, name="a", timeout=5)
    c = Piper(Worker((first, scale), ((), (3,))), parallel=threads, name="c")
    d = Piper(both, parallel=processes, name="d", spawn=1)
    plumber = Plumber(pipes=[(a, d), (c, d)], name="with_numaps")
    plumber.add_pipe((a, Piper(first, name="e")))
    path = tmp_path / "numaps.py"
    plumber.save(path)
    text = path.read_text()
    assert "NuMap(worker_type='thread', worker_num=3" in text
    loaded = load_pipeline(path)
    assert describe(loaded) == describe(plumber)
    numaps = {p.imap for p in loaded if p.imap is not None}
    assert len(numaps) == 2
    datas = [[1, 2, 3], [4, 5, 6]]
    assert run(loaded, datas) == run(plumber, datas)


@pytest.mark.timeout(30)
def test_numap_defaults_are_left_to_the_machine_that_loads(tmp_path):
    defaults = NuMap(worker_type="thread")
    plumber = Plumber(pipers=[Piper(first, parallel=defaults, name="a")], name="d")
    path = tmp_path / "defaults.py"
    plumber.save(path)
    text = path.read_text()
    assert "NuMap(worker_type='thread', ordered=True, skip=False)" in text
    written = text.split("NuMap(")[1].split(")")[0]
    for machine_dependent in ("worker_num", "stride", "buffer", "name="):
        assert machine_dependent not in written
    loaded = load_pipeline(path)
    (numap,) = {p.imap for p in loaded}
    assert numap.worker_num == defaults.worker_num  # this machine's CPU count
    assert numap.arguments["worker_num"] is None
    assert run(loaded, [[1, 2, 3]]) == [[1, 2, 3]]
