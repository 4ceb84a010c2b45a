"""Every signature the contract documents exists in our code, in Python 3 form.

The contract (../shared/spec/000_458f79cbe784ea86.txt, the PaPy 1.x API
reference) documents classes, functions and methods with their arguments and
defaults. This module parses those signature lines and checks each one
against ``inspect.signature`` of the real object: the documented arguments
come first, with the same names, in the same order, of the same kind, with
the same defaults. Our code may add arguments after them, but only ones that
have defaults (or are ``*args``/``**kwargs``), so every call written against
the contract still binds the same way.

Where DESIGN.md sanctions a different Python 3 form, the difference is in the
tables below, with its reason; nothing else may differ.

CI checkouts may lack ../shared, so the tests that read the contract skip
when it is absent. The tests on CORE_SIGNATURES (a hard-coded copy of the
most important entries, checked against the contract whenever it is there)
and on the contract's own call examples run everywhere.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CONTRACT_NAME = "000_458f79cbe784ea86.txt"

# Sanctioned differences between the contract and our code. Each entry says
# why, citing DESIGN.md; an entry is itself checked (the code must show the
# sanctioned form), so the tables cannot go stale silently.

# 1.x module paths that are now spelled differently. DESIGN.md, "Layout": the
# map engine is the package `numap` (distribution papy-numap); the 1.x module
# numap.NuMap is gone, so numap.NuMap.NuMap is numap.NuMap and
# numap.NuMap.imports is numap.imports.
MODULE_RENAMES = {"numap.NuMap": "numap"}

# Defaults that differ: contract name -> {argument: (our default, reason)}.
SANCTIONED_DEFAULTS: dict[str, dict[str, tuple[Any, str]]] = {
    "papy.core.Plumber": {
        # The contract's `logger_options={}` is a shared mutable default in
        # Python; we use the None sentinel (ruff B006, which this project's
        # lint selects) and treat None as {}. DESIGN.md does not name this
        # case; it is the Python 3 form of the same default, in the spirit of
        # its "test arguments with `is None`" (Decisions).
        # test_plumber_none_logger_options_means_none proves the two defaults
        # behave alike.
        "logger_options": (None, "None sentinel for the mutable default {}"),
    },
}

# Argument bullets (the "Arguments:" lists) whose name is not in the entry's
# signature line: (contract name, bullet) -> the signature's argument meant.
SANCTIONED_BULLETS = {
    # Misspelt in the contract's prose (l. 614); the signature line says
    # handle, and so do dump_stream and load_pickle_stream.
    ("papy.util.func.load_stream", "hande"): "handle",
}


# Python 3 iteration: DESIGN.md, "Python 3 translation": iterators implement
# __iter__/__next__, and the documented next() methods keep their names and
# arguments (the latter is checked by the contract entries themselves).
ITERATORS = ("numap.NuMap.NuMap", "papy.core.Piper")

# The exceptions the contract documents (all of them: a test compares this
# with the contract), and their required bases. DESIGN.md, "Decisions":
# PlumberError is also a RuntimeError (Plumber.wait's timeout).
EXCEPTION_BASES = {
    "papy.core.WorkerError": (Exception,),
    "papy.core.PiperError": (Exception,),
    "papy.core.DaggerError": (Exception,),
    "papy.core.PlumberError": (Exception, RuntimeError),
}

# The most important entries, copied from the contract (name: the text inside
# the parentheses), so that they are checked on checkouts without ../shared.
# test_core_table_matches_the_contract keeps this copy faithful.
CORE_SIGNATURES = {
    "numap.NuMap.NuMap": (
        "func=None, iterable=None, args=None, kwargs=None, worker_type=None, "
        "worker_num=None, worker_remote=None, stride=None, buffer=None, "
        "ordered=True, skip=False, name=None"
    ),
    "numap.NuMap.NuMap.add_task": (
        "func, iterable, args=None, kwargs=None, timeout=None, block=True, track=False"
    ),
    "numap.NuMap.NuMap.get_task": "task=0, timeout=None, block=True",
    "numap.NuMap.NuMap.next": "timeout=None, task=0, block=True",
    "numap.NuMap.NuMap.pop_task": "number",
    "numap.NuMap.NuMap.start": "stages=(1, 2)",
    "numap.NuMap.NuMap.stop": "ends=None, forced=False",
    "numap.NuMap.imports": "modules, forgive=False",
    "papy.core.Worker": "functions, arguments=None, kwargs=None, name=None",
    "papy.core.Piper": (
        "worker, parallel=False, consume=1, produce=1, spawn=1, timeout=None, "
        "branch=None, debug=False, name=None, track=False, repeat=False"
    ),
    "papy.core.Piper.connect": "inbox",
    "papy.core.Piper.disconnect": "forced=False",
    "papy.core.Piper.next": "",
    "papy.core.Piper.start": "stages=None",
    "papy.core.Piper.stop": "forced=False, **kwargs",
    "papy.core.Dagger": "pipers=(), pipes=(), xtras=None",
    "papy.core.Dagger.add_pipe": "pipe, branch=None",
    "papy.core.Dagger.add_piper": "piper, xtra=None, create=True, branch=None",
    "papy.core.Dagger.add_pipers": "pipers, *args, **kwargs",
    "papy.core.Dagger.add_pipes": "pipes, *args, **kwargs",
    "papy.core.Dagger.connect": "datas=None",
    "papy.core.Dagger.connect_inputs": "datas",
    "papy.core.Dagger.del_pipe": "pipe, forced=False",
    "papy.core.Dagger.del_piper": "piper, forced=False",
    "papy.core.Dagger.disconnect": "forced=False",
    "papy.core.Dagger.get_inputs": "",
    "papy.core.Dagger.get_outputs": "",
    "papy.core.Dagger.resolve": "piper, forgive=False",
    "papy.core.Dagger.start": "",
    "papy.core.Dagger.stop": "",
    "papy.core.Plumber": "logger_options={}, **kwargs",
    "papy.core.Plumber.load": "filename",
    "papy.core.Plumber.pause": "",
    "papy.core.Plumber.run": "",
    "papy.core.Plumber.save": "filename",
    "papy.core.Plumber.start": "datas",
    "papy.core.Plumber.stop": "",
    "papy.core.Plumber.wait": "timeout=None",
}

# How many entries the contract holds: signatures (classes, methods,
# functions) and exceptions. The contract is a fixed file; a different count
# means the parser missed or invented entries.
CONTRACT_SIGNATURE_COUNT = 94
CONTRACT_EXCEPTION_COUNT = 4


@dataclass
class Entry:
    """One documented signature: its contract name (1.x spelling), the text
    inside its parentheses, whether it is a method, and where it was read."""

    name: str
    params: str
    is_method: bool
    line: int = 0
    # Names of the "• name(type) ..." bullets under it (its Arguments list).
    bullets: list[str] = field(default_factory=list)


def find_contract() -> Path | None:
    """The contract file in shared/spec of this test's checkout or any folder
    above it, or None when this checkout has no copy (e.g. on CI)."""
    for folder in Path(__file__).resolve().parents:
        candidate = folder / "shared" / "spec" / CONTRACT_NAME
        if candidate.is_file():
            return candidate
    return None


# Signature lines start at the left margin; the indented lines and the
# `piper_instance.stop(ends =...)` style lines are call examples, not these.
_CLASS = re.compile(r"class ((?:papy|numap)\.[\w.]+)\((.*)\)$")
_EXCEPTION = re.compile(r"exception ((?:papy|numap)\.[\w.]+)$")
_FUNCTION = re.compile(r"((?:papy|numap)\.[\w.]+)\((.*)\)$")
_SECTION = re.compile(r"(?:papy|numap)(?:\.\w+)+$")
_METHOD = re.compile(r"([a-z_]\w*)\((.*)\)$")
_BULLET = re.compile(r"\s*\u2022\s*(\w+)\s*\(")


def parse_contract(text: str) -> tuple[list[Entry], list[Entry]]:
    """(signature entries, exception entries) of the contract text.

    A method line belongs to the class line above it; a module heading,
    exception or module-level function ends the class. A method line outside
    a class is a parse error (ValueError), not something to skip. Argument
    bullets belong to the entry above them.
    """
    signatures: list[Entry] = []
    exceptions: list[Entry] = []
    current_class: str | None = None
    owner: Entry | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        if bullet := _BULLET.match(line):
            if owner is not None:
                owner.bullets.append(bullet[1])
            continue
        if not line or line[0].isspace():
            continue
        entry = None
        if match := _CLASS.match(line):
            current_class = match[1]
            entry = Entry(match[1], match[2], False, number)
        elif match := _EXCEPTION.match(line):
            current_class = owner = None
            exceptions.append(Entry(match[1], "", False, number))
        elif match := _FUNCTION.match(line):
            current_class = None
            entry = Entry(match[1], match[2], False, number)
        elif _SECTION.match(line):
            current_class = owner = None
        elif match := _METHOD.match(line):
            if current_class is None:
                raise ValueError(f"contract line {number}: method outside a class")
            entry = Entry(f"{current_class}.{match[1]}", match[2], True, number)
        if entry is not None:
            signatures.append(entry)
            owner = entry
    return signatures, exceptions


def documented_signature(params: str) -> inspect.Signature:
    """The signature written as `params` (the text inside the parentheses),
    read with Python's own parser; defaults are literals."""
    function = ast.parse(f"def _({params}): pass").body[0]
    assert isinstance(function, ast.FunctionDef)
    arguments = function.args
    kind = inspect.Parameter
    parameters = []
    first_default = len(arguments.args) - len(arguments.defaults)
    for index, argument in enumerate(arguments.args):
        default: Any = kind.empty
        if index >= first_default:
            default = ast.literal_eval(arguments.defaults[index - first_default])
        parameters.append(
            kind(argument.arg, kind.POSITIONAL_OR_KEYWORD, default=default)
        )
    if arguments.vararg:
        parameters.append(kind(arguments.vararg.arg, kind.VAR_POSITIONAL))
    for argument, node in zip(arguments.kwonlyargs, arguments.kw_defaults, strict=True):
        default = kind.empty if node is None else ast.literal_eval(node)
        parameters.append(kind(argument.arg, kind.KEYWORD_ONLY, default=default))
    if arguments.kwarg:
        parameters.append(kind(arguments.kwarg.arg, kind.VAR_KEYWORD))
    return inspect.Signature(parameters)


