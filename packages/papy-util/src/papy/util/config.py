"""Logging for PaPy pipelines and the operating system's defaults.

`start_logger` configures *structlog* on top of the standard `logging`
machinery, so that both kinds of log calls end in the same handlers::

    structlog.get_logger("papy.x").info("event", key=1) ─┐
                                                          ├─> root logger
    logging.getLogger("numap").info("message %s", 1) ─────┘

    root logger ─┬─ file handler   (JSON lines)
                 └─ stream handler (key=value text)

structlog events are pre-processed by structlog's chain and handed to
`logging` unrendered (`ProcessorFormatter.wrap_for_formatter`); records from
plain `logging` get the same fields through the formatter's "foreign" chain.
Each handler's `ProcessorFormatter` then renders either kind the same way.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import select
import shutil
import sys
import tempfile
import time
from typing import Any, Protocol

import papy.util._item_io as _item_io
import structlog
from papy.util._names import type_name

__all__ = ["TextSink", "get_defaults", "start_logger"]

# Handlers that start_logger installed carry this attribute, so a second call
# replaces exactly them and leaves handlers installed by anyone else alone.
_PAPY_HANDLER_MARK = "_papy_handler"

LOG_FILENAME = "PaPy_log"


def get_defaults() -> dict[str, Any]:
    """Return a new dictionary of (possibly OS-dependent) defaults.

    Keys:
      PLATFORM      ``sys.platform``
      CPU_COUNT     number of CPUs (``os.cpu_count()``, at least 1)
      TMP_DIR       default temporary directory (``tempfile.gettempdir()``),
                    where ``func.dump_item`` creates files and FIFOs
      PIPE_BUF      bytes written atomically to a pipe (``select.PIPE_BUF``,
                    512 where the platform does not say)
      HAS_FIFO      whether named pipes exist (``os.mkfifo``); not on Windows
      HAS_FORK      whether processes can be forked
      START_METHOD  the default ``multiprocessing`` start method
      SOCKET_HOST   address that sockets bind to: always ``"127.0.0.1"``
      PYTHON        the running interpreter (``sys.executable``), used by
                    ``script`` for Python scripts
      BASH          path of ``bash``, or ``None`` if it is not installed
      LOG_FILENAME  base name of the log file (``"PaPy_log"``)
    """
    start_methods = multiprocessing.get_all_start_methods()
    return {
        "PLATFORM": sys.platform,
        "CPU_COUNT": os.cpu_count() or 1,
        "TMP_DIR": tempfile.gettempdir(),
        "PIPE_BUF": getattr(select, "PIPE_BUF", 512),
        "HAS_FIFO": hasattr(os, "mkfifo"),
        "HAS_FORK": "fork" in start_methods,
        "START_METHOD": multiprocessing.get_start_method(allow_none=True)
        or start_methods[0],
        "SOCKET_HOST": _item_io.HOST,
        "PYTHON": sys.executable,
        "BASH": shutil.which("bash"),
        "LOG_FILENAME": LOG_FILENAME,
    }


def _shared_processors() -> list[Any]:
    """Fields every event gets, whether it came from structlog or logging."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]


# Attributes that logging.Formatter.format() sets on the record it formats.
# A handler with another formatter that saw the record before ours leaves
# them behind, and ExtraAdder would take them for the caller's ``extra``
# (which logging never lets name them): the message would appear twice.
_FORMATTER_ATTRIBUTES = ("message", "asctime")


def _drop_formatter_attributes(
    logger: Any, name: str, event_dict: dict[str, Any]
) -> dict[str, Any]:
    """Remove what another formatter left on a plain logging record."""
    for key in _FORMATTER_ATTRIBUTES:
        event_dict.pop(key, None)
    return event_dict


def _foreign_pre_chain() -> list[Any]:
    # ``logger.info("x %s", 1)`` from plain logging: the message is already
    # interpolated by ProcessorFormatter (use_get_message=True).
    return [
        *_shared_processors(),
        structlog.stdlib.ExtraAdder(),
        _drop_formatter_attributes,
    ]


def _file_formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_foreign_pre_chain(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=repr),
        ],
    )


def _stream_formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_foreign_pre_chain(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Plain tracebacks: rich's boxes with local variables are too
            # heavy for a pipeline's log stream.
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            ),
        ],
    )


def _check_level(name: str, level: Any) -> int:
    if isinstance(level, bool):
        raise TypeError(f"{name} must be a logging level (int or name), got a bool")
    if isinstance(level, str):
        number = logging.getLevelName(level.upper())
        if not isinstance(number, int):
            raise ValueError(
                f"{name}={level!r} is not a logging level name; use e.g. "
                "'DEBUG', 'INFO', 'WARNING', 'ERROR' or an int"
            )
        return number
    if not isinstance(level, int) or level < 0:
        raise TypeError(
            f"{name} must be a non-negative int or a level name, got {level!r}"
        )
    return level


def _check_positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _default_filename(log_rotate: bool) -> str:
    # A rotating log keeps one name and rotates it; a non-rotating log gets
    # a fresh, time-stamped file per call so that runs do not mix.
    if log_rotate:
        return LOG_FILENAME
    return f"{LOG_FILENAME}_{time.strftime('%Y-%m-%d_%H-%M-%S')}"


def _file_handler(
    filename: str, rotate: bool, size: int, number: int
) -> logging.Handler:
    if rotate:
        return logging.handlers.RotatingFileHandler(
            filename, maxBytes=size, backupCount=number, encoding="utf-8"
        )
    return logging.FileHandler(filename, encoding="utf-8")


class TextSink(Protocol):
    """The type of the streams ``start_logger`` accepts (``log_stream``, or
    a stream given as ``log_to_stream``): anything with a ``write(str)``
    method, whatever it returns, such as a text file, ``sys.stderr``,
    ``io.StringIO`` or a terminal UI's stream. A ``flush()`` method is called
    when the stream has one. Use it to annotate code that passes streams on
    to ``start_logger``; it is a static type only (``isinstance`` does not
    accept it).
    """

    def write(self, text: str, /) -> object: ...


def _stream_target(log_to_stream: Any, log_stream: TextSink | None) -> Any:
    """Where stream messages go, or None for no stream handler."""
    if log_to_stream is True:
        return log_stream if log_stream is not None else sys.stderr
    if log_to_stream is False or log_to_stream is None:
        return None
    if hasattr(log_to_stream, "write"):
        return log_to_stream
    raise TypeError(
        "log_to_stream must be a bool or a stream with a write() method, "
        f"got {type_name(log_to_stream)}"
    )


def _remove_papy_handlers(root: logging.Logger) -> None:
    for handler in list(root.handlers):
        if getattr(handler, _PAPY_HANDLER_MARK, False):
            root.removeHandler(handler)
            handler.close()


# Renders `_Event`s for formatters other than ours. Made once: building a
# ConsoleRenderer costs about as much as rendering an event with it, and
# str() runs per event and per such handler.
_PLAIN_RENDERER = structlog.dev.ConsoleRenderer(colors=False)


class _Event(dict[str, Any]):
    """A structlog event on its way to `logging`, readable by any formatter.

    Our handlers' `ProcessorFormatter` copies it as a plain dict and renders
    it. A handler with another formatter (one the application installed, or
    `logging.lastResort`) asks for ``str(record.msg)``; without this class it
    would print the raw dict. The traceback is left to that formatter: the
    record of ``log.exception(...)`` carries it as ``exc_info``, and
    rendering it here too would print it twice.
    """

    def __str__(self) -> str:
        event = dict(self)
        event.pop("exc_info", None)
        return str(_PLAIN_RENDERER(None, "", event))


def _wrap_for_formatter(
    logger: logging.Logger, name: str, event_dict: Any
) -> tuple[tuple[Any], dict[str, dict[str, Any]]]:
    """`ProcessorFormatter.wrap_for_formatter`, handing over an `_Event`."""
    return structlog.stdlib.ProcessorFormatter.wrap_for_formatter(
        logger, name, _Event(event_dict)
    )


def _configure_structlog() -> None:
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            _wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a later start_logger (or a test) may reconfigure.
        cache_logger_on_first_use=False,
    )


def start_logger(
    log_to_file: bool = False,
    log_to_stream: bool | TextSink = False,
    log_to_file_level: int | str = 20,
    log_to_stream_level: int | str = 20,
    log_filename: str | os.PathLike[str] | None = None,
    log_stream: TextSink | None = None,
    log_rotate: bool = True,
    log_size: int = 524288,
    log_number: int = 3,
    *,
    log_to_screen_level: int | str | None = None,
) -> structlog.stdlib.BoundLogger:
    """Configure logging for a PaPy pipeline and return the ``"papy"`` logger.

    Handlers go on the root `logging` logger, so messages from `logging`
    loggers (``logging.getLogger(...)``) and from structlog loggers
    (``structlog.get_logger(...)``) reach the same file and stream. Calling
    it again replaces the handlers of the previous call (never duplicates
    them); handlers installed by other code are kept.

    Arguments (defaults are those of the signature):
      log_to_file         write messages to a file (JSON lines: one object per
                          event with ``event``, ``level``, ``logger``,
                          ``timestamp`` and the event's own keys).
      log_to_stream       ``True``: write to ``log_stream`` or, if that is
                          None, to ``sys.stderr`` (looked up at call time);
                          a stream (a `TextSink`): write to it. Rendered as
                          ``timestamp [level] event key=value``.
      log_to_file_level   lowest level written to the file (int or name,
                          20 = INFO).
      log_to_stream_level lowest level written to the stream (20 = INFO).
      log_filename        file to write; default ``"PaPy_log"`` in the current
                          directory, or ``"PaPy_log_<date>_<time>"`` when
                          ``log_rotate`` is False. Ignored without log_to_file.
      log_stream          stream (a `TextSink`) used when ``log_to_stream``
                          is True.
      log_rotate          rotate the file when it reaches ``log_size`` bytes,
                          keeping ``log_number`` old files (``name.1`` ...).
      log_size            bytes per log file before rotating (positive).
      log_number          number of rotated files kept (positive).
      log_to_screen_level (keyword only) the name the contract's argument
                          list gives log_to_stream_level; give one of the
                          two. Both are a TypeError, except when
                          log_to_stream_level is 20: its default cannot be
                          told from not given, and this name wins.

    With neither file nor stream (the defaults) nothing is logged: a
    ``logging.NullHandler`` on the root logger takes the place of logging's
    last-resort stderr output, and the root logger's level is unchanged.
    Otherwise the root logger's level is set to the lower of the active
    handlers' levels. Handlers installed by other code are kept and get
    the events the root logger's level lets through, structlog ones as
    readable ``timestamp [level] event key=value`` messages (never raw
    dicts).

    Returns ``structlog.get_logger("papy")``: a structlog logger bound to the
    standard ``"papy"`` logger; ``.bind(...)`` adds context to its events.

    Raises TypeError or ValueError naming the argument for a wrong level,
    stream, size or number, and OSError when the log file cannot be opened
    (the previous configuration then stays in place).

    Worker processes forked afterwards inherit the handlers and structlog's
    configuration; spawned ones do not (call start_logger in them). Several
    processes rotating one file is not safe: use a stream or a non-rotating
    file for multi-process pipelines.
    """
    file_level = _check_level("log_to_file_level", log_to_file_level)
    if log_to_screen_level is not None:
        if log_to_stream_level != 20:
            raise TypeError(
                "start_logger(log_to_stream_level=..., log_to_screen_level=...): "
                "they are the same argument; give one of them"
            )
        log_to_stream_level = log_to_screen_level
    stream_level = _check_level("log_to_stream_level", log_to_stream_level)
    stream = _stream_target(log_to_stream, log_stream)
    if log_to_file:
        _check_positive_int("log_size", log_size)
        _check_positive_int("log_number", log_number)
        if log_filename is None:
            log_filename = _default_filename(bool(log_rotate))
        elif not isinstance(log_filename, str | os.PathLike):
            raise TypeError(
                f"log_filename must be a path (str), got {type_name(log_filename)}"
            )

    # New handlers first: if the file cannot be opened, the previous
    # configuration stays in place.
    handlers: list[logging.Handler] = []
    if log_to_file:
        assert log_filename is not None
        file_handler = _file_handler(
            os.fspath(log_filename), bool(log_rotate), log_size, log_number
        )
        file_handler.setLevel(file_level)
        file_handler.setFormatter(_file_formatter())
        handlers.append(file_handler)
    if stream is not None:
        stream_handler = logging.StreamHandler(stream)
        stream_handler.setLevel(stream_level)
        stream_handler.setFormatter(_stream_formatter())
        handlers.append(stream_handler)
    if not handlers:
        # Neither file nor stream: nothing is logged, as the contract's
        # defaults say. Without a handler, logging's lastResort would print
        # warnings and errors to stderr.
        handlers.append(logging.NullHandler())
    root = logging.getLogger()
    _remove_papy_handlers(root)
    for handler in handlers:
        setattr(handler, _PAPY_HANDLER_MARK, True)
        root.addHandler(handler)
    if log_to_file or stream is not None:
        root.setLevel(min(handler.level for handler in handlers))

    _configure_structlog()
    logger: structlog.stdlib.BoundLogger = structlog.get_logger("papy")
    return logger
