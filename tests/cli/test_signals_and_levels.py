"""`papy run` when it is killed (SIGTERM, SIGKILL) and when the log level
filters its info lines: what it started must not outlive it, and the
summary must still reach its caller."""

from __future__ import annotations

import ctypes
import os
import platform
import re
import signal
import sys
import time

import psutil
import pytest
from cli_helpers import EXAMPLES, PIPELINES, start_papy, wait_for_progress

sys.path.insert(0, str(EXAMPLES))

import fasta_functions as ff  # noqa: E402


@pytest.mark.timeout(90)
def test_sigterm_stops_the_pipeline_like_ctrl_c(tmp_path):
    ff.write_demo_fasta(tmp_path / "big.fasta", sequences=20_000, seed=3)
    process = start_papy([str(EXAMPLES / "fasta_stats.py"), "big.fasta"], tmp_path)
    try:
        wait_for_progress(process)
        workers = psutil.Process(process.pid).children(recursive=True)
        assert workers, "the process NuMap should have worker processes"
        process.send_signal(signal.SIGTERM)  # `kill PID`: papy alone
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 143, stderr
    assert "papy: terminated" in stderr
    assert "Traceback" not in stderr
    summary = re.search(r"\] pipeline summary .*interrupted=True", stdout)
    assert summary, stdout[-2000:]
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    # finish() ran: the TSV holds the rows it reports
    rows = (tmp_path / "fasta_stats.tsv").read_text().count("\n") - 1
    written = re.search(r"message='(\d+) rows of statistics", stdout)
    assert written and int(written.group(1)) == rows
    assert 0 < rows < 20_000


def rpyc_servers(root):
    return [
        child
        for child in psutil.Process(root).children(recursive=True)
        if "rpyc_classic" in " ".join(child.cmdline())
    ]


@pytest.mark.timeout(120)
def test_killed_remote_example_leaves_no_server_behind(tmp_path):
    ff.write_demo_fasta(tmp_path / "big.fasta", sequences=20_000, seed=4)
    process = start_papy(
        [str(EXAMPLES / "remote_fasta_stats.py"), "big.fasta"], tmp_path
    )
    try:
        wait_for_progress(process)
        servers = rpyc_servers(process.pid)
        assert len(servers) == 1
        left = servers + servers[0].children(recursive=True)
        assert len(left) >= 3, "a server and its two remote workers"
        process.kill()  # SIGKILL: no handler of papy's runs
        process.wait(timeout=10)
        _, alive = psutil.wait_procs(left, timeout=20)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        process.kill()
        process.wait()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("level", ["WARNING", "ERROR"])
def test_summary_and_finish_lines_pass_a_higher_log_level(papy, tmp_path, level):
    ff.write_demo_fasta(tmp_path / "small.fasta", sequences=40, seed=8)
    result = papy(
        "run", str(EXAMPLES / "fasta_stats.py"), "small.fasta", "--log-level", level
    )
    assert result.status == 0, result.output
    assert "progress" not in result.stdout  # info lines stay filtered
    assert re.search(
        rf"\[{level.lower()}\s*\] pipeline summary .*items_in=40", result.stdout
    )
    assert re.search(r"\] output .*rows of statistics", result.stdout)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "option, value, complaint",
    [
        ("--progress-interval", "-1", "must be a number of seconds of at least 0.01"),
        ("--progress-interval", "nan", "must be a number of seconds of at least 0.01"),
        ("--progress-interval", "soon", "expected a number of seconds"),
        ("--show-errors", "-3", "must be at least 0"),
    ],
)
def test_bad_option_values_are_usage_errors(papy, option, value, complaint):
    result = papy("run", str(EXAMPLES / "fasta_stats.py"), option, value)
    assert result.status == 2
    assert f"argument {option}: {complaint}" in result.stderr


@pytest.mark.timeout(60)
def test_finish_that_raises_gives_status_4(papy):
    result = papy("run", str(PIPELINES / "finish_raises.py"))
    assert result.status == 4, result.output
    assert "finish() in" in result.stderr
    assert "raised OSError: the disk is full" in result.stderr
    assert "items_in=5" in result.stdout  # the run itself went through


@pytest.mark.timeout(30)
def test_input_paths_are_optional_in_the_usage_message(papy):
    result = papy("run")
    assert result.status == 2
    assert "the following arguments are required: PIPELINE.py\n" in result.stderr


@pytest.mark.timeout(60)
def test_a_second_ctrl_c_stops_without_waiting_for_items_in_flight(tmp_path):
    process = start_papy([str(PIPELINES / "stuck_item.py")], tmp_path)
    try:
        wait_for_progress(process)  # item 0 went through; item 1 is stuck
        process.send_signal(signal.SIGINT)
        said = ""
        for line in process.stderr:
            if "papy: stopping; the items in flight finish first" in line:
                said = line
                break
        assert "Ctrl-C again to abort" in said
        process.send_signal(signal.SIGINT)  # do not wait for item 1
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, stderr
    assert "papy: interrupted" in stderr


# tgkill(2) sends a signal to one chosen thread; Python has no wrapper for
# another process's thread, so it is called by number (x86_64 Linux only).
_SYS_TGKILL_X86_64 = 234


def tgkill(pid: int, tid: int, signum: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(_SYS_TGKILL_X86_64, pid, tid, signum) != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"tgkill({pid}, {tid}, {signum}): {os.strerror(error)}")


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="calls the tgkill system call by its x86_64 Linux number",
)
@pytest.mark.timeout(40)
def test_a_second_ctrl_c_received_by_another_thread_stops_papy_run(tmp_path):
    # Linux may give a Ctrl-C to any thread of the process; papy's main
    # thread, waiting in stop() for the stuck item, must still act on it.
    process = start_papy([str(PIPELINES / "stuck_item.py")], tmp_path)
    try:
        wait_for_progress(process)
        process.send_signal(signal.SIGINT)
        for line in process.stderr:
            if "Ctrl-C again to abort" in line:
                break
        # Not needed for the outcome: it lets the main thread reach the wait
        # in stop(), where a signal to another thread used to be ignored.
        time.sleep(0.5)
        others = [
            int(tid)
            for tid in os.listdir(f"/proc/{process.pid}/task")
            if int(tid) != process.pid
        ]
        assert others, "papy run should have its run thread"
        tgkill(process.pid, min(others), signal.SIGINT)
        _, stderr = process.communicate(timeout=20)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, stderr
    assert "papy: interrupted" in stderr
