"""Saving a pipeline as Python source, and loading it back.

The saved file is ordinary Python built from the ``papy.util.codefile``
templates: functions (imported by path, or their source copied when they
were defined in the running script), NuMaps with their settings, Workers,
Pipers, and a module-level ``pipeline`` Plumber with its Pipers and pipes.

Loading a pipeline EXECUTES the file: load only files you trust.
"""

from __future__ import annotations

import datetime
import itertools
import os
import sys
import types
from collections.abc import Callable
from importlib import metadata
from typing import Any

from papy.core._errors import PlumberError
from papy.util import codefile
from papy.util.codefile import Reference

NUMAP_SETTINGS = (
    "worker_type",
    "worker_num",
    "worker_remote",
    "stride",
    "buffer",
    "ordered",
    "skip",
    "name",
)
"""NuMap attributes written to a saved file (the NuMap constructor's names)."""

_loaded = itertools.count()


def _version() -> str:
    try:
        return metadata.version("papy-core")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Writer:
    """Collects the parts of one saved file; names every object once."""

    def __init__(self) -> None:
        self.function_lines: list[str] = []
        self.extra_imports: list[str] = []
        self.function_names: dict[int, str] = {}
        self.used_names: set[str] = set()
        self.numap_lines: list[str] = []
        self.numap_names: dict[int, str] = {}

    def function(self, function: Callable[..., Any]) -> Reference:
        known = self.function_names.get(id(function))
        if known is not None:
            return Reference(known)
        try:
            code = codefile.function_code(function)
        except codefile.CodefileError as error:
            raise PlumberError(f"Plumber.save: {error}") from error
        name = code.name
        if name in self.used_names:
            if code.kind != "import":
                raise PlumberError(
                    f"Plumber.save: two different functions are named {name!r}; "
                    "rename one of them"
                )
            name = f"{name}_{len(self.used_names)}"
            text = codefile.render(
                codefile.FUNCTION_IMPORT_AS,
                module=function.__module__,
                attribute=code.name,
                name=name,
            )
        else:
            text = code.code
        if code.kind == "source":
            self.extra_imports.extend(_globals_imports(function))
        self.used_names.add(name)
        self.function_names[id(function)] = name
        self.function_lines.append(text)
        return Reference(name)

    def numap(self, numap: Any) -> Reference:
        known = self.numap_names.get(id(numap))
        if known is not None:
            return Reference(known)
        name = f"numap_{len(self.numap_names)}"
        settings = {key: getattr(numap, key) for key in NUMAP_SETTINGS}
        if settings.get("worker_remote") is not None:
            settings["worker_remote"] = [tuple(r) for r in settings["worker_remote"]]
        ssl = getattr(numap, "worker_remote_ssl", None)
        if ssl is not None:
            settings["worker_remote_ssl"] = ssl
        self.numap_lines.append(
            codefile.render(codefile.NUMAP, name=name, arguments=_arguments(**settings))
        )
        self.numap_names[id(numap)] = name
        return Reference(name)


def _arguments(*args: Any, **kwargs: Any) -> str:
    try:
        return codefile.arguments(*args, **kwargs)
    except codefile.CodefileError as error:
        raise PlumberError(f"Plumber.save: {error}") from error


def _globals_imports(function: Callable[..., Any]) -> list[str]:
    """Import lines for modules and imported functions a copied function uses."""
    lines = []
    code = getattr(function, "__code__", None)
    names = code.co_names if code is not None else ()
    scope = getattr(function, "__globals__", {})
    for name in names:
        value = scope.get(name)
        if isinstance(value, types.ModuleType):
            if value.__name__ == name:
                lines.append(f"import {name}")
            else:
                lines.append(f"import {value.__name__} as {name}")
        elif callable(value) and getattr(value, "__module__", "__main__") not in (
            "__main__",
            None,
        ):
            attribute = getattr(value, "__name__", None)
            if attribute == name:
                lines.append(f"from {value.__module__} import {name}")
    return lines


