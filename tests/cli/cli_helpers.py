"""Paths and the `papy` command line for the CLI tests (imported by them
and by conftest.py; a unique module name, as tests/ folders are not packages)."""

from __future__ import annotations

import shutil
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
