"""The names Plumber.save gives its own objects never take a name the
script's functions use: a function imported under another name because its
own is taken gets a generated name, like the other objects of the file."""

import pytest
from saved_scripts import SAVE_OR_LOAD, save_then_load

OTHER_FUNCTIONS = """
def first(inbox):
    return -inbox[0]
"""

SCRIPT = (
    """
import sys

import other_functions
from core_functions import first
from numap import NuMap
from papy.core import Dagger, Piper, Plumber, Worker, load_pipeline

first_0 = 1
first_1 = 10
first_2 = 100
first_3 = 1000


def offset(inbox):
    return inbox[0] + first_0 + first_1 + first_2 + first_3


a = Piper(Worker(first), name="a")
b = Piper(
    Worker(other_functions.first),
    parallel=NuMap(worker_type="process", worker_num=2),
    name="b",
)
c = Piper(Worker(offset), name="c")
pipeline = Plumber(pipes=[(a, b, c)], name="names")
INPUTS = [[1, 5]]
"""
    + SAVE_OR_LOAD
)


@pytest.mark.timeout(40)
def test_a_renamed_import_does_not_take_a_global_of_the_script(tmp_path):
    before, text, after = save_then_load(
        tmp_path, SCRIPT, other_functions=OTHER_FUNCTIONS
    )
    assert "from other_functions import first as callable_0\n" in text
    for number, value in enumerate((1, 10, 100, 1000)):
        assert f"\nfirst_{number} = {value}\n" in text
    assert "worker_2 = Worker((offset,)" in text
    assert "piper_2 = Piper(worker_2," in text
    assert "numap_0 = NuMap(worker_type='process'" in text
    assert before == after == "[[1110, 1106]]"