def pipeline_source(plumber: Any) -> str:
    """The Python source of ``plumber`` (see the module docstring)."""
    writer = _Writer()
    worker_lines = []
    piper_lines = []
    piper_names: dict[Any, str] = {}
    for index, piper in enumerate(plumber):
        worker = piper.worker
        functions = tuple(writer.function(f) for f in worker.task)
        worker_name = f"worker_{index}"
        worker_lines.append(
            codefile.render(
                codefile.WORKER,
                name=worker_name,
                arguments=_arguments(
                    functions, worker.args, worker.kwargs, name=worker.name
                ),
            )
        )
        parallel = False if piper.imap is None else writer.numap(piper.imap)
        piper_name = f"piper_{index}"
        piper_names[piper] = piper_name
        piper_lines.append(
            codefile.render(
                codefile.PIPER,
                name=piper_name,
                arguments=_arguments(
                    Reference(worker_name),
                    parallel=parallel,
                    consume=piper.consume,
                    produce=piper.produce,
                    spawn=piper.spawn,
                    timeout=piper.timeout,
                    branch=piper.branch,
                    debug=piper.debug,
                    name=piper.name,
                    track=piper.track,
                    repeat=piper.repeat,
                ),
            )
        )
    pipeline = codefile.PIPELINE_NAME
    pipeline_lines = [
        codefile.render(
            codefile.PIPELINE,
            name=pipeline,
            arguments=_arguments(
                logger_options=plumber.logger_options, name=plumber.name
            ),
        )
    ]
    for piper in plumber:
        topo = plumber[piper]
        pipeline_lines.append(
            codefile.render(
                codefile.PIPER_ADD,
                pipeline=pipeline,
                arguments=_arguments(
                    Reference(piper_names[piper]),
                    xtra=dict(topo.xtra) or None,
                    branch=topo.branch,
                ),
            )
        )
    for downstream in plumber:
        for upstream in plumber[downstream]:
            pipe = (
                Reference(piper_names[upstream]),
                Reference(piper_names[downstream]),
            )
            pipeline_lines.append(
                codefile.render(
                    codefile.PIPE, pipeline=pipeline, arguments=_arguments(pipe)
                )
            )
    extra = "\n".join(dict.fromkeys(writer.extra_imports))
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    parts = [
        codefile.render(
            codefile.HEADER,
            title=f"PaPy pipeline {plumber.name}",
            version=_version(),
            date=date,
        ),
        codefile.render(codefile.IMPORTS, extra=extra),
        codefile.render(codefile.SECTION, title="functions"),
        *writer.function_lines,
        codefile.render(codefile.SECTION, title="numaps"),
        *writer.numap_lines,
        codefile.render(codefile.SECTION, title="workers"),
        *worker_lines,
        codefile.render(codefile.SECTION, title="pipers"),
        *piper_lines,
        codefile.render(codefile.SECTION, title="pipeline"),
        *pipeline_lines,
    ]
    try:
        return codefile.assemble(parts)
    except codefile.CodefileError as error:
        raise PlumberError(f"Plumber.save: {error}") from error


def load_pipeline(path: str | os.PathLike[str]) -> Any:
    """Run the pipeline file at ``path`` and return its ``pipeline`` Plumber.

    The file runs in a fresh module (registered in ``sys.modules`` under a
    unique name, so worker processes can find its functions).

    WARNING: this EXECUTES the file's code; load only files you trust.

    Raises PlumberError if the file defines no ``pipeline`` Plumber,
    OSError if it cannot be read, and whatever its code raises.
    """
    from papy.core._plumber import Plumber

    full_path = os.path.abspath(os.fspath(path))
    with open(full_path, encoding="utf-8") as handle:
        source = handle.read()
    name = f"_papy_pipeline_{next(_loaded)}"
    module = types.ModuleType(name)
    module.__file__ = full_path
    sys.modules[name] = module
    try:
        exec(compile(source, full_path, "exec"), module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    pipeline = module.__dict__.get(codefile.PIPELINE_NAME)
    if not isinstance(pipeline, Plumber):
        raise PlumberError(
            f"{full_path} defines no module-level Plumber named "
            f"{codefile.PIPELINE_NAME!r} (found {type(pipeline).__name__}); a "
            f"pipeline file must assign its Plumber to {codefile.PIPELINE_NAME!r}"
        )
    return pipeline
