"""Paths and the `papy` command line for the CLI tests (imported by them
and by conftest.py; a unique module name, as tests/ folders are not packages)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PIPELINES = Path(__file__).resolve().parent / "pipelines"


def papy_command() -> list[str]:
    """The installed console script next to this interpreter, else on PATH,
    else the module (the same code, for a checkout without the script)."""
    beside = Path(sys.executable).with_name("papy")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("papy")
    if found:
        return [found]
    return [sys.executable, "-m", "papy.core.cli"]


def start_papy(args: list[str], cwd: Path) -> subprocess.Popen:
    """`papy run ...` off a terminal, logging progress every 0.2 s."""
    return subprocess.Popen(
        [*papy_command(), "run", *args, "--progress-interval", "0.2"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_progress(process: subprocess.Popen) -> None:
    """Read the log until some item has gone through."""
    for line in process.stdout:
        if re.search(r"\] progress .*items_out=[1-9]", line):
            return
    raise AssertionError("papy ended before any item went through")
