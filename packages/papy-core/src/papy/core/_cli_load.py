"""Loading a pipeline file for the ``papy`` command.

A pipeline file is Python source that defines a module-level ``pipeline``
holding a ``papy.core.Plumber`` (this is what ``Plumber.save`` writes). It may
also define two hooks that ``papy run`` calls:

- ``make_inputs(paths) -> sequence of iterables``: turns the INPUT paths given
  on the command line into one input stream per input Piper, in the order of
  ``pipeline.get_inputs()``. It may return streams for an empty ``paths``
  (e.g. generate demo data).
- ``finish() -> iterable of str``: called once after the run (also after a
  failed one); each string says where an output went, and is printed.

Loading runs the file's code, as importing a module does: load only files you
trust.
"""

from __future__ import annotations

import re
import sys
import traceback
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from papy.util.codefile import PIPELINE_NAME


class PipelineFileError(Exception):
    """The pipeline file cannot be used. ``str()`` is the message for the user;
    ``details`` holds a traceback worth showing with --debug, or ''."""

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.details = details


@dataclass
class LoadedPipeline:
    path: Path
    module: types.ModuleType
    pipeline: Any

    def hook(self, name: str) -> Any:
        """The module's callable ``name``, or None if it defines none."""
        value = getattr(self.module, name, None)
        return value if callable(value) else None


def module_name_for(path: Path) -> str:
    """A module name unlikely to clash with real packages."""
    return "papy_pipeline_" + re.sub(r"\W", "_", path.stem)


def _user_traceback(error: BaseException, path: Path) -> tuple[str, int | None]:
    """The formatted traceback, and the line in the pipeline file that was
    running when ``error`` was raised (deepest frame in that file)."""
    line = None
    for frame, number in traceback.walk_tb(error.__traceback__):
        if Path(frame.f_code.co_filename) == path:
            line = number
    text = "".join(traceback.format_exception(error))
    return text, line


def load_pipeline_file(
    path_text: str, plumber_type: type | None = None
) -> LoadedPipeline:
    """Run the pipeline file at ``path_text`` in a fresh module and return it.

    The file's folder is put first on ``sys.path`` (as when running a script),
    so it can import helper modules next to it, and the module is registered
    in ``sys.modules`` so worker processes can unpickle functions defined in
    it by reference. ``plumber_type`` is the class ``pipeline`` must be an
    instance of (default ``papy.core.Plumber``).

    Raises ``PipelineFileError`` when the file is missing or unreadable, has
    a syntax error, raises while running, or defines no ``pipeline`` of the
    right type.
    """
    path = Path(path_text).resolve()
    if not path.exists():
        raise PipelineFileError(f"pipeline file {path_text!r} does not exist")
    if not path.is_file():
        raise PipelineFileError(f"pipeline file {path_text!r} is not a file")
    try:
        source = path.read_bytes()
    except OSError as error:
        raise PipelineFileError(
            f"cannot read pipeline file {path_text!r}: {error.strerror}"
        ) from error
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as error:
        if error.lineno is None:  # e.g. null bytes: not a text file at all
            raise PipelineFileError(
                f"pipeline file {path_text!r} is not Python source: {error.msg}"
            ) from error
        where = f"{path_text}, line {error.lineno}"
        text = (error.text or "").rstrip()
        shown = f"\n    {text}" if text else ""
        raise PipelineFileError(
            f"pipeline file has a syntax error ({where}): {error.msg}{shown}",
            "".join(traceback.format_exception_only(error)),
        ) from error
    except ValueError as error:  # e.g. null bytes: not a Python source file
        raise PipelineFileError(
            f"pipeline file {path_text!r} is not Python source: {error}"
        ) from error

    name = module_name_for(path)
    module = types.ModuleType(name)
    module.__file__ = str(path)
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except Exception as error:
        del sys.modules[name]
        details, line = _user_traceback(error, path)
        where = f", line {line}" if line else ""
        raise PipelineFileError(
            f"pipeline file {path_text!r} raised {type(error).__name__} while "
            f"loading{where}: {error}",
            details,
        ) from error

    if plumber_type is None:
        from papy.core import Plumber

        plumber_type = Plumber
    if not hasattr(module, PIPELINE_NAME):
        raise PipelineFileError(
            f"pipeline file {path_text!r} defines no module-level `pipeline`. "
            "A pipeline file must end with e.g. `pipeline = Plumber()` followed "
            "by `pipeline.add_pipe((piper_a, piper_b))` (this is the format "
            "Plumber.save writes)."
        )
    pipeline = getattr(module, PIPELINE_NAME)
    if not isinstance(pipeline, plumber_type):
        raise PipelineFileError(
            f"pipeline file {path_text!r}: `pipeline` is a "
            f"{type(pipeline).__name__}, expected a {plumber_type.__name__}"
        )
    return LoadedPipeline(path=path, module=module, pipeline=pipeline)
