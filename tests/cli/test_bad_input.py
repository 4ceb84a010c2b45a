"""`papy` on user mistakes: a clear message, no traceback unless --debug,
and a distinct exit status for each kind of mistake."""

from __future__ import annotations

import pytest
from cli_helpers import EXAMPLES, PIPELINES

BAD_PIPELINE = 4
BAD_INPUT = 5


def assert_clean_error(result, status, *fragments):
    assert result.status == status, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.timeout(30)
def test_missing_pipeline_file(papy):
    result = papy("run", "no_such_pipeline.py")
    assert_clean_error(
        result,
        BAD_PIPELINE,
        "papy: error: pipeline file 'no_such_pipeline.py' does not exist",
    )


@pytest.mark.timeout(30)
def test_syntax_error(papy, tmp_path):
    (tmp_path / "broken.py").write_text(
        "from papy.core import Plumber\n\npipeline = Plumber(\n"
    )
    result = papy("run", "broken.py")
    assert_clean_error(result, BAD_PIPELINE, "syntax error (broken.py, line 3)")
    debug = papy("run", "broken.py", "--debug")
    assert debug.status == BAD_PIPELINE
    assert "SyntaxError" in debug.stderr


@pytest.mark.timeout(30)
def test_file_without_pipeline(papy):
    result = papy("run", str(PIPELINES / "no_pipeline.py"))
    assert_clean_error(result, BAD_PIPELINE, "defines no module-level `pipeline`")


@pytest.mark.timeout(30)
def test_pipeline_that_is_not_a_plumber(papy):
    result = papy("graph", str(PIPELINES / "not_a_plumber.py"))
    assert_clean_error(result, BAD_PIPELINE, "`pipeline` is a list, expected a Plumber")


@pytest.mark.timeout(30)
def test_file_raising_while_loading(papy):
    result = papy("run", str(PIPELINES / "raises_on_load.py"))
    assert_clean_error(
        result,
        BAD_PIPELINE,
        "raised JSONDecodeError while loading, line 5",
        "rerun with --debug",
    )
    debug = papy("run", str(PIPELINES / "raises_on_load.py"), "--debug")
    assert debug.status == BAD_PIPELINE
    assert "Traceback (most recent call last)" in debug.stderr
    assert 'json.loads("{not json")' in debug.stderr


@pytest.mark.timeout(30)
def test_input_that_does_not_exist(papy, tmp_path):
    (tmp_path / "real.txt").write_text("a\nb\n")
    result = papy(
        "run",
        str(PIPELINES / "line_counts.py"),
        "real.txt",
        "missing.txt",
        env={"LINE_COUNTS_OUTPUT": str(tmp_path / "out.tsv")},
    )
    assert_clean_error(result, BAD_INPUT, "input does not exist: 'missing.txt'")


@pytest.mark.timeout(30)
def test_paths_as_items_need_an_input(papy, tmp_path):
    result = papy(
        "run",
        str(PIPELINES / "line_counts.py"),
        env={"LINE_COUNTS_OUTPUT": str(tmp_path / "out.tsv")},
    )
    assert_clean_error(
        result, BAD_INPUT, "defines no make_inputs(paths)", "give at least one INPUT"
    )


@pytest.mark.timeout(30)
def test_bad_command_line(papy):
    assert papy().status == 2
    result = papy("run", "x.py", "--workers", "0")
    assert result.status == 2
    assert "must be at least 1" in result.stderr
    result = papy("graph", str(PIPELINES / "line_counts.py"), "-o", "x.txt")
    assert result.status == 2
    assert "unknown suffix '.txt'" in result.stderr


@pytest.mark.timeout(30)
def test_pipes_that_do_not_align_are_refused_at_start(papy):
    result = papy("run", str(PIPELINES / "mismatched.py"))
    assert_clean_error(result, BAD_PIPELINE, "cannot start the pipeline", "pairs")


@pytest.mark.timeout(30)
def test_make_inputs_that_raises(papy, tmp_path):
    (tmp_path / "data.json").write_text("[1, 2,")
    result = papy("run", str(PIPELINES / "bad_make_inputs.py"), "data.json")
    assert_clean_error(
        result, BAD_INPUT, "make_inputs() of bad_make_inputs.py raised JSONDecodeError"
    )


@pytest.mark.timeout(30)
def test_make_inputs_with_the_wrong_number_of_streams(papy):
    result = papy("run", str(PIPELINES / "bad_make_inputs.py"))
    assert_clean_error(
        result, BAD_INPUT, "returned 2 input stream(s) but the pipeline has 1 input"
    )


@pytest.mark.timeout(30)
def test_thread_override_of_a_remote_numap_is_refused(papy, tmp_path):
    result = papy(
        "run", str(EXAMPLES / "remote_fasta_stats.py"), "--worker-type", "thread"
    )
    assert_clean_error(result, 2, "NuMap 'remote' has remote workers")
    assert not (tmp_path / "remote_fasta_stats.tsv").exists()


@pytest.mark.timeout(30)
def test_graph_into_a_missing_folder(papy):
    result = papy("graph", str(PIPELINES / "line_counts.py"), "-o", "nowhere/g.dot")
    assert_clean_error(
        result, 6, "cannot write nowhere/g.dot: No such file or directory"
    )


@pytest.mark.timeout(30)
def test_help_says_what_and_gives_examples(papy):
    helps = {args: papy(*args, "--help") for args in ((), ("run",), ("graph",))}
    for result in helps.values():
        assert result.status == 0, result.output
        assert "example" in result.stdout
        assert "exit status:" in result.stdout
    assert "papy run examples/fasta_stats.py" in helps[()].stdout
    assert "make_inputs(paths)" in helps[("run",)].stdout
    assert "apt-get install graphviz" in helps[("graph",)].stdout


@pytest.mark.timeout(30)
def test_log_file_that_cannot_be_written(papy, tmp_path):
    result = papy(
        "run", str(PIPELINES / "line_counts.py"), "--log-file", "no/such/dir/run.log"
    )
    assert_clean_error(result, 2, "cannot write the log file 'no/such/dir/run.log'")


@pytest.mark.timeout(30)
def test_input_that_breaks_off(papy, tmp_path):
    out = tmp_path / "kept.txt"
    result = papy(
        "run", str(PIPELINES / "breaks_off.py"), env={"BREAKS_OFF_OUTPUT": str(out)}
    )
    assert_clean_error(
        result,
        BAD_INPUT,
        "reading the input of piper 'keep' failed after 3 item(s): "
        "OSError: the device went away",
    )
    assert out.read_text() == "a\nb\nc\n"
    assert "] pipeline summary" in result.stdout


@pytest.mark.timeout(30)
def test_input_file_of_the_wrong_kind(papy, tmp_path):
    (tmp_path / "notes.txt").write_text("hello\nworld\n")
    result = papy("run", str(EXAMPLES / "fasta_stats.py"), "notes.txt")
    assert_clean_error(
        result, BAD_INPUT, "before any '>' header: is this a FASTA file?"
    )


@pytest.mark.timeout(30)
@pytest.mark.parametrize("command", ["run", "graph"])
def test_pipes_that_make_a_cycle_are_a_bad_pipeline(papy, command):
    result = papy(command, str(PIPELINES / "cycle.py"))
    assert_clean_error(
        result,
        BAD_PIPELINE,
        "papy: error: pipeline file",
        "cycle.py': its pipes do not fit: ",
        "the graph has a cycle (Piper('a', new) -> Piper('b', new) -> Piper('a'",
    )
    assert "internal error" not in result.stderr
