"""PaPy utilities: worker functions, script workers, logging, code templates.

Modules:
  func      Worker functions (passers, zippers, joiners, serializers,
            dump_item/load_item over files, FIFOs and sockets) and stream
            loaders for pipeline inputs
  script    run Python and bash scripts as Worker functions
  config    start_logger (structlog over logging handlers), get_defaults
  runtime   get_runtime: the process-wide PAPY_RUNTIME dictionary
  codefile  templates used by Plumber.save to write pipelines as Python
"""

from papy.util import codefile, config, func, runtime, script

__all__ = ["codefile", "config", "func", "runtime", "script"]
