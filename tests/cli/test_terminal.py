"""`papy run` on a terminal (live table, summary table) and on Ctrl-C."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import time

import psutil
import pytest
from cli_helpers import EXAMPLES, PIPELINES, papy_command

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def run_on_terminal(args, cwd, env, timeout):
    """Run papy with stdout and stderr on a pseudo-terminal; return
    (status, text without ANSI codes)."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [*papy_command(), *args],
        cwd=cwd,
        env=dict(os.environ, COLUMNS="120", LINES="40", TERM="xterm", **env),
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # EIO: the terminal closed with the process
                break
            if not chunk:
                break
            chunks.append(chunk)
        os.close(controller)
        status = process.wait(timeout=10)
    finally:
        process.kill()
        process.wait()
    return status, ANSI.sub("", b"".join(chunks).decode(errors="replace"))


@pytest.mark.timeout(60)
def test_terminal_gets_a_summary_table_and_the_first_errors(tmp_path):
    out = tmp_path / "kept.tsv"
    status, text = run_on_terminal(
        ["run", str(PIPELINES / "some_items_fail.py")],
        tmp_path,
        {"SOME_ITEMS_FAIL_OUTPUT": str(out)},
        timeout=50,
    )
    assert status == 3, text
    assert "Pipeline finished" in text
    assert re.search(r"│ invert\s+│ thread x2\s+│\s+50 │\s+50 │\s+8 │", text), text
    assert re.search(r"│ keep\s+│ linear\s+│\s+50 │\s+50 │\s+8 │", text), text
    assert "total: 50 items in, 50 results out, 8 failed" in text
    assert f"42 results written to {out}" in text
    assert "papy: 8 failed result(s); the first 5:" in text
    assert "Traceback" not in text
    assert "[info" not in text and "item failed" not in text  # logs: files, pipes


@pytest.mark.timeout(90)
def test_ctrl_c_stops_the_pipeline_and_leaves_no_process(tmp_path):
    process = subprocess.Popen(
        [
            *papy_command(),
            "run",
            str(EXAMPLES / "fasta_stats.py"),
            "--progress-interval",
            "0.2",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a shell job
    )
    try:
        for line in process.stdout:
            if re.search(r"\] progress .*items_out=[1-9]", line):
                break
        workers = psutil.Process(process.pid).children(recursive=True)
        assert workers, "the process NuMap should have worker processes"
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends to a job
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, stderr
    assert "papy: stopping; the items in flight finish first" in stderr
    assert "papy: interrupted" in stderr
    assert "Traceback" not in stderr
    assert "] pipeline summary" in stdout
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    rows = (tmp_path / "fasta_stats.tsv").read_text().count("\n") - 1
    written = re.search(r"message='(\d+) rows of statistics", stdout)
    assert written and int(written.group(1)) == rows
