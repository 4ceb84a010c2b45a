"""The scaffold of the save tests that save in one process and load in another.

A test's script builds ``pipeline`` and sets ``INPUTS`` (one list per input
Piper), then ends with SAVE_OR_LOAD. Run as ``script.py save FILE`` it
saves the pipeline to FILE and prints what the pipeline gives; as
``script.py load FILE`` it loads FILE and prints what the loaded pipeline
gives. :func:`run_script` runs such a script and returns that line;
:func:`save_then_load` writes a script, saves and loads.
"""

import os
import subprocess
import sys
from pathlib import Path

SAVE_OR_LOAD = """

def run(plumber):
    plumber.connect(INPUTS)
    Dagger.start(plumber)
    results = [list(piper) for piper in plumber.get_outputs()]
    Dagger.stop(plumber)
    return results


if sys.argv[1] == "save":
    pipeline.save(sys.argv[2])
    print(run(pipeline))
else:
    print(run(load_pipeline(sys.argv[2])))
"""


def run_script(script: Path, *args: object) -> str:
    """Run ``script`` with ``args`` in a fresh interpreter that finds what
    this one finds; return its last line of output."""
    done = subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def save_then_load(folder: Path, script: str, **modules: str) -> tuple[str, str, str]:
    """Write ``script`` (and each of ``modules`` as ``<name>.py``) into
    ``folder``; run it to save its pipeline, then to load the saved file.
    Returns the line the saving run printed, the saved file's text and the
    line the loading run printed."""
    for name, source in modules.items():
        (folder / f"{name}.py").write_text(source)
    path = folder / "script.py"
    path.write_text(script)
    saved = folder / "saved.py"
    before = run_script(path, "save", saved)
    return before, saved.read_text(), run_script(path, "load", saved)
