"""`papy` after the review of session 16: interrupts a function raises
itself, broken or closed standard output, sys.exit() while loading,
results counted at several outputs, INPUTs that are pipes, hooks that
return text, options between the INPUTs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading

import pytest
from cli_helpers import EXAMPLES, PIPELINES, papy_command

sys.path.insert(0, str(EXAMPLES))

import fasta_functions as ff  # noqa: E402

# --- 1. KeyboardInterrupt or GeneratorExit raised by an item's function -------


@pytest.mark.timeout(120)
@pytest.mark.parametrize("runs_on", ["linear", "thread", "process"])
@pytest.mark.parametrize("raises", ["KeyboardInterrupt", "GeneratorExit"])
def test_an_interrupt_the_function_raises_is_that_items_error(papy, runs_on, raises):
    result = papy(
        "run",
        str(PIPELINES / "raises_interrupt.py"),
        env={"RUNS_ON": runs_on, "RAISES": raises},
    )
    assert result.status == 3, result.output
    assert f"raised {raises}('raised by me')" in result.stderr
    assert "items_in=8 items_out=8" in result.stdout  # the others went through
    assert "internal error" not in result.stderr


# --- 2. standard output broken, full or closed --------------------------------


def papy_in_shell(
    command: str, cwd, timeout: float = 100
) -> subprocess.CompletedProcess:
    """Run a shell command line in which $PAPY is the `papy` command."""
    return subprocess.run(
        ["bash", "-c", command],
        cwd=cwd,
        env=dict(os.environ, PAPY=" ".join(papy_command())),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.timeout(120)
def test_run_goes_on_quietly_when_the_reader_of_stdout_has_gone(tmp_path):
    ff.write_demo_fasta(tmp_path / "small.fasta", sequences=200, seed=5)
    done = papy_in_shell(
        f"$PAPY run {EXAMPLES / 'fasta_stats.py'} small.fasta "
        "--progress-interval 0.05 | head -1; "
        'echo "status=${PIPESTATUS[0]}"',
        tmp_path,
    )
    assert "status=0" in done.stdout, done.stderr
    assert "Logging error" not in done.stderr
    assert "Traceback" not in done.stderr
    rows = (tmp_path / "fasta_stats.tsv").read_text().count("\n") - 1
    assert rows == 200  # the run went on to its end


@pytest.mark.timeout(120)
def test_run_says_once_that_stdout_is_full_and_goes_on(tmp_path):
    ff.write_demo_fasta(tmp_path / "small.fasta", sequences=100, seed=6)
    done = papy_in_shell(
        f"$PAPY run {EXAMPLES / 'fasta_stats.py'} small.fasta > /dev/full", tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("cannot write to standard output") == 1
    assert "Logging error" not in done.stderr
    assert (tmp_path / "fasta_stats.tsv").read_text().count("\n") == 101


@pytest.mark.timeout(120)
def test_run_with_stdout_closed_goes_through(tmp_path):
    done = papy_in_shell(
        f"$PAPY run {PIPELINES / 'two_outputs.py'} --log-file log.json >&-", tmp_path
    )
    assert done.returncode == 3, done.stderr  # item 2 fails, as it should
    assert "internal error" not in done.stderr
    assert '"event": "pipeline summary"' in (tmp_path / "log.json").read_text()


@pytest.mark.timeout(60)
def test_graph_ends_quietly_when_the_reader_of_stdout_has_gone(tmp_path):
    done = papy_in_shell(
        f"$PAPY graph {EXAMPLES / 'fasta_stats.py'} | true; "
        'echo "status=${PIPESTATUS[0]}"',
        tmp_path,
    )
    assert "status=141" in done.stdout  # as a tool that SIGPIPE ended
    assert done.stderr == ""


@pytest.mark.timeout(60)
def test_graph_reports_a_full_stdout(tmp_path):
    done = papy_in_shell(
        f"$PAPY graph {EXAMPLES / 'fasta_stats.py'} > /dev/full", tmp_path
    )
    assert done.returncode == 6
    assert "papy: error: cannot write to standard output: No space left" in done.stderr
    assert "Traceback" not in done.stderr


# --- 3. sys.exit() while the pipeline file loads ---------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ["run", "graph"])
def test_sys_exit_while_loading_is_a_broken_pipeline_file(papy, command):
    result = papy(command, str(PIPELINES / "exits_on_load.py"))
    assert result.status == 4, result.output
    assert "called sys.exit(0) while loading" in result.stderr
    assert 'if __name__ == "__main__":' in result.stderr


@pytest.mark.timeout(60)
def test_a_module_level_argument_parser_is_explained(papy):
    result = papy("run", str(PIPELINES / "parses_arguments_on_load.py"))
    assert result.status == 4, result.output
    assert "called sys.exit(2) while loading" in result.stderr
    assert "An argument parser at module level" in result.stderr


# --- 6. one failed item at two outputs ---------------------------------------


@pytest.mark.timeout(60)
def test_failures_at_several_outputs_are_counted_as_results(papy):
    result = papy("run", str(PIPELINES / "two_outputs.py"))
    assert result.status == 3, result.output
    assert "papy: 2 failed result(s):" in result.stderr
    assert re.search(
        r"pipeline summary .*errors=2 items_in=5 items_out=10", result.stdout
    )


# --- 7. an INPUT that is a pipe (bash's <(...)) -----------------------------


@pytest.mark.timeout(120)
def test_fasta_stats_reads_a_pipe_given_as_dev_fd(tmp_path):
    fasta = ff.write_demo_fasta(tmp_path / "small.fasta", sequences=50, seed=7)
    read_end, write_end = os.pipe()

    def feed() -> None:
        with open(write_end, "wb") as pipe:
            pipe.write(fasta.read_bytes())

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        done = subprocess.run(
            [
                *papy_command(),
                "run",
                str(EXAMPLES / "fasta_stats.py"),
                f"/dev/fd/{read_end}",
            ],
            cwd=tmp_path,
            pass_fds=(read_end,),
            capture_output=True,
            text=True,
            timeout=100,
            check=False,
        )
    finally:
        os.close(read_end)
        feeder.join(timeout=10)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fasta_stats.tsv").read_text().count("\n") == 51
    assert f"50 rows of statistics for /dev/fd/{read_end} written to" in done.stdout


# --- 8. hooks that return text ------------------------------------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("returns", "status", "message"),
    [
        (
            "make_inputs",
            5,
            "make_inputs() of returns_text.py returned text (str 'abc'), which "
            "would be split into characters",
        ),
        (
            "stream",
            5,
            "the input of piper 'first' is text (str 'abc'), which would be "
            "split into characters",
        ),
        ("finish", 4, "returned text (str 'all done'), which would be split"),
        ("finish_number", 4, "returned int 5, which is not iterable"),
    ],
)
def test_hooks_that_return_text_are_refused(papy, returns, status, message):
    result = papy("run", str(PIPELINES / "returns_text.py"), env={"RETURNS": returns})
    assert result.status == status, result.output
    assert message in result.stderr
    assert "raised TypeError" not in result.stderr


# --- 9. options between the INPUTs, and the option values refused ----------


@pytest.mark.timeout(60)
def test_options_may_come_between_the_inputs(papy, tmp_path):
    (tmp_path / "a.txt").write_text("1\n2\n")
    (tmp_path / "b.txt").write_text("1\n")
    result = papy(
        "run",
        str(PIPELINES / "line_counts.py"),
        "a.txt",
        "--show-errors",
        "2",
        "b.txt",
        env={"LINE_COUNTS_OUTPUT": "counts.txt"},
    )
    assert result.status == 0, result.output
    assert (tmp_path / "counts.txt").read_text() == "a.txt\t2\nb.txt\t1\n"


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--progress-interval", "1e-9"], "of at least 0.01, got '1e-9'"),
        (["--log-file", ""], "argument --log-file: expected a file name, got ''"),
    ],
)
def test_option_values_that_cannot_work_are_refused(papy, option, message):
    result = papy("run", str(PIPELINES / "line_counts.py"), "x", *option)
    assert result.status == 2, result.output
    assert message in result.stderr


@pytest.mark.timeout(60)
def test_progress_lines_come_as_often_as_asked(papy):
    result = papy(
        "run",
        str(PIPELINES / "slow_on_processes.py"),
        "--progress-interval",
        "0.05",
        env={"SLOW_SECONDS": "0.1"},
    )
    assert result.status == 0, result.output
    # 20 items at 0.1 s on 2 workers: about 1 s, so about 20 rounds of
    # progress lines at 0.05 s; polled every 0.2 s there were at most 6.
    rounds = set(
        re.findall(r"\] progress .*elapsed_s=([\d.]+) .*piper=slow", result.stdout)
    )
    assert len(rounds) > 8, result.stdout
