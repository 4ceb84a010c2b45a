"""PaPy utilities: worker functions, script workers, logging, code templates.

Modules:
  func      Worker functions (passers, zippers, joiners, serializers,
            dump_item/load_item over files, FIFOs and sockets) and stream
            loaders for pipeline inputs
  script    run Python and bash scripts as Worker functions
  config    start_logger (structlog over logging handlers), get_defaults
  runtime   get_runtime: the process-wide PAPY_RUNTIME dictionary
  codefile  templates used by Plumber.save to write pipelines as Python

Submodules are imported on first use (``papy.util.config`` loads structlog,
which worker processes that only need ``func`` should not pay for).
"""

import importlib
from types import ModuleType

__all__ = ["codefile", "config", "func", "runtime", "script"]


def __getattr__(name: str) -> ModuleType:
    if name in __all__:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
