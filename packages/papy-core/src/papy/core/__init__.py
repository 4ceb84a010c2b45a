"""PaPy core: Worker, Piper, Dagger, Plumber.

Functions are composed into Workers, placed in Pipers, connected by pipes
into a Dagger (a directed acyclic graph) and run by a Plumber.
"""

from papy.core._dagger import Dagger
from papy.core._errors import (
    DaggerError,
    PipelineFileError,
    PiperError,
    PlumberError,
    WorkerError,
)
from papy.core._piper import Piper
from papy.core._plumber import Plumber
from papy.core._save import load_pipeline
from papy.core._worker import Worker

__all__ = [
    "Dagger",
    "DaggerError",
    "PipelineFileError",
    "Piper",
    "PiperError",
    "Plumber",
    "PlumberError",
    "Worker",
    "WorkerError",
    "load_pipeline",
]
