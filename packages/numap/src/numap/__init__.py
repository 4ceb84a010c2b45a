"""NuMap: a lazy, buffered, multi-task parallel map over threads and processes.

Public API: :class:`NuMap`, the :func:`imports` decorator, and the errors
that stand in place of results (all subclasses of :class:`NuMapError`).
"""

from numap._errors import (
    HostLostError,
    HostUnreachableError,
    NuMapError,
    RemoteError,
    SerializationError,
    WorkerLostError,
)
from numap._imports import imports
from numap._numap import NuMap

__all__ = [
    "HostLostError",
    "HostUnreachableError",
    "NuMap",
    "NuMapError",
    "RemoteError",
    "SerializationError",
    "WorkerLostError",
    "imports",
]
