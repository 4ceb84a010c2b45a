"""A process-wide dictionary for run-time information (PAPY_RUNTIME)."""

from __future__ import annotations

from typing import Any

__all__ = ["PAPY_RUNTIME", "get_runtime"]

PAPY_RUNTIME: dict[str, Any] = {}
"""The one runtime dictionary of this process; papy-util puts nothing in it."""


def get_runtime() -> dict[str, Any]:
    """Return the PAPY_RUNTIME dictionary of this process.

    Every call returns the same mutable dict, so what one part of a program
    stores there the others see. It is not shared between processes: a
    forked worker process starts with a copy of the parent's dictionary as
    it was at the fork, a spawned one with an empty dictionary, and changes
    made in either are not seen by the other.
    """
    return PAPY_RUNTIME
