"""`papy run` ended by SIGTERM or SIGHUP, sent to papy alone or to its whole
process group (as `timeout`, service managers and a closed terminal do)."""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
import time

import psutil
import pytest
from cli_helpers import PIPELINES, papy_command

SLOW = str(PIPELINES / "slow_on_processes.py")


def start_slow_run(
    tmp_path, ignore_sighup: bool = False, seconds: float = 3
) -> subprocess.Popen:
    """papy on 20 items of ``seconds`` each, in a process group of its own,
    with both workers busy on their first item when this returns."""

    def before_exec() -> None:
        if ignore_sighup:  # as `nohup` starts a program
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

    process = subprocess.Popen(
        [*papy_command(), "run", SLOW, "--progress-interval", "0.1"],
        cwd=tmp_path,
        env={**os.environ, "SLOW_SECONDS": str(seconds)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=before_exec,
    )
    for line in process.stdout:
        if re.search(r"\] progress .*items_in=2 .*piper=slow", line):
            time.sleep(0.5)  # the workers have started their items
            return process
    raise AssertionError("papy ended before its workers got items")


def workers_of(process: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(process.pid).children(recursive=True)


def finish_run(process: subprocess.Popen, workers) -> tuple[str, str]:
    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
        process.wait()
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [worker.cmdline() for worker in alive]
    return stdout, stderr


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_items_the_signal_stops_on_the_workers_are_not_failures(
    tmp_path, signum, status
):
    # Items of 30 s: on a loaded machine the signal came more than 3 s
    # after the first items started, and one of them had finished.
    process = start_slow_run(tmp_path, seconds=30)
    workers = workers_of(process)
    assert len(workers) == 2
    os.killpg(process.pid, signum)  # papy and its workers
    stdout, stderr = finish_run(process, workers)
    name = signal.Signals(signum).name
    assert process.returncode == status, stderr
    assert f"papy: 2 result(s) in flight stopped: {name} also ended" in stderr
    assert "failed result(s)" not in stderr
    assert re.search(
        r"pipeline summary .*errors=0 interrupted=True .*stopped=2", stdout
    )
    assert "message='finish: 0 results'" in stdout
    assert f"papy: terminated ({name})" in stderr


@pytest.mark.timeout(120)
def test_sighup_to_papy_alone_stops_the_run_like_sigterm(tmp_path):
    process = start_slow_run(tmp_path)
    workers = workers_of(process)
    process.send_signal(signal.SIGHUP)
    stdout, stderr = finish_run(process, workers)
    assert process.returncode == 129, stderr
    assert "papy: stopping (SIGHUP); the items in flight finish first" in stderr
    assert "message='finish: 2 results'" in stdout  # the two in flight
    assert "Traceback" not in stderr


@pytest.mark.timeout(120)
def test_an_ignored_sighup_stays_ignored(tmp_path):
    process = start_slow_run(tmp_path, ignore_sighup=True)
    workers = workers_of(process)
    process.send_signal(signal.SIGHUP)
    time.sleep(1)
    assert process.poll() is None, "nohup's SIGHUP must not stop papy"
    process.send_signal(signal.SIGTERM)
    _, stderr = finish_run(process, workers)
    assert process.returncode == 143, stderr


@pytest.mark.timeout(120)
def test_a_closed_terminal_stops_the_run(tmp_path):
    # papy runs on a pseudo-terminal (its live table); closing the master
    # side is what closing a terminal window does: the kernel hangs the
    # terminal up and sends SIGHUP. stderr goes to a file, to be read.
    errors = tmp_path / "stderr.txt"
    pid, master = pty.fork()
    if pid == 0:  # the child: exec papy at once
        try:
            os.chdir(tmp_path)
            handle = os.open(errors, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(handle, 2)
            os.environ["SLOW_SECONDS"] = "1"
            command = papy_command()
            os.execv(command[0], [*command, "run", SLOW])
        finally:
            os._exit(127)
    try:
        shown = b""
        while b"running" not in shown:  # the live table is up
            shown += os.read(master, 65536)
        time.sleep(1.5)
        workers = psutil.Process(pid).children(recursive=True)
    finally:
        os.close(master)
    _, wait_status = os.waitpid(pid, 0)
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
    assert os.waitstatus_to_exitcode(wait_status) == 129, errors.read_text()
    text = errors.read_text()
    assert "papy: terminated (SIGHUP)" in text
    assert "Traceback" not in text
