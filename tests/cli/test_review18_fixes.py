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


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [["--workers", "1"], ["--workers", "3"]])
def test_workers_override_keeps_the_groups_of_consume_over_raw_items(papy, workers):
    # Before: --workers changed the stride of the consume=2 Piper's NuMap,
    # and with it which items were grouped (a+b c+d ... with 1 worker,
    # a+c b+d ... as written).
    def groups(result):
        return [line for line in result.stdout.splitlines() if line.startswith("group")]

    as_written = papy("run", str(PIPELINES / "groups_raw_items.py"))
    overridden = papy("run", str(PIPELINES / "groups_raw_items.py"), *workers)
    assert as_written.status == overridden.status == 0, overridden.output
    assert groups(as_written) == ["group a+c", "group b+d", "group e+g", "group f+h"]
    assert groups(overridden) == groups(as_written)
