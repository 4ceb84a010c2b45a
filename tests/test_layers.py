"""The layering the README promises: numap imports nothing of papy, and
papy.graph and papy.util never import papy.core."""

import subprocess
import sys

import pytest


def _papy_modules_loaded_by(module: str) -> set[str]:
    """The papy modules a fresh interpreter has loaded after importing module."""
    source = (
        f"import sys, {module}\n"
        "print(' '.join(m for m in sys.modules if m.split('.')[0] == 'papy'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", source], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


@pytest.mark.timeout(90)
def test_numap_imports_nothing_of_papy():
    assert _papy_modules_loaded_by("numap") == set()


@pytest.mark.timeout(90)
@pytest.mark.parametrize(
    "module", ["papy.graph", "papy.util", "papy.util.func", "papy.util.config"]
)
def test_graph_and_util_never_import_core(module):
    loaded = _papy_modules_loaded_by(module)
    assert not any(name.startswith("papy.core") for name in loaded), loaded
