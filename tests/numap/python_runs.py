"""Running a small Python program in a fresh interpreter, for tests of
process-wide state (signal handlers, environment variables, what is
imported)."""

import subprocess
import sys
import textwrap


def run_python(
    code: str, timeout: float = 60, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) with this interpreter; its output as text."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
