"""Loggers of papy.core: structlog over the standard ``papy`` logger.

Loggers are lazy proxies: they render with the structlog configuration in
force when a message is logged, so ``papy.util.config.start_logger`` called
after a Piper or Plumber was made still applies to it.
"""

from __future__ import annotations

import logging
from typing import Any

import structlog


def get_logger(**context: Any) -> Any:
    """A structlog logger on the ``papy`` standard logger with ``context`` bound."""
    return structlog.wrap_logger(logging.getLogger("papy"), **context)
