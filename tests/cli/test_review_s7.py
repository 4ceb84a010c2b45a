"""Regression tests for `papy` defects found in the seventh review."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from cli_helpers import PIPELINES

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
