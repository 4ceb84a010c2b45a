"""Plumber.save defects found in review: what copied functions use, methods,
and error messages that name where the unsavable value is."""

import enum
import inspect
import subprocess
import sys

import pytest
import test_save
from core_functions import first, scale
from papy.core import Piper, Plumber, PlumberError, Worker, load_pipeline


class Scaler:
    def __init__(self, k):
        self.k = k

    def scale(self, inbox):
        return inbox[0] * self.k

    @staticmethod
    def negate(inbox):
        return -inbox[0]


@pytest.mark.timeout(10)
def test_bound_methods_and_class_functions_are_refused(tmp_path):
    bound = Plumber(pipers=[Piper(Worker(Scaler(3).scale), name="a")])
    with pytest.raises(PlumberError, match="Scaler.scale is a method bound to"):
        bound.save(tmp_path / "bound.py")
    static = Plumber(pipers=[Piper(Worker(Scaler.negate), name="a")])
    with pytest.raises(PlumberError, match="Scaler.negate is defined in a class"):
        static.save(tmp_path / "static.py")


# The scripts below run a pipeline as test_save.run does.
RUN = "\nfrom papy.core import Dagger\n\n" + inspect.getsource(test_save.run)

USES_ITS_MODULE = (
    """
import math
import sys
from hashlib import sha256
from os.path import join as pjoin

from numap import NuMap, imports
from papy.core import Piper, Plumber, Worker

FACTOR = 3
LABELS = {"a": [1, 2], "b": (None, 2.5)}


def helper(x):
    return x + later_helper(x)


def later_helper(x):
    return 1 if x < 0 else helper(-x) - x


shout = helper


def uses_globals(inbox, scale=FACTOR):
    value = inbox[0]
    roots = [math.sqrt(v) for v in (value,)]
    return (
        value * scale,
        helper(value),
        roots[0],
        pjoin("d", str(value)),
        sha256(str(value).encode()).hexdigest()[:8],
        len(LABELS["a"]),
        shout(1),
    )


@imports(["os"])
def decorated(inbox):
    return inbox[0] + (os.sep,)


a = Piper(Worker(uses_globals), name="a")
b = Piper(Worker(decorated), parallel=NuMap(worker_type="process"), name="b")
pipeline = Plumber(pipes=[(a, b)], name="globals")
pipeline.save(sys.argv[1])
"""
    + RUN
    + """
print(repr(run(pipeline, [[4, 9]])))
"""
)

LOAD_AND_RUN = (
    """
import sys
from papy.core import load_pipeline
"""
    + RUN
    + """
print(repr(run(load_pipeline(sys.argv[1]), [[4, 9]])))
"""
)


def python(tmp_path, name, source, *args):
    script = tmp_path / name
    script.write_text(source)
    done = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=40,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.timeout(90)
def test_copied_functions_bring_what_they_use_from_their_module(tmp_path):
    saved = tmp_path / "saved.py"
    expected = python(tmp_path, "script.py", USES_ITS_MODULE, saved)
    text = saved.read_text()
    assert "FACTOR = 3" in text
    assert "from os.path import join as pjoin" in text
    assert "from hashlib import sha256" in text
    assert "import math" in text
    assert "from numap import imports" in text
    assert "\n\n\ndef helper(x):" in text
    assert "\n\n\ndef later_helper(x):" in text
    assert "\n\n\nshout = helper\n" in text
    loaded = python(tmp_path, "load.py", LOAD_AND_RUN, saved)
    assert loaded == expected
    assert "'d/4'" in loaded


UNSAVABLE_GLOBAL = """
import sys

from papy.core import Piper, Plumber, PlumberError, Worker


class Settings:
    limit = 2


SETTINGS = Settings()


def clip(inbox):
    return min(inbox[0], SETTINGS.limit)


try:
    Plumber(pipers=[Piper(Worker(clip), name="a")]).save(sys.argv[1])
except PlumberError as error:
    print(error)
"""