def our_name(contract_name: str) -> str:
    """The contract's dotted name in our layout (see MODULE_RENAMES)."""
    for old, new in MODULE_RENAMES.items():
        if contract_name.startswith(old + "."):
            return new + contract_name[len(old) :]
    return contract_name


def resolve(contract_name: str) -> Any:
    """The object our code has under the contract's name: the longest
    importable module prefix, then attributes. AttributeError if missing."""
    parts = our_name(contract_name).split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            found: Any = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ModuleNotFoundError(f"no module of {contract_name!r} can be imported")


def actual_signature(entry: Entry) -> inspect.Signature:
    """Our object's signature, without `self` for a method."""
    signature = inspect.signature(resolve(entry.name))
    if entry.is_method:
        parameters = list(signature.parameters.values())
        assert parameters and parameters[0].name == "self", (
            f"{entry.name} should be a plain method taking self first"
        )
        signature = signature.replace(parameters=parameters[1:])
    return signature


def same_default(ours: Any, documented: Any) -> bool:
    """Equal defaults; a bool never stands in for an int (True == 1)."""
    if isinstance(ours, bool) != isinstance(documented, bool):
        return False
    return bool(ours == documented)


def differences(entry: Entry) -> list[str]:
    """What in our signature breaks the contract's entry (empty if nothing)."""
    documented = documented_signature(entry.params)
    actual = actual_signature(entry)
    sanctioned = SANCTIONED_DEFAULTS.get(entry.name, {})
    ours = list(actual.parameters.values())
    kinds = {parameter.kind for parameter in ours}
    found: list[str] = []
    position = 0
    for expected in documented.parameters.values():
        if expected.kind is expected.VAR_POSITIONAL:
            # Callers cannot spell *args' name, so only its presence counts.
            if expected.VAR_POSITIONAL not in kinds:
                found.append(f"*{expected.name} is missing")
            continue
        if expected.kind is expected.VAR_KEYWORD:
            if expected.VAR_KEYWORD not in kinds:
                found.append(f"**{expected.name} is missing")
            continue
        if expected.kind is expected.KEYWORD_ONLY:
            candidate = actual.parameters.get(expected.name)
        else:
            # Positional: the same slot, so positional calls bind alike.
            candidate = ours[position] if position < len(ours) else None
            position += 1
        if candidate is None or candidate.name != expected.name:
            got = "nothing" if candidate is None else repr(candidate.name)
            found.append(f"argument {expected.name!r} expected here, found {got}")
            continue
        if candidate.kind is not expected.kind:
            found.append(f"{expected.name!r} is {candidate.kind.description}")
        wanted, why = sanctioned.get(expected.name, (expected.default, ""))
        if wanted is expected.empty:
            if candidate.default is not candidate.empty:
                found.append(f"{expected.name!r} should be required")
        elif candidate.default is candidate.empty:
            found.append(f"{expected.name!r} should default to {wanted!r}")
        elif not same_default(candidate.default, wanted):
            found.append(
                f"{expected.name!r} defaults to {candidate.default!r}, "
                f"expected {wanted!r}" + (f" ({why})" if why else "")
            )
    documented_names = set(documented.parameters)
    for extra in ours:
        if extra.name in documented_names:
            continue
        if extra.kind in (extra.VAR_POSITIONAL, extra.VAR_KEYWORD):
            continue
        if extra.default is extra.empty:
            found.append(f"added argument {extra.name!r} has no default")
    return found


