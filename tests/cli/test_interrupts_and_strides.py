"""papy run: Ctrl-C while importing or while an input waits, --workers and
produce/consume strides, a failing debug=True Piper."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap

import pytest
from cli_helpers import PIPELINES, start_papy, wait_for_progress

# --- 4. a Ctrl-C while `papy run` still imports its code --------------------


@pytest.mark.timeout(30)
def test_ctrl_c_while_importing_the_run_code_exits_130(tmp_path):
    # The Ctrl-C is raised by an import hook exactly when `papy run` imports
    # its run module: the moment a real Ctrl-C hits once in a dozen starts.
    program = textwrap.dedent(
        f"""
        import sys

        class CtrlCOnImport:
            def find_spec(self, name, path=None, target=None):
                if name == "papy.core._cli_run":
                    raise KeyboardInterrupt
                return None

        sys.meta_path.insert(0, CtrlCOnImport())
        from papy.core.cli import main
        sys.exit(main(["run", {str(PIPELINES / "line_counts.py")!r}]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=25,
        check=False,
    )
    assert done.returncode == 130, done.stderr
    assert "papy: interrupted" in done.stderr
    assert "Error" not in done.stderr


# --- 2. Ctrl-C while the input waits for data --------------------------------


@pytest.mark.timeout(40)
def test_one_ctrl_c_stops_a_run_that_follows_a_file(tmp_path):
    (tmp_path / "growing.txt").write_text("line1\nline2\n")
    process = start_papy([str(PIPELINES / "follow_lines.py"), "growing.txt"], tmp_path)
    try:
        wait_for_progress(process)
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, stderr
    assert re.search(r"\] pipeline summary .*items_out=2", stdout), stdout[-2000:]


@pytest.mark.timeout(40)
def test_second_ctrl_c_aborts_a_stop_waiting_for_a_blocked_input(tmp_path):
    process = start_papy([str(PIPELINES / "input_blocks.py")], tmp_path)
    try:
        wait_for_progress(process)
        process.send_signal(signal.SIGINT)
        for line in process.stderr:
            if line.startswith("papy: stopping"):
                break
        assert "Ctrl-C again to abort" in line
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == 130, stderr
    assert "papy: interrupted" in stderr


# --- 3. --workers keeps the strides that must stay equal --------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("workers", [[], ["--workers", "4"], ["--workers", "1"]])
def test_workers_override_keeps_produce_and_consume_strides_equal(papy, workers):
    result = papy("run", str(PIPELINES / "pairs.py"), *workers)
    assert result.status == 0, result.output
    assert "mixed pair" not in result.output


# --- 7. a debug=True Piper's failing item under papy run --------------------


@pytest.mark.timeout(60)
@pytest.mark.parametrize("numap", ["", "1"], ids=["linear", "numap"])
def test_debug_piper_failing_item_stops_the_run_as_documented(papy, numap):
    result = papy(
        "run", str(PIPELINES / "debug_fails.py"), env={"DEBUG_FAILS_NUMAP": numap}
    )
    assert result.status == 3, result.output
    assert "internal error" not in result.output
    assert "debug=True Piper raised the error of an item" in result.stderr
    assert "ValueError('bad item 3')" in result.stderr
    # Items 0-2 and the failed item 3, counted as an error out.
    assert re.search(r"\] pipeline summary .*errors=1 .*items_out=4", result.stdout)
    assert "finish called" in result.stdout
