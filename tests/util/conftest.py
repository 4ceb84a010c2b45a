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


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A temp directory of the test's own, and the check that it ends empty.

    tempfile.gettempdir() (this process) and $TMPDIR (child processes) point
    to it, so dump_item's default location is watched without seeing files
    that tests running in parallel create in the shared /tmp.
    """
    directory = tmp_path / "tmp"
    directory.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(directory))
    monkeypatch.setenv("TMPDIR", str(directory))
    yield directory
    left = sorted(os.listdir(directory))
    assert not left, f"left behind in the temp directory: {left}"
