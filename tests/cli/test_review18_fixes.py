"""Regressions found by review 18 of the `papy` command."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
from cli_helpers import PIPELINES, wait_for_progress

# papy run with the drain deadline after SIGTERM cut to 2 s (30 s in use).
PAPY_WITH_SHORT_DRAIN = (
    "import sys; import papy.core._cli_run as run; run.TERM_DRAIN_SECONDS = 2; "
    "from papy.core.cli import main; sys.exit(main())"
)


@pytest.mark.timeout(60)
def test_one_sigterm_ends_a_run_whose_items_never_finish(tmp_path):
    # Before: the first SIGTERM waited for the stuck item for ever; `timeout`
    # and service managers send one and may wait for good.
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PAPY_WITH_SHORT_DRAIN,
            "run",
            str(PIPELINES / "stuck_item.py"),
            "--progress-interval",
            "0.2",
        ],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        wait_for_progress(process)  # item 0 went through; item 1 is stuck
        sent = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
        took = time.monotonic() - sent
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 143, stderr
    assert "for up to 2 s" in stderr
    assert "papy: stopped without waiting for the items in flight" in stderr
    assert took < 25
