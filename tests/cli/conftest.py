"""Running the installed `papy` command in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@dataclass
class Result:
    status: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture
def papy(tmp_path):
    """papy(*args, env=...) runs `papy` in tmp_path and returns a Result."""

    def run(*args: str, env: dict[str, str] | None = None, timeout: float = 60):
        environment = dict(os.environ, COLUMNS="120", **(env or {}))
        completed = subprocess.run(
            [*papy_command(), *args],
            cwd=tmp_path,
            env=environment,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(completed.returncode, completed.stdout, completed.stderr)

    return run
