"""`papy run` after the review of session 17: a fan-out to outputs of
different speed in bounded memory, and a second Ctrl-C that still shows
the summary and the lines of finish()."""

from __future__ import annotations

import re
import signal

import psutil
import pytest
from cli_helpers import PIPELINES, start_papy, wait_for_progress

# --- a fan-out to a fast and a slow output ----------------------------------


@pytest.mark.timeout(90)
def test_a_fan_out_to_a_fast_and_a_slow_output_stays_bounded(papy):
    # Before: the fast output read the whole input ahead of the slow one,
    # whose queue held it all (largest lag 1499 of 1500 items).
    result = papy(
        "run", str(PIPELINES / "fast_and_slow.py"), "--progress-interval", "1"
    )
    assert result.status == 0, result.output
    for name in ("source", "fast", "slow"):
        counts = rf"piper summary .*items_in=1500 items_out=1500 piper={name} "
        assert re.search(counts, result.stdout), name
    lag = int(re.search(r"largest lag (\d+)", result.stdout).group(1))
    # The fan-out's least queue bound (64) plus the NuMap's buffer (2).
    assert lag <= 64 + 2 + 1


# --- a second Ctrl-C ---------------------------------------------------------


@pytest.mark.timeout(60)
def test_second_ctrl_c_still_prints_the_summary_and_finish_lines(tmp_path):
    # Before: the second Ctrl-C escaped from stop(): no summary, and the
    # lines of finish() were not printed (finish() ran, quietly).
    process = start_papy([str(PIPELINES / "stuck_with_finish.py")], tmp_path)
    try:
        wait_for_progress(process)
        workers = psutil.Process(process.pid).children(recursive=True)
        process.send_signal(signal.SIGINT)
        for line in process.stderr:
            if line.startswith("papy: stopping"):
                break
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, stderr
    assert "stopped without waiting for the items in flight" in stderr
    assert "papy: interrupted; the summary covers the items read" in stderr
    assert re.search(r"\] pipeline summary .*interrupted=True", stdout), stdout
    assert "finish() ran after the interrupted run" in stdout
    _, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive
