"""All four distributions carry one version and pin each other to it."""

import tomllib
from pathlib import Path

import pytest

PACKAGES = Path(__file__).resolve().parent.parent / "packages"
DISTRIBUTIONS = ["numap", "papy-graph", "papy-util", "papy-core"]


def _project(name: str) -> dict:
    with open(PACKAGES / name / "pyproject.toml", "rb") as handle:
        return tomllib.load(handle)["project"]


@pytest.mark.timeout(10)
def test_all_distributions_share_one_version():
    versions = {name: _project(name)["version"] for name in DISTRIBUTIONS}
    assert len(set(versions.values())) == 1, versions


@pytest.mark.timeout(10)
def test_papy_core_pins_its_siblings_to_the_same_version():
    core = _project("papy-core")
    # "papy-numap[remote]==2.0.0a1": the name without its extras.
    pinned = {
        dep.split("==")[0].split("[")[0]: dep.split("==")[1]
        for dep in core["dependencies"]
        if "==" in dep
    }
    siblings = {_project(name)["name"] for name in DISTRIBUTIONS} - {"papy-core"}
    assert set(pinned) == siblings
    assert set(pinned.values()) == {core["version"]}
