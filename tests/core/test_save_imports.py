"""What a copied function uses from other modules is imported the way
codefile imports functions: a function loaded with import_from_path is
loaded by path again (its module's name means nothing to another process)."""

import os
import subprocess
import sys

import pytest

HELPERS = """
def double(x):
    return 2 * x
"""

SCRIPT = """
import sys
from pathlib import Path

from numap import NuMap
from papy.core import Dagger, Piper, Plumber, Worker, load_pipeline
from papy.util.codefile import import_from_path

double = import_from_path(Path(__file__).with_name("helpers.py"), "double")
times_two = double


def twice_first(inbox):
    return double(inbox[0]) + times_two(0)


def run(plumber):
    plumber.connect([[1, 5]])
    Dagger.start(plumber)
    results = [list(piper) for piper in plumber.get_outputs()]
    Dagger.stop(plumber)
    return results


numap = NuMap(worker_type="process", worker_num=2)
pipeline = Plumber(
    pipes=[(Piper(Worker(twice_first), parallel=numap, name="a"), Piper(double))]
)
if sys.argv[1] == "save":
    pipeline.save(sys.argv[2])
    print(run(pipeline))
else:
    print(run(load_pipeline(sys.argv[2])))
"""


def python(folder, *args):
    done = subprocess.run(
        [sys.executable, str(folder / "script.py"), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.timeout(40)
def test_a_global_loaded_by_path_is_loaded_by_path_again(tmp_path):
    (tmp_path / "helpers.py").write_text(HELPERS)
    (tmp_path / "script.py").write_text(SCRIPT)
    saved = tmp_path / "saved.py"
    before = python(tmp_path, "save", saved)
    text = saved.read_text()
    helpers = repr(str(tmp_path / "helpers.py"))
    assert text.count(f"double = import_from_path({helpers}, 'double')") == 1
    assert "_papy_path_" not in text
    assert "\ntimes_two = double\n" in text
    after = python(tmp_path, "load", saved)
    assert before == after == "[[(2, 2), (10, 10)]]"
