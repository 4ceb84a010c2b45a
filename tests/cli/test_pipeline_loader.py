"""Loading pipeline files: every way a file can be unusable gets a clear
message naming the file (the `pipeline` type is a stand-in class here, so
these tests do not need a running pipeline)."""

from __future__ import annotations

import sys

import pytest
from papy.core._cli_load import PipelineFileError, load_pipeline_file


class Stand:
    """Stands in for Plumber."""


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


@pytest.mark.timeout(10)
def test_missing_file(tmp_path):
    with pytest.raises(PipelineFileError, match=r"'nowhere.py' does not exist"):
        load_pipeline_file("nowhere.py", Stand)


@pytest.mark.timeout(10)
def test_directory_is_not_a_pipeline(tmp_path):
    with pytest.raises(PipelineFileError, match="is not a file"):
        load_pipeline_file(str(tmp_path), Stand)


@pytest.mark.timeout(10)
def test_syntax_error_names_line_and_shows_it(tmp_path):
    path = write(tmp_path, "bad.py", "x = 1\ny = (2,\nz = 3 +\n")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline_file(path, Stand)
    message = str(caught.value)
    assert message.startswith("pipeline file has a syntax error (")
    assert "bad.py, line" in message
    assert "SyntaxError" in caught.value.details


@pytest.mark.timeout(10)
def test_binary_file_is_not_python(tmp_path):
    path = tmp_path / "binary.py"
    path.write_bytes(b"\x00\x01\x02")
    with pytest.raises(PipelineFileError, match="not Python source"):
        load_pipeline_file(str(path), Stand)


@pytest.mark.timeout(10)
def test_error_while_loading_names_type_and_line(tmp_path):
    path = write(tmp_path, "boom.py", "import math\n\nvalue = math.sqrt(-1)\n")
    with pytest.raises(PipelineFileError) as caught:
        load_pipeline_file(path, Stand)
    assert "raised ValueError while loading, line 3: math domain error" in str(
        caught.value
    )
    assert "Traceback" in caught.value.details
    assert not [name for name in sys.modules if name == "papy_pipeline_boom"]


@pytest.mark.timeout(10)
def test_no_pipeline_variable(tmp_path):
    path = write(tmp_path, "empty.py", "plumber = 1\n")
    with pytest.raises(PipelineFileError, match="defines no module-level `pipeline`"):
        load_pipeline_file(path, Stand)


@pytest.mark.timeout(10)
def test_pipeline_of_the_wrong_type(tmp_path):
    path = write(tmp_path, "wrong.py", "pipeline = 42\n")
    with pytest.raises(PipelineFileError, match="is a int, expected a Stand"):
        load_pipeline_file(path, Stand)


@pytest.mark.timeout(10)
def test_good_file_imports_neighbours_and_exposes_hooks(tmp_path):
    (tmp_path / "helper_for_loader_test.py").write_text("VALUE = 7\n")
    path = write(
        tmp_path,
        "good.py",
        "import helper_for_loader_test\n"
        f"from {__name__} import Stand\n"
        "pipeline = Stand()\n"
        "def make_inputs(paths):\n"
        "    return [paths * helper_for_loader_test.VALUE]\n",
    )
    loaded = load_pipeline_file(path, Stand)
    assert isinstance(loaded.pipeline, Stand)
    assert loaded.hook("make_inputs")(["a"]) == [["a"] * 7]
    assert loaded.hook("finish") is None
    assert sys.modules["papy_pipeline_good"] is loaded.module
