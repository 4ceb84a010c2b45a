"""Plumber.save writes Workers built on functools.partial and on the operator
getters/caller as calls that rebuild them; what such a call cannot rebuild
faithfully is refused with an error naming where it is."""

import functools
import operator

import pytest
from core_functions import scale
from numap import NuMap
from papy.core import Piper, Plumber, PlumberError, Worker, load_pipeline
from saved_scripts import SAVE_OR_LOAD, save_then_load
from test_save import run

GET_FIRST = operator.itemgetter(0)


def divmod_of(dividend, inbox):
    """A worker function whose inbox comes second, after what a partial binds."""
    return divmod(dividend, inbox[0])


def pick(inbox, positions):
    return tuple(inbox[0][position] for position in positions)


def build(worker_type):
    # Every function of a Worker takes an inbox: the ones after the first
    # read the previous function's result as inbox[0].
    numap = NuMap(worker_type=worker_type, worker_num=2)
    affine = functools.partial(scale, factor=3, offset=1)
    a = Piper(Worker((GET_FIRST, affine)), parallel=numap, name="a")
    d = Piper(Worker(functools.partial(divmod_of, 100)), parallel=numap, name="d")
    e = Piper(
        Worker(
            (
                GET_FIRST,
                functools.partial(scale, factor=2, offset=(9,)),
                functools.partial(pick, positions=(0, -1)),
            )
        ),
        name="e",
    )
    return Plumber(pipes=[(a, d), (e,)], name="callables")


# Operator callables that take a value, not an inbox: a pipeline holding them
# is saved and loaded, and the loaded callables are called on values.
GETTERS = {
    "attrgetter": operator.attrgetter("real", "imag"),
    "methodcaller": operator.methodcaller("to_bytes", 2, byteorder="big"),
    "itemgetter": operator.itemgetter(0, -1),
    "partial": functools.partial(divmod, 100),
}
GETTER_VALUES = {
    "attrgetter": 91,
    "methodcaller": 91,
    "itemgetter": (7, 8, 9),
    "partial": 16,
}


@pytest.mark.timeout(30)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_partials_and_operator_callables_round_trip(tmp_path, worker_type):
    plumber = build(worker_type)
    path = tmp_path / "callables.py"
    plumber.save(path)
    text = path.read_text()
    assert "functools.partial(scale, factor=3, offset=1)" in text
    assert "functools.partial(divmod_of, 100)" in text
    assert "functools.partial(pick, positions=(0, -1))" in text
    loaded = load_pipeline(path)
    datas = [[(7, 8), (3, 4)], [1, 5, 30]]
    expected = [
        [(7, 9), (3, 9)],  # e: ((7, 8) * 2 + (9,))[0, -1]
        [(25, 0), (6, 4), (1, 9)],  # d: divmod(100, 3 x + 1)
    ]
    original = run(plumber, datas)
    assert original == expected
    assert run(loaded, datas) == original
    types = {p.name: [type(f) for f in p.worker.task] for p in loaded}
    assert types["a"] == [operator.itemgetter, functools.partial]
    assert types["d"] == [functools.partial]


@pytest.mark.timeout(30)
def test_operator_callables_are_rebuilt_by_save(tmp_path):
    pipers = [Piper(Worker(f), name=name) for name, f in GETTERS.items()]
    path = tmp_path / "getters.py"
    Plumber(pipers=pipers, name="getters").save(path)
    text = path.read_text()
    assert "operator.methodcaller('to_bytes', 2, byteorder='big')" in text
    assert "operator.attrgetter('real', 'imag')" in text
    assert "functools.partial(divmod, 100)" in text
    loaded = {p.name: p.worker.task for p in load_pipeline(path)}
    for name, function in GETTERS.items():
        (rebuilt,) = loaded[name]
        assert type(rebuilt) is type(function)
        value = GETTER_VALUES[name]
        assert rebuilt(value) == function(value)
    assert loaded["methodcaller"][0](91) == b"\x00["


SCRIPT = (
    """
import functools
import operator
import sys

from numap import NuMap
from papy.core import Dagger, Piper, Plumber, Worker, load_pipeline


def power(inbox, exponent, plus=0):
    return inbox[0] ** exponent + plus


CUBE = functools.partial(power, exponent=3)
PICK = operator.itemgetter(1)


def cube_of_second(inbox):
    return CUBE((PICK(inbox[0]),))


def first_number(inbox):
    return inbox[0][0]


numap = NuMap(worker_type="process", worker_num=2)
pipeline = Plumber(
    pipers=[
        Piper(Worker(cube_of_second), parallel=numap, name="a"),
        Piper(
            Worker((first_number, functools.partial(power, exponent=2, plus=1))),
            name="b",
        ),
    ]
)
INPUTS = [[(1, 2), (3, 4)]] * 2
"""
    + SAVE_OR_LOAD
)


@pytest.mark.timeout(30)
def test_a_copied_function_brings_the_partials_it_uses(tmp_path):
    before, text, after = save_then_load(tmp_path, SCRIPT)
    assert "CUBE = callable_" in text
    assert "functools.partial(power, exponent=3)" in text
    assert "PICK = callable_" in text
    assert before == after
    assert "[8, 64]" in after
    assert "[2, 10]" in after


class Tagged(functools.partial):
    pass


def with_attribute():
    tagged = functools.partial(scale, factor=2)
    tagged.label = "doubled"
    return tagged


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("function", "message"),
    [
        (
            functools.partial(scale, factor=object()),
            r"functools.partial keyword 'factor': cannot write object value",
        ),
        (
            functools.partial(scale, range(3)),
            r"functools.partial argument 0: cannot write range value",
        ),
        (
            functools.partial(lambda inbox: inbox, 1),
            r"functools.partial of <function <lambda>.*: .* is a lambda",
        ),
        (with_attribute(), r"has attributes set on it \(label\)"),
        (operator.itemgetter(slice(1, 2)), r"operator.itemgetter argument 0"),
        (Tagged(scale, 2), r"func must be a named function"),
    ],
)
def test_callables_that_cannot_be_rebuilt_faithfully_are_refused(
    tmp_path, function, message
):
    plumber = Plumber(pipers=[Piper(Worker(function, name="w"), name="p")])
    with pytest.raises(PlumberError, match=r"Piper 'p', Worker 'w', function 1: "):
        plumber.save(tmp_path / "refused.py")
    with pytest.raises(PlumberError, match=message):
        plumber.save(tmp_path / "refused.py")
    assert not (tmp_path / "refused.py").exists()


@pytest.mark.timeout(10)
def test_a_partial_keyword_that_is_not_an_identifier_is_refused(tmp_path):
    odd = functools.partial(scale, **{"not an identifier": 1})
    plumber = Plumber(pipers=[Piper(Worker(odd, name="w"), name="p")])
    with pytest.raises(PlumberError, match="'not an identifier' is not a Python"):
        plumber.save(tmp_path / "odd.py")
