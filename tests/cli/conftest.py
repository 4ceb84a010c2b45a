"""Running the installed `papy` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass

import pytest
from cli_helpers import papy_command


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
