"""Fixtures for papy.util tests: logging state restored, temp dir watched."""

import logging
import os
import tempfile

import pytest
import structlog


@pytest.fixture
def clean_logging():
    """Give the test the root logger as it found it, and restore it after."""
    root = logging.getLogger()
    handlers = list(root.handlers)
    level = root.level
    yield root
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(level)
    structlog.reset_defaults()


def _papy_temp_names() -> set[str]:
    return {
        name for name in os.listdir(tempfile.gettempdir()) if "papy" in name.lower()
    }


@pytest.fixture
def no_temp_leftovers():
    """Fail the test if it leaves papy files or FIFOs in the temp directory."""
    before = _papy_temp_names()
    yield
    left = _papy_temp_names() - before
    assert not left, f"left behind in {tempfile.gettempdir()}: {sorted(left)}"