def _contract_entries() -> tuple[Path | None, list[Entry], list[Entry]]:
    path = find_contract()
    if path is None:
        return None, [], []
    signatures, exceptions = parse_contract(path.read_text(encoding="utf-8"))
    return path, signatures, exceptions


CONTRACT_PATH, CONTRACT_SIGNATURES, CONTRACT_EXCEPTIONS = _contract_entries()
NO_CONTRACT = (
    f"contract {CONTRACT_NAME} not found in shared/spec above {__file__} "
    "(CI checkouts lack ../shared); CORE_SIGNATURES still runs"
)


def _params_or_skip(entries: list[Entry]) -> list[Any]:
    if CONTRACT_PATH is None:
        return [pytest.param(None, marks=pytest.mark.skip(reason=NO_CONTRACT))]
    return [pytest.param(e, id=f"L{e.line}:{e.name}") for e in entries]


def _core_entry(name: str) -> Entry:
    # A method iff its class is in the table too (all of them are).
    is_method = name.rsplit(".", 1)[0] in CORE_SIGNATURES
    return Entry(name, CORE_SIGNATURES[name], is_method)


# --- tests that read the contract (skipped without it) -----------------------


@pytest.mark.timeout(10)
def test_the_parser_finds_every_contract_entry():
    if CONTRACT_PATH is None:
        pytest.skip(NO_CONTRACT)
    assert len(CONTRACT_SIGNATURES) == CONTRACT_SIGNATURE_COUNT
    assert len(CONTRACT_EXCEPTIONS) == CONTRACT_EXCEPTION_COUNT
    names = [entry.name for entry in CONTRACT_SIGNATURES]
    assert len(names) == len(set(names)), "an entry was read twice"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("entry", _params_or_skip(CONTRACT_SIGNATURES))
