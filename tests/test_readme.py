"""The tour in the top README runs as written and prints what it says."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _tour_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    return "\n".join(blocks)


@pytest.mark.timeout(120)
def test_readme_tour_runs_and_prints_what_it_promises(tmp_path):
    script = tmp_path / "tour.py"
    script.write_text(_tour_source())
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=100,
    )
    assert done.returncode == 0, done.stderr
    tracked, cubed = done.stdout.splitlines()[-2:]
    assert tracked.startswith("{0: 2, 1: 5, 2: WorkerError(")
    assert tracked.endswith(", 3: 17}")
    assert cubed == str(10001**3)
