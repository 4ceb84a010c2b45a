"""Plumber.save writes one import per object: an object the script reaches
under several names (module aliases, a function imported twice) is imported
once and its other names are bound to it."""

import pytest
from saved_scripts import SAVE_OR_LOAD, save_then_load

SCRIPT = (
    """
import functools
import functools as ft
import os.path as osp
import sys
from os import path
from os.path import join as j2
from os.path import join as pjoin

from core_functions import first
from core_functions import first as pick
from numap import NuMap
from papy.core import Dagger, Piper, Plumber, Worker, load_pipeline


def uses_both_names(inbox):
    value = pick(inbox)
    return (
        osp.basename(pjoin("a", str(value))),
        path.basename(j2("b", str(value))),
        ft.reduce(max, [value, 2]),
        functools.reduce(min, [value, 2]),
        osp is path and pjoin is j2 and first is pick,
    )


a = Piper(Worker(functools.partial(pick)), name="a")
b = Piper(
    Worker(uses_both_names),
    parallel=NuMap(worker_type="process", worker_num=2),
    name="b",
)
c = Piper(Worker(first), name="c")
pipeline = Plumber(pipes=[(a, b, c)], name="aliases")
INPUTS = [[1, 5]]
"""
    + SAVE_OR_LOAD
)


@pytest.mark.timeout(40)
def test_an_object_under_two_names_is_imported_once(tmp_path):
    before, text, after = save_then_load(tmp_path, SCRIPT)
    lines = text.splitlines()
    imports = [line for line in lines if line.startswith(("import ", "from "))]
    assert sum(line.endswith((" functools", " ft")) for line in imports) == 1
    assert sum(line.endswith((" osp", " path")) for line in imports) == 1
    assert sum(line.endswith((" pjoin", " j2")) for line in imports) == 1
    assert sum(line.endswith((" first", " pick")) for line in imports) == 1
    aliases = {line for line in lines if line.count("=") == 1 and " = " in line}
    assert len({"pick = first", "first = pick"} & aliases) == 1
    assert len({"j2 = pjoin", "pjoin = j2"} & aliases) == 1
    assert len({"path = osp", "osp = path"} & aliases) == 1
    assert len({"ft = functools", "functools = ft"} & aliases) == 1
    assert after == before
    assert after == "[[('1', '1', 2, 1, True), ('5', '5', 5, 2, True)]]"
