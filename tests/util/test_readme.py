"""The code examples in packages/papy-util/README.md run and show true values."""

import json
import re
import shutil
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "packages" / "papy-util" / "README.md"


def example(first_line):
    """The README's python block that starts with ``first_line``."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text("utf-8"), re.DOTALL)
    return next(block for block in blocks if block.startswith(first_line))


@pytest.mark.timeout(20)
@pytest.mark.usefixtures("private_tmp")
def test_func_example_moves_an_item_through_a_fifo():
    namespace = {}
    exec(example("from papy.util.func import"), namespace)
    assert namespace["data"] == b"payload"


@pytest.mark.timeout(20)
@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_script_example_returns_what_its_comment_says():
    source = example("from papy.util.script import")
    namespace = {}
    exec(source, namespace)
    last_call = source.strip().splitlines()[-1]
    call, _, shown = last_call.partition("  # -> ")
    assert eval(call, namespace) == json.loads(shown)


@pytest.mark.timeout(20)
@pytest.mark.usefixtures("clean_logging")
def test_config_example_logs_both_kinds_of_call_to_file_and_stderr(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)  # the example writes PaPy_log in the cwd
    exec(example("from papy.util.config import"), {})
    lines = (tmp_path / "PaPy_log").read_text("utf-8").splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert events == ["pipeline started", "plain logging works too"]
    stderr = capsys.readouterr().err
    assert "pipeline started" in stderr and "plain logging works too" in stderr
