"""NuMap: a lazy, buffered, multi-task parallel map."""

from numap._errors import (
    HostLostError,
    HostUnreachableError,
    NuMapError,
    RemoteError,
    SerializationError,
    WorkerLostError,
)

__all__ = [
    "HostLostError",
    "HostUnreachableError",
    "NuMapError",
    "RemoteError",
    "SerializationError",
    "WorkerLostError",
]
