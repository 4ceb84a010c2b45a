"""The README's main job: examples/numap_checksums.py runs and verifies itself."""

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "numap_checksums.py"


@pytest.mark.timeout(60)
def test_checksums_example_runs_and_writes_its_outputs(tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLE), "--out", str(tmp_path), "--megabytes", "2"],
        capture_output=True,
        text=True,
        timeout=50,
    )
    assert done.returncode == 0, done.stderr
    assert "verified: parallel checksums match a serial pass" in done.stdout
    listing = (tmp_path / "chunks.sha256").read_text().splitlines()
    assert len(listing) >= 2
    offsets = [int(line.split()[0]) for line in listing]
    lengths = [int(line.split()[1]) for line in listing]
    assert offsets == [sum(lengths[:i]) for i in range(len(lengths))]
    assert sum(lengths) == (tmp_path / "readings.csv").stat().st_size
    assert (tmp_path / "summary.txt").read_text().startswith("records ")
