"""The layering the README promises: numap imports nothing of papy, and
papy.graph and papy.util never import papy.core."""

import importlib
import pkgutil
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


def _all_modules(*packages: str) -> list[str]:
    """Every module of the given packages (the packages themselves included),
    so a module added later is checked too."""
    modules = []
    for name in packages:
        package = importlib.import_module(name)
        modules.append(name)
        modules += [
            info.name for info in pkgutil.walk_packages(package.__path__, f"{name}.")
        ]
    return modules


@pytest.mark.timeout(90)
@pytest.mark.parametrize("module", _all_modules("papy.graph", "papy.util"))
def test_graph_and_util_never_import_core(module):
    loaded = _papy_modules_loaded_by(module)
    assert not any(name.startswith("papy.core") for name in loaded), loaded