@pytest.mark.timeout(30)
def test_a_global_that_cannot_be_written_is_an_error_naming_it(tmp_path):
    message = python(tmp_path, "script.py", UNSAVABLE_GLOBAL, tmp_path / "x.py")
    assert "function 'clip' uses the global 'SETTINGS'" in message
    assert "move it into an importable module" in message


UNSAVABLE_CALLABLE_GLOBALS = """\
import functools
import sys

from papy.core import Piper, Plumber, PlumberError, Worker


def scale(value, factor):
    return value * factor


DOUBLE = functools.partial(scale, factor=2)
DOUBLE.label = "doubled"
SQUARE = lambda value: value * value  # noqa: E731


def doubled(inbox):
    return DOUBLE(inbox[0])


def squared(inbox):
    return SQUARE(inbox[0])


function = {"doubled": doubled, "squared": squared}[sys.argv[2]]
try:
    Plumber(pipers=[Piper(Worker(function), name="a")]).save(sys.argv[1])
except PlumberError as error:
    print(error)
"""


@pytest.mark.timeout(30)
def test_a_callable_global_that_is_refused_is_named(tmp_path):
    script, saved = "script.py", tmp_path / "x.py"
    partial = python(tmp_path, script, UNSAVABLE_CALLABLE_GLOBALS, saved, "doubled")
    lambda_ = python(tmp_path, script, UNSAVABLE_CALLABLE_GLOBALS, saved, "squared")
    assert "function 'doubled' uses the global 'DOUBLE': " in partial
    assert "has attributes set on it (label)" in partial
    assert "function 'squared' uses the global 'SQUARE': " in lambda_
    assert "is a lambda or nested function" in lambda_


class Mode(enum.Enum):
    FAST = 1


@pytest.mark.timeout(10)
def test_save_errors_name_the_piper_worker_and_argument(tmp_path):
    load = Piper(Worker(first), name="load")
    score = Piper(
        Worker((first, scale), ((), ()), ({}, {"offset": Mode.FAST})), name="score"
    )
    plumber = Plumber(pipes=[(load, score)])
    expected = (
        r"^Plumber.save: Piper 'score', Worker 'first_scale', kwargs of function 2 "
        r"\(scale\) key 'offset': cannot write \S*Mode value <Mode.FAST: 1>"
    )
    with pytest.raises(PlumberError, match=expected):
        plumber.save(tmp_path / "kwargs.py")
    positional = Plumber(pipers=[Piper(Worker(scale, (Mode.FAST,)), name="p")])
    with pytest.raises(PlumberError, match=r"Piper 'p', Worker 'scale', args of "):
        positional.save(tmp_path / "args.py")
    method = Plumber(pipers=[Piper(Worker(Scaler(2).scale), name="m")])
    with pytest.raises(PlumberError, match=r"Piper 'm', Worker '.*', function 1 "):
        method.save(tmp_path / "method.py")
    logging = Plumber(logger_options={"log_stream": sys.stdout}, name="logs")
    with pytest.raises(
        PlumberError, match="Plumber 'logs': argument 'logger_options': cannot write"
    ):
        logging.save(tmp_path / "logging.py")


@pytest.mark.timeout(10)
def test_a_failed_load_leaves_sys_path_and_sys_modules_as_they_were(tmp_path):
    before_modules = set(sys.modules)
    cases = {
        "raises": "raise RuntimeError('broken on purpose')\n",
        "nopipeline": "x = 1\n",
        "notplumber": "pipeline = 3\n",
    }
    for name, source in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "pipe.py").write_text(source)
        with pytest.raises(PlumberError):
            load_pipeline(folder / "pipe.py")
        assert str(folder) not in sys.path
    assert set(sys.modules) == before_modules
    good = tmp_path / "good"
    good.mkdir()
    (good / "pipe.py").write_text(
        "from papy.core import Plumber\npipeline = Plumber()\n"
    )
    try:
        load_pipeline(good / "pipe.py")
        assert str(good) in sys.path
    finally:
        sys.path.remove(str(good))