def test_contract_signature_holds(entry: Entry):
    assert differences(entry) == [], (
        f"contract line {entry.line}: {entry.name}({entry.params})"
        f" vs ours {actual_signature(entry)}"
    )


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "entry", _params_or_skip([e for e in CONTRACT_SIGNATURES if e.bullets])
)
def test_contract_argument_bullets_exist(entry: Entry):
    ours = actual_signature(entry).parameters
    for bullet in entry.bullets:
        name = SANCTIONED_BULLETS.get((entry.name, bullet), bullet)
        assert name in ours, (
            f"contract line {entry.line}: {entry.name} documents argument "
            f"{bullet!r}; ours is {actual_signature(entry)}"
        )


def contract_params() -> dict[str, str]:
    """Each contract entry's parameter text by name; skips the calling test
    where the contract file is absent."""
    if CONTRACT_PATH is None:
        pytest.skip(NO_CONTRACT)
    return {entry.name: entry.params for entry in CONTRACT_SIGNATURES}


@pytest.mark.timeout(10)
def test_core_table_matches_the_contract():
    in_contract = contract_params()
    for name, params in CORE_SIGNATURES.items():
        assert name in in_contract, f"{name} is not in the contract"
        assert documented_signature(params) == documented_signature(
            in_contract[name]
        ), f"CORE_SIGNATURES[{name!r}] differs from the contract"


