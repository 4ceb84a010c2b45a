"""What a copied function uses from other modules is imported the way
codefile imports functions: a function loaded with import_from_path is
loaded by path again (its module's name means nothing to another process)."""

import pytest
from saved_scripts import SAVE_OR_LOAD, save_then_load

HELPERS = """
def double(x):
    return 2 * x
"""

SCRIPT = (
    """
import sys
from pathlib import Path

from numap import NuMap
from papy.core import Dagger, Piper, Plumber, Worker, load_pipeline
from papy.util.codefile import import_from_path

double = import_from_path(Path(__file__).with_name("helpers.py"), "double")
times_two = double


def twice_first(inbox):
    return double(inbox[0]) + times_two(0)


numap = NuMap(worker_type="process", worker_num=2)
pipeline = Plumber(
    pipes=[(Piper(Worker(twice_first), parallel=numap, name="a"), Piper(double))]
)
INPUTS = [[1, 5]]
"""
    + SAVE_OR_LOAD
)


@pytest.mark.timeout(40)
def test_a_global_loaded_by_path_is_loaded_by_path_again(tmp_path):
    before, text, after = save_then_load(tmp_path, SCRIPT, helpers=HELPERS)
    helpers = repr(str(tmp_path / "helpers.py"))
    assert text.count(f"double = import_from_path({helpers}, 'double')") == 1
    assert "_papy_path_" not in text
    assert "\ntimes_two = double\n" in text
    assert before == after == "[[(2, 2), (10, 10)]]"


CLASHING_SCRIPT = (
    """
import sys
from pathlib import Path

from papy.core import Dagger, Piper, Plumber, Worker, load_pipeline
from papy.util.codefile import import_from_path

here = Path(__file__).parent
double = import_from_path(here / "helpers.py", "double")
tenfold_double = import_from_path(here / "other_helpers.py", "double")

pipeline = Plumber(
    pipes=[(Piper(Worker(double), name="a"), Piper(Worker(tenfold_double), name="b"))]
)
INPUTS = [[1, 5]]
"""
    + SAVE_OR_LOAD
)


@pytest.mark.timeout(40)
def test_functions_loaded_by_path_under_one_name_get_a_name_each(tmp_path):
    helpers = "def double(inbox):\n    return 2 * inbox[0]\n"
    other = "def double(inbox):\n    return 20 * inbox[0]\n"
    before, text, after = save_then_load(
        tmp_path, CLASHING_SCRIPT, helpers=helpers, other_helpers=other
    )
    first = repr(str(tmp_path / "helpers.py"))
    second = repr(str(tmp_path / "other_helpers.py"))
    assert f"double = import_from_path({first}, 'double')\n" in text
    assert f"callable_0 = import_from_path({second}, 'double')\n" in text
    assert before == after == "[[40, 200]]"


PATH_MODULE_SCRIPT = (
    """
import sys

from papy.core import Dagger, Piper, Plumber, Worker, load_pipeline
IMPORT_LINE


def joined(inbox):
    return osp.join("a", str(inbox[0]))


pipeline = Plumber(pipers=[Piper(Worker(joined), name="a")])
INPUTS = [[1, 5]]
"""
    + SAVE_OR_LOAD
)


@pytest.mark.timeout(40)
@pytest.mark.parametrize(
    "line", ["import os.path as osp", "from os import path as osp"]
)
def test_a_module_is_imported_under_the_name_the_script_imported(tmp_path, line):
    # os.path is posixpath or ntpath, depending on the platform: the saved
    # file must import it the portable way the script did.
    script = PATH_MODULE_SCRIPT.replace("IMPORT_LINE", line)
    before, text, after = save_then_load(tmp_path, script)
    assert f"\n{line}\n" in text
    assert "posixpath" not in text and "ntpath" not in text
    assert before == after == "[['a/1', 'a/5']]"
