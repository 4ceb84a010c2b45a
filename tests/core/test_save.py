"""Plumber.save writes Python source; load rebuilds an equal pipeline."""

import subprocess
import sys
import textwrap

import pytest
from core_functions import both, first, scale, square_root
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
                piper.imap is None,
            )
        )
    pipes = sorted((up.name, down.name) for down, up in plumber.edges())
    return plumber.name, plumber.logger_options, pipers, pipes


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
    b = Piper(Worker(scale, (3,), {"offset": 1}), name="b", consume=1, timeout=2.5)
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
            from papy.core import Dagger, Piper, Plumber

            def root_plus(inbox, plus):
                return m.sqrt(inbox[0]) + plus

            a = Piper(root_plus_worker := __import__("papy.core").core.Worker(
                root_plus, (1,)), name="a")
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