@pytest.mark.timeout(10)
def test_sanctioned_tables_name_contract_entries():
    in_contract = contract_params()
    for name, arguments in SANCTIONED_DEFAULTS.items():
        documented = documented_signature(in_contract[name])
        for argument in arguments:
            assert argument in documented.parameters, f"{name} has no {argument}"
    assert set(EXCEPTION_BASES) == {entry.name for entry in CONTRACT_EXCEPTIONS}
    bullets = {(e.name, b) for e in CONTRACT_SIGNATURES for b in e.bullets}
    for (name, bullet), meant in SANCTIONED_BULLETS.items():
        assert (name, bullet) in bullets, f"{name} has no bullet {bullet}"
        assert meant in documented_signature(in_contract[name]).parameters
    assert set(ITERATORS) <= set(in_contract)


# --- tests that run everywhere ------------------------------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", sorted(CORE_SIGNATURES))
def test_core_signature_holds(name: str):
    entry = _core_entry(name)
    assert differences(entry) == [], (
        f"{name}({entry.params}) vs ours {actual_signature(entry)}"
    )


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", sorted(EXCEPTION_BASES))
def test_documented_exception_exists(name: str):
    exception = resolve(name)
    for base in EXCEPTION_BASES[name]:
        assert issubclass(exception, base), f"{name} is not a {base}"


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", ITERATORS)
def test_iterators_are_python3_iterators(name: str):
    cls = resolve(name)
    assert callable(getattr(cls, "__iter__", None)), f"{name} lacks __iter__"
    assert callable(getattr(cls, "__next__", None)), f"{name} lacks __next__"
    assert callable(getattr(cls, "next", None)), f"{name} lost its next()"


@pytest.mark.timeout(10)
def test_plumber_none_logger_options_means_none():
    # The sanctioned default (None for the contract's {}) must behave like {}.
    from papy.core import Plumber

    assert Plumber().logger_options == Plumber(logger_options={}).logger_options
    assert Plumber().logger_options == {}


def _binds(name: str, *args: Any, **kwargs: Any) -> None:
    """Bind a call, as written in the contract's examples, to our signature;
    TypeError if our signature would refuse it."""
    inspect.signature(resolve(name)).bind(*args, **kwargs)


@pytest.mark.timeout(10)
def test_contract_call_examples_bind():
    # Keyword spellings the contract's own examples use (its line numbers).
    # The get_task examples (l. 799, 804) say task_id although the signature
    # says task; tests/numap/test_api.py runs them on a real NuMap.
    self = object()
    _binds("numap.NuMap.NuMap.get_task", self, task_id=1)
    _binds("numap.NuMap.NuMap.get_task", self, task=1)
    _binds("papy.core.Piper.stop", self, ends=[0, 1])  # l. 211
    _binds("papy.core.Piper.stop", self, forced=True, ends=[0, 1])  # l. 219
    _binds("numap.NuMap.NuMap.stop", self, ends=[0, 1])  # l. 215
    # Worker construction forms (l. 300-324).
    _binds("papy.core.Worker", (abs, str, len), ((1, 2), (3,), ()), ({}, {}, {}))
    _binds("papy.core.Worker", abs, (1, 2, 3))
    # Plumber documents a `dagger` argument in its prose (l. 241).
    _binds("papy.core.Plumber", dagger=None)
    _binds("papy.core.Plumber", {})


def _first_plus_one(inbox: Any) -> Any:
    return inbox[0] + 1


def _double(inbox: Any) -> Any:
    # a later function's inbox is a 1-tuple of the previous result (PaPy 1.x)
    return inbox[0] * 2


@pytest.mark.timeout(10)
def test_worker_combination_example():
    # l. 310-315: Worker((worker1, worker2)) equals a Worker built from the
    # two Workers' task, args and kwargs attributes joined.
    from papy.core import Worker

    first, second = Worker(_first_plus_one), Worker(_double)
    joined = Worker(
        first.task + second.task,
        first.args + second.args,
        first.kwargs + second.kwargs,
    )
    assert joined([4]) == Worker((first, second))([4]) == 10
