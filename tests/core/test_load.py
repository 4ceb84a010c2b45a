"""Loading pipeline files (one loader for Plumber.load, load_pipeline and the
`papy` command): every way a file can be unusable gets a PipelineFileError
whose message names the file; a good file gives its module and pipeline."""

from __future__ import annotations

import sys

import pytest
from papy.core import PipelineFileError, Plumber, PlumberError, load_pipeline
from papy.core._save import load_pipeline_file


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.timeout(10)
def test_missing_file(tmp_path):
    with pytest.raises(PipelineFileError, match=r"'nowhere.py' does not exist"):
        load_pipeline_file("nowhere.py")


@pytest.mark.timeout(10)
def test_directory_is_not_a_pipeline(tmp_path):
    with pytest.raises(PipelineFileError, match="is not a file"):
        load_pipeline_file(str(tmp_path))


@pytest.mark.timeout(10)
def test_syntax_error_names_line_and_shows_it(tmp_path):
    path = write(tmp_path, "bad.py", "x = 1\ny = (2,\nz = 3 +\n")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline_file(path)
    message = str(caught.value)
    assert message.startswith("pipeline file has a syntax error (")
    assert "bad.py, line" in message
    assert "SyntaxError" in caught.value.details


@pytest.mark.timeout(10)
def test_binary_file_is_not_python(tmp_path):
    path = tmp_path / "binary.py"
    path.write_bytes(b"\x00\x01\x02")
    with pytest.raises(PipelineFileError, match="not Python source"):
        load_pipeline_file(str(path))


@pytest.mark.timeout(10)
def test_error_while_loading_names_type_and_line(tmp_path):
    path = write(tmp_path, "boom.py", "import math\n\nvalue = math.sqrt(-1)\n")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline(path)
    assert "raised ValueError while loading, line 3: math domain error" in str(
        caught.value
    )
    assert isinstance(caught.value.__cause__, ValueError)
    assert "Traceback" in caught.value.details
    assert not [name for name in sys.modules if name.startswith("papy_pipeline_boom")]


@pytest.mark.timeout(10)
def test_sys_exit_while_loading_is_a_broken_pipeline_file(tmp_path):
    # Regression: only the papy command turned it into an error; a program
    # loading the file through the API was ended by it.
    path = write(tmp_path, "leaves.py", "import sys\n\nsys.exit(3)\n")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline(path)
    assert "called sys.exit(3) while loading, line 3" in str(caught.value)
    assert 'if __name__ == "__main__":' in str(caught.value)
    assert isinstance(caught.value.__cause__, SystemExit)
    assert not [name for name in sys.modules if name.startswith("papy_pipeline_leaves")]


@pytest.mark.timeout(10)
def test_no_pipeline_variable(tmp_path):
    path = write(tmp_path, "empty.py", "plumber = 1\n")
    with pytest.raises(PipelineFileError, match="defines no module-level `pipeline`"):
        load_pipeline_file(path)


@pytest.mark.timeout(10)
def test_pipeline_of_the_wrong_type(tmp_path):
    path = write(tmp_path, "wrong.py", "pipeline = 42\n")
    with pytest.raises(PipelineFileError, match="is a int, expected a Plumber"):
        load_pipeline_file(path)
    with pytest.raises(PlumberError, match="is a int, expected a Plumber"):
        Plumber().load(path)


CYCLE = """\
from papy.core import Piper, Plumber
from papy.util.func import ipasser

a, b = Piper(ipasser, name="a"), Piper(ipasser, name="b")
pipeline = Plumber(pipes=[(a, b)])
pipeline.add_edge((a, b))  # inherited from DictGraph: a -> b -> a
"""


@pytest.mark.timeout(10)
def test_pipes_that_make_a_cycle(tmp_path):
    path = write(tmp_path, "cycle.py", CYCLE)
    expected = r"cycle.py': its pipes do not fit: Dagger: the graph has a cycle"
    with pytest.raises(PipelineFileError, match=expected) as caught:
        load_pipeline_file(path)
    assert "DaggerError" in type(caught.value.__cause__).__name__
    assert not [name for name in sys.modules if name.startswith("papy_pipeline_cyc")]
    with pytest.raises(PlumberError, match="its pipes do not fit"):
        Plumber().load(path)


@pytest.mark.timeout(10)
def test_good_file_imports_neighbours_and_exposes_hooks(tmp_path):
    (tmp_path / "helper_for_loader_test.py").write_text("VALUE = 7\n")
    path = write(
        tmp_path,
        "good.py",
        "import helper_for_loader_test\n"
        "from papy.core import Plumber\n"
        "pipeline = Plumber(name='good')\n"
        "def make_inputs(paths):\n"
        "    return [paths * helper_for_loader_test.VALUE]\n",
    )
    loaded = load_pipeline_file(path)
    assert isinstance(loaded.pipeline, Plumber)
    assert loaded.hook("make_inputs")(["a"]) == [["a"] * 7]
    assert loaded.hook("finish") is None
    assert sys.modules["papy_pipeline_good"] is loaded.module
    again = load_pipeline(path)
    assert again is not loaded.pipeline
    assert sys.modules["papy_pipeline_good"] is loaded.module, "first module kept"
    assert again.name == "good"
