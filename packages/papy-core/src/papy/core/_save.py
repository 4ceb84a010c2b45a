"""Saving a pipeline as Python source, and loading it back.

The saved file is ordinary Python built from the ``papy.util.codefile``
templates: functions (imported from their module, loaded by path again
when ``import_from_path`` loaded them, or their source copied, with the
globals it uses, when they were defined in the running script), partials
and operator getters/callers as the calls that rebuild them, NuMaps with
the settings the user gave, Workers, Pipers, and a module-level
``pipeline`` Plumber with its Pipers and pipes.
Hand-written pipeline files follow the same convention: a module-level
``pipeline`` Plumber.

One loader, ``load_pipeline_file``, serves ``Plumber.load``,
``papy.core.load_pipeline`` and the ``papy`` command (which also needs the
module, for its optional ``make_inputs``/``finish`` hooks).

Loading a pipeline EXECUTES the file: load only files you trust.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import dis
import functools
import inspect
import itertools
import keyword
import operator
import os
import re
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from papy.core._errors import DaggerError, PipelineFileError, PlumberError
from papy.util import codefile
from papy.util.codefile import Reference

_loaded = itertools.count()


def _version() -> str:
    try:
        return metadata.version("papy-core")
    except metadata.PackageNotFoundError:
        return "unknown"


class _Unsavable(Exception):
    """Something in the pipeline cannot be written; ``pipeline_source`` adds
    where it was found and raises PlumberError."""


# The names the saved file gives its own objects, spelled only here:
# ``<kind>_<number>`` (numbered per kind by _Writer.new_name) for NuMaps,
# Workers, Pipers and the callables the file has to name itself (a rebuilt
# partial or operator callable, an imported function whose own name is
# taken), and codefile.PIPELINE_NAME for the Plumber. Besides these the file
# binds the names of codefile.IMPORTS (_template_names). A copied function's
# global may not take any of them.
_NUMAP, _WORKER, _PIPER, _CALLABLE = "numap", "worker", "piper", "callable"
_GENERATED_KINDS = (_NUMAP, _WORKER, _PIPER, _CALLABLE)
_GENERATED_NAME = re.compile(
    rf"({'|'.join(_GENERATED_KINDS)})_\d+|{re.escape(codefile.PIPELINE_NAME)}"
)


@dataclass(frozen=True)
class _Rebuilt:
    """A callable object the saved file rebuilds with a call
    ``module.maker(function, *args, **kwargs)`` (``function`` only for
    partials): functools.partial and the operator getters/caller."""

    module: types.ModuleType
    maker: str
    function: Callable[..., Any] | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.module.__name__}.{self.maker}"


def _rebuilt(value: Any) -> _Rebuilt | None:
    """How the saved file rebuilds ``value``, or None if it is not one of the
    callables written as a call. Exact types only: a subclass could carry
    behaviour the call would not rebuild."""
    kind = type(value)
    if kind is functools.partial:
        if vars(value):
            raise _Unsavable(
                f"{value!r:.80} has attributes set on it ({', '.join(vars(value))}), "
                "which the saved file would lose; pass them as arguments instead"
            )
        return _Rebuilt(functools, "partial", value.func, value.args, value.keywords)
    if kind is operator.itemgetter or kind is operator.attrgetter:
        _, args = value.__reduce__()
        return _Rebuilt(operator, kind.__name__, None, args, {})
    if kind is operator.methodcaller:
        # (methodcaller, (name, *args)) or, with keywords,
        # (partial(methodcaller, name, **kwargs), args)
        maker, args = value.__reduce__()
        if isinstance(maker, functools.partial):
            return _Rebuilt(
                operator, "methodcaller", None, maker.args + args, maker.keywords
            )
        return _Rebuilt(operator, "methodcaller", None, args, {})
    return None


# {name: [(module, attribute), ...]}: the import statements of a source file
# that bind ``name``: ``from module import attribute [as name]``, and with
# attribute None ``import module as name``.
_FileImports = dict[str, list[tuple[str, str | None]]]


def _template_names() -> dict[str, Any]:
    from numap import NuMap
    from papy.core import Piper, Plumber, Worker

    return {
        "NuMap": NuMap,
        "Piper": Piper,
        "Plumber": Plumber,
        "Worker": Worker,
        "import_from_path": codefile.import_from_path,
    }


class _Writer:
    """Collects the parts of one saved file; names every object once.

    ``bound`` maps every name the functions and imports sections bind to the
    object it stands for, so two different objects never get one name.
    ``imported_as`` maps each object an import line binds to that line's
    name, so one object gets one import: a further name for it is an alias
    line (``name = first_name``) after the imports.
    """

    def __init__(self) -> None:
        # The functions section, in this order: imported functions, further
        # names of imported objects, literal constants the copied functions
        # use, then the copied definitions and rebuilt callables.
        self.function_imports: list[str] = []
        self.alias_lines: list[str] = []
        self.constant_lines: list[str] = []
        self.function_lines: list[str] = []
        self.extra_imports: list[str] = []
        self.function_names: dict[int, str] = {}
        self.bound: dict[str, Any] = dict(_template_names())
        self.imported_as: dict[int, str] = {}
        self.numap_lines: list[str] = []
        self.numap_names: dict[int, str] = {}
        # Each source file's import statements, parsed once per save.
        self.imports_by_file: dict[str, _FileImports] = {}
        self.numbers = {kind: itertools.count() for kind in _GENERATED_KINDS}

    def new_name(self, kind: str) -> str:
        """The next unused generated name of ``kind`` (one of
        _GENERATED_KINDS): ``kind_0``, ``kind_1``, ..."""
        return f"{kind}_{next(self.numbers[kind])}"

    def _file_imports(self, function: Callable[..., Any]) -> _FileImports:
        try:
            filename = inspect.getsourcefile(function) or ""
        except TypeError:
            filename = ""
        if filename not in self.imports_by_file:
            self.imports_by_file[filename] = _imports_in(filename)
        return self.imports_by_file[filename]

    def function(self, function: Callable[..., Any]) -> Reference:
        known = self.function_names.get(id(function))
        if known is not None:
            return Reference(known)
        rebuilt = _rebuilt(function)
        if rebuilt is not None:
            return self._rebuild(function, rebuilt)
        code = _function_code(function)
        name = code.name
        if code.kind == "source":
            self._bind(name, function, f"function {name!r}")
            self.function_names[id(function)] = name
            # What the def statement evaluates (decorators, defaults) must
            # exist before it; what the body uses only when called, so it
            # comes after: then the body may name the function itself, or
            # a function whose copy is still being written, through an alias
            # or a partial.
            definition = _definition_globals(code.code)
            self._copy_globals(function, definition)
            self.function_lines.append("\n\n" + code.code)
            body = _code_globals(function.__code__)  # type: ignore[attr-defined]
            self._copy_globals(function, [n for n in body if n not in definition])
            return Reference(name)
        earlier = self.imported_as.get(id(function))
        if earlier is not None:
            self.function_names[id(function)] = earlier
            return Reference(earlier)
        # An import or a load by path: under a generated name if its own
        # stands for something else; none if it stands for the function
        # already (the IMPORTS template's import_from_path).
        if self._name_conflict(name, function) is not None:
            name = self._bind_new_name(_CALLABLE, function)
            self.function_imports.append(_function_code(function, name).code)
        elif self._bind(name, function, f"function {name!r}"):
            self.function_imports.append(code.code)
        self.function_names[id(function)] = name
        self.imported_as[id(function)] = name
        return Reference(name)

    def _rebuild(self, function: Callable[..., Any], rebuilt: _Rebuilt) -> Reference:
        """Write ``<generated name> = module.maker(...)`` rebuilding
        ``function``."""
        module_name = self.imported_as.get(id(rebuilt.module))
        if module_name is None:
            module_name = rebuilt.module.__name__
            self._bind(module_name, rebuilt.module, rebuilt.label)
            self._import(module_name, rebuilt.module, f"import {module_name}")
        parts: list[str] = []
        if rebuilt.function is not None:
            with _where(f"{rebuilt.label} of {rebuilt.function!r:.60}"):
                parts.append(self.function(rebuilt.function))
        for position, value in enumerate(rebuilt.args):
            with _where(f"{rebuilt.label} argument {position}"):
                parts.append(_literal(value))
        for key, value in rebuilt.kwargs.items():
            if not key.isidentifier() or keyword.iskeyword(key):
                raise _Unsavable(
                    f"{rebuilt.label} keyword {key!r} is not a Python identifier, "
                    "so it cannot be written as a keyword argument"
                )
            with _where(f"{rebuilt.label} keyword {key!r}"):
                parts.append(f"{key}={_literal(value)}")
        name = self._bind_new_name(_CALLABLE, function)
        self.function_names[id(function)] = name
        call = f"{module_name}.{rebuilt.maker}({', '.join(parts)})"
        self.function_lines.append(f"\n\n{name} = {call}")
        return Reference(name)

    def _bind_new_name(self, kind: str, value: Any) -> str:
        """A new generated name of ``kind``, bound to ``value`` (no name of
        the script can take it: _bind refuses generated names)."""
        name = self.new_name(kind)
        self.bound[name] = value
        return name

    def _name_conflict(self, name: str, value: Any) -> str | None:
        """Why ``name`` cannot stand for ``value`` in the saved file, or None
        if it can (it is free, or already stands for ``value``)."""
        if name in self.bound:
            if self.bound[name] is value:
                return None
            return "already uses for something else; rename one of them"
        if _GENERATED_NAME.fullmatch(name):
            return "uses for its own objects; rename it"
        return None

    def _bind(self, name: str, value: Any, what: str) -> bool:
        """Reserve ``name`` for ``value``; False if it already stands for it.

        Raises _Unsavable when ``name`` stands for another object.
        """
        conflict = self._name_conflict(name, value)
        if conflict is not None:
            raise _Unsavable(
                f"{what} needs the name {name!r}, which the saved file {conflict}"
            )
        if name in self.bound:
            return False
        self.bound[name] = value
        return True

    def _copy_globals(self, function: Callable[..., Any], names: list[str]) -> None:
        """Write the globals ``names`` of the copied ``function`` (names it
        does not find in its module are builtins or never existed)."""
        scope = function.__globals__  # type: ignore[attr-defined]
        for name in dict.fromkeys(names):
            if name not in scope:
                continue  # a builtin, or a name that never existed
            value = scope[name]
            what = f"function {function.__name__!r} uses the global {name!r}, so it"
            if not self._bind(name, value, what):
                continue
            try:
                self._provide(function, name, value)
            except _Unsavable:
                raise
            except Exception as error:  # a value whose introspection fails
                raise _Unsavable(f"{what} cannot be saved: {error}") from error

    def _import(self, name: str, value: Any, line: str) -> None:
        """Write the import ``line`` binding ``name`` to ``value``."""
        self.imported_as[id(value)] = name
        self.extra_imports.append(line)

    def _provide(self, function: Callable[..., Any], name: str, value: Any) -> None:
        """Write the import, definition or assignment that binds ``name``."""
        earlier = self.imported_as.get(id(value))
        if earlier is not None:
            self.alias_lines.append(f"{name} = {earlier}")
            return
        if isinstance(value, types.ModuleType):
            imports = self._file_imports(function)
            self._import(name, value, _module_import(function, name, value, imports))
            return
        # Refusals of the callable itself (a lambda, a partial with
        # attributes) would not say which global it is.
        place = f"function {function.__name__!r} uses the global {name!r}"
        with _where(place):
            rebuilt = _rebuilt(value)
        if rebuilt is not None or (
            isinstance(value, types.FunctionType)
            and value.__globals__ is function.__globals__  # type: ignore[attr-defined]
        ):
            # function() binds the name it writes (the def's own name, or a
            # generated one); ``name`` is then bound to that below.
            del self.bound[name]
            with _where(place):
                reference = self.function(value)
            if reference != name:
                self._bind(name, value, f"function {function.__name__!r}")
                self.function_lines.append(f"\n\n{name} = {reference}")
            return
        line = _from_import(function, name, value, self._file_imports(function))
        if line is not None:
            self._import(name, value, line)
            return
        try:
            self.constant_lines.append(f"{name} = {codefile.literal(value)}")
            return
        except codefile.CodefileError:
            pass
        raise _Unsavable(
            f"function {function.__name__!r} uses the global {name!r} (a "
            f"{type(value).__qualname__}), which cannot be written into the "
            "saved file: it is not a module, a function of the same script, "
            "a value writable as a Python literal, or importable from a module; "
            "move it into an importable module (and import it from there), or "
            "pass it to the function as a Worker argument"
        )

    def numap(self, numap: Any) -> Reference:
        known = self.numap_names.get(id(numap))
        if known is not None:
            return Reference(known)
        name = self.new_name(_NUMAP)
        # The settings as the user gave them: a default left out is computed
        # again where the file loads (the worker count from that machine's
        # CPUs, stride and buffer from it).
        settings = {
            key: value for key, value in numap.arguments.items() if value is not None
        }
        if "worker_remote" in settings:
            settings["worker_remote"] = [tuple(r) for r in settings["worker_remote"]]
        self.numap_lines.append(
            codefile.render(codefile.NUMAP, name=name, arguments=_arguments(**settings))
        )
        self.numap_names[id(numap)] = name
        return Reference(name)


def _literal(value: Any) -> str:
    try:
        return codefile.literal(value)
    except codefile.CodefileError as error:
        raise _Unsavable(str(error)) from error


def _arguments(*args: Any, **kwargs: Any) -> str:
    """``codefile.arguments``; raises _Unsavable naming the argument that
    cannot be written (e.g. "argument 'branch'")."""
    try:
        return codefile.arguments(*args, **kwargs)
    except codefile.CodefileError as error:
        where = _unwritable_argument(args, kwargs)
        raise _Unsavable(f"{where}: {error}") from error


def _unwritable_argument(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """Which of a call's arguments ``codefile.arguments`` refuses, first
    found (each is tried alone)."""
    for index, value in enumerate(args):
        if not _writable(value):
            return f"positional argument {index}"
    for key, value in kwargs.items():
        try:
            codefile.arguments(**{key: value})
        except codefile.CodefileError:
            return f"argument {key!r}"
    return "its arguments"


_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "STORE_GLOBAL", "DELETE_GLOBAL"})


def _code_globals(code: types.CodeType) -> list[str]:
    """Global names ``code`` and the code nested in it (comprehensions,
    inner functions, lambdas) read or write."""
    names = [
        str(instruction.argval)
        for instruction in dis.get_instructions(code)
        if instruction.opname in _GLOBAL_OPS
    ]
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names.extend(_code_globals(constant))
    return names


def _definition_globals(source: str) -> list[str]:
    """Names the ``def`` in ``source`` evaluates when it runs: decorators,
    default values and annotations (the body is in the code object)."""
    tree = ast.parse(source)
    definition = tree.body[0] if tree.body else None
    if not isinstance(definition, ast.FunctionDef | ast.AsyncFunctionDef):
        return []
    parts: list[ast.AST] = [*definition.decorator_list, definition.args]
    if definition.returns is not None:
        parts.append(definition.returns)
    return [
        node.id
        for part in parts
        for node in ast.walk(part)
        if isinstance(node, ast.Name)
    ]


def _module_import(
    function: Callable[..., Any],
    name: str,
    module: types.ModuleType,
    file_imports: _FileImports,
) -> str:
    """The line binding ``name`` to ``module`` by importing it.

    The import statement of the function's own file that bound it, where it
    gives this module in another process too (``import os.path as osp`` and
    ``from os import path`` stay so: the module's own name, ``posixpath`` or
    ``ntpath``, would tie the saved file to one platform); else
    ``import <its own name>``. Raises _Unsavable when neither imports it.
    """
    for module_name, attribute in file_imports.get(name, ()):
        if attribute is None:
            if codefile.importable_module(module, module_name):
                return f"import {module_name} as {name}"
            continue
        parent = sys.modules.get(module_name)
        if (
            parent is not None
            and getattr(parent, attribute, None) is module
            and codefile.importable_module(parent, module_name)
        ):
            return _from_import_line(module_name, attribute, name)
    if not codefile.importable_module(module):
        raise _Unsavable(
            f"function {function.__name__!r} uses the module {name!r}, which "
            "cannot be imported by name (it was loaded from a path or is the "
            "main script); put the code it needs into an importable module"
        )
    if module.__name__ == name:
        return f"import {name}"
    return f"import {module.__name__} as {name}"


def _from_import(
    function: Callable[..., Any],
    name: str,
    value: Any,
    file_imports: _FileImports,
) -> str | None:
    """A line binding ``name`` to exactly ``value`` by importing it, or None.

    Tries the import statements of the function's own file first
    (``file_imports``, so ``from os.path import join as pjoin`` stays so),
    then what ``codefile.function_code`` writes for the object under its own
    module and name (which also knows the modules ``import_from_path``
    loaded: their names mean nothing to another process).
    """
    own_module = getattr(function, "__module__", None)
    for module_name, attribute in file_imports.get(name, ()):
        if attribute is None or module_name == own_module or "." in attribute:
            continue
        module = sys.modules.get(module_name)
        if module is None or not codefile.importable_module(module, module_name):
            continue
        if getattr(module, attribute, None) is not value:
            continue
        return _from_import_line(module_name, attribute, name)
    if getattr(value, "__module__", None) == own_module:
        return None
    return _importable_function(value, name)


def _from_import_line(module: str, attribute: str, name: str) -> str:
    """codefile's line importing ``attribute`` of ``module`` as ``name``
    (``as name`` only when the two differ)."""
    template = codefile.FUNCTION_IMPORT_AS
    if attribute == name:
        template = codefile.FUNCTION_IMPORT
    return codefile.render(template, module=module, attribute=attribute, name=name)


def _function_code(function: Any, name: str | None = None) -> codefile.FunctionCode:
    """``codefile.function_code`` of ``function`` (binding ``name``, if
    given, where it imports or loads by path); its refusal as _Unsavable."""
    try:
        return codefile.function_code(function, name=name)
    except codefile.CodefileError as error:
        raise _Unsavable(str(error)) from error


def _importable_function(value: Any, name: str) -> str | None:
    """``codefile.function_code``'s import (or load by path) of ``value``,
    binding ``name``; None if it would copy the source or refuses."""
    try:
        code = codefile.function_code(value, name=name)
    except codefile.CodefileError:
        return None
    return None if code.kind == "source" else code.code


def _imports_in(filename: str) -> _FileImports:
    """The absolute ``from x import a [as b]`` and ``import x as b``
    statements in ``filename`` (see _FileImports); empty if it cannot be
    read. (A plain ``import x.y`` binds ``x``, which its own name imports.)"""
    try:
        source = Path(filename).read_text() if filename else ""
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, ValueError):
        return {}
    found: _FileImports = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                bound_as = alias.asname or alias.name
                found.setdefault(bound_as, []).append((node.module, alias.name))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname is not None:
                    found.setdefault(alias.asname, []).append((alias.name, None))
    return found


@contextlib.contextmanager
def _where(place: str, separator: str = ": ") -> Iterator[None]:
    """Prefix an _Unsavable raised inside with ``place``."""
    try:
        yield
    except _Unsavable as error:
        raise _Unsavable(f"{place}{separator}{error}") from error.__cause__


def _worker_line(writer: _Writer, worker: Any, worker_name: str) -> str:
    functions = []
    for number, function in enumerate(worker.task, 1):
        with _where(_function_label(number, function)):
            functions.append(writer.function(function))
    try:
        arguments = codefile.arguments(
            tuple(functions), worker.args, worker.kwargs, name=worker.name
        )
    except codefile.CodefileError as error:
        raise _Unsavable(f"{_worker_problem(worker)}: {error}") from error
    return codefile.render(codefile.WORKER, name=worker_name, arguments=arguments)


def _worker_problem(worker: Any) -> str:
    """Which of ``worker``'s arguments cannot be written as a literal."""
    for number, (function, args, kwargs) in enumerate(
        zip(worker.task, worker.args, worker.kwargs, strict=False), 1
    ):
        label = _function_label(number, function)
        for position, value in enumerate(args):
            if not _writable(value):
                return f"args of {label} position {position}"
        for key, value in kwargs.items():
            if not _writable(value):
                return f"kwargs of {label} key {key!r}"
    return "arguments"


def _function_label(number: int, function: Any) -> str:
    name = getattr(function, "__name__", None)
    return f"function {number} ({name})" if name else f"function {number}"


def _writable(value: Any) -> bool:
    try:
        codefile.literal(value)
    except codefile.CodefileError:
        return False
    return True


def _piper_line(piper: Any, piper_name: str, worker_name: str, parallel: Any) -> str:
    arguments = _arguments(
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
    )
    return codefile.render(codefile.PIPER, name=piper_name, arguments=arguments)


def pipeline_source(plumber: Any) -> str:
    """The Python source of ``plumber`` (see the module docstring).

    Raises PlumberError saying what cannot be written and where.
    """
    try:
        return _pipeline_source(plumber)
    except _Unsavable as error:
        raise PlumberError(f"Plumber.save: {error}") from error


def _pipeline_source(plumber: Any) -> str:
    writer = _Writer()
    worker_lines = []
    piper_lines = []
    piper_names: dict[Any, str] = {}
    for piper in plumber:
        worker = piper.worker
        place = f"Piper {piper.name!r}, Worker {worker.name!r}"
        worker_name = writer.new_name(_WORKER)
        with _where(place, ", "):
            worker_lines.append(_worker_line(writer, worker, worker_name))
        with _where(f"Piper {piper.name!r}, its NuMap"):
            parallel = False if piper.imap is None else writer.numap(piper.imap)
        piper_name = writer.new_name(_PIPER)
        piper_names[piper] = piper_name
        with _where(f"Piper {piper.name!r}"):
            piper_lines.append(_piper_line(piper, piper_name, worker_name, parallel))
    pipeline = codefile.PIPELINE_NAME
    with _where(f"Plumber {plumber.name!r}"):
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
    extra = "\n".join(writer.extra_imports)
    date = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    parts = [
        codefile.render(
            codefile.HEADER,
            title=f"PaPy pipeline {_one_comment_line(plumber.name)}",
            version=_version(),
            date=date,
        ),
        codefile.render(codefile.IMPORTS, extra=extra),
        codefile.render(codefile.SECTION, title="functions"),
        *writer.function_imports,
        *writer.alias_lines,
        *writer.constant_lines,
        *writer.function_lines,
        "",
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
        raise _Unsavable(str(error)) from error


@dataclass
class LoadedPipeline:
    """A loaded pipeline file: its ``path``, the ``module`` its code ran in
    and the ``pipeline`` Plumber it defines."""

    path: Path
    module: types.ModuleType
    pipeline: Any

    def hook(self, name: str) -> Any:
        """The module's callable ``name`` (e.g. the ``make_inputs`` and
        ``finish`` hooks of ``papy run``), or None if it defines none."""
        value = getattr(self.module, name, None)
        return value if callable(value) else None


def _module_name(path: Path) -> str:
    """A module name unlikely to clash with real packages, and not yet taken
    (a second load of one file must not replace the first one's module, whose
    functions workers may still pickle by reference)."""
    base = "papy_pipeline_" + re.sub(r"\W", "_", path.stem)
    name = base
    while name in sys.modules:
        name = f"{base}_{next(_loaded)}"
    return name


def _user_traceback(error: BaseException, path: Path) -> tuple[str, int | None]:
    """The formatted traceback, and the line in the pipeline file that was
    running when ``error`` was raised (deepest frame in that file)."""
    line = None
    for frame, number in traceback.walk_tb(error.__traceback__):
        if Path(frame.f_code.co_filename) == path:
            line = number
    return "".join(traceback.format_exception(error)), line


def _compile(path: Path, shown: str) -> types.CodeType:
    """The code of the pipeline file at ``path`` (``shown`` is the path as the
    caller gave it, for messages)."""
    if not path.exists():
        raise PipelineFileError(f"pipeline file {shown!r} does not exist")
    if not path.is_file():
        raise PipelineFileError(f"pipeline file {shown!r} is not a file")
    try:
        source = path.read_bytes()
    except OSError as error:
        raise PipelineFileError(
            f"cannot read pipeline file {shown!r}: {error.strerror}"
        ) from error
    try:
        return compile(source, str(path), "exec")
    except SyntaxError as error:
        if error.lineno is None:  # e.g. null bytes: not a text file at all
            raise PipelineFileError(
                f"pipeline file {shown!r} is not Python source: {error.msg}"
            ) from error
        where = f"{shown}, line {error.lineno}"
        text = (error.text or "").rstrip()
        quoted = f"\n    {text}" if text else ""
        raise PipelineFileError(
            f"pipeline file has a syntax error ({where}): {error.msg}{quoted}",
            "".join(traceback.format_exception_only(error)),
        ) from error
    except ValueError as error:  # e.g. null bytes: not a Python source file
        raise PipelineFileError(
            f"pipeline file {shown!r} is not Python source: {error}"
        ) from error


def load_pipeline_file(path: str | os.PathLike[str]) -> LoadedPipeline:
    """Run the pipeline file at ``path`` in a fresh module; return the module
    and its module-level ``pipeline`` Plumber.

    The file's folder is put first on ``sys.path`` (as when running a
    script), so it can import helper modules next to it, and the module is
    registered in ``sys.modules`` (as ``papy_pipeline_<file stem>``, with a
    number added if that is taken) so worker processes can unpickle
    functions defined in it by reference. When loading fails, both are
    undone.

    WARNING: this EXECUTES the file's code; load only files you trust.

    Raises PipelineFileError (a PlumberError) when the file is missing or
    unreadable, is not Python, raises an Exception or calls ``sys.exit()``
    while running (the original is its ``__cause__``; its traceback is in
    ``details``),
    defines no ``pipeline`` Plumber, or its pipeline's pipes make a cycle
    (added through the inherited ``add_edge``; the DaggerError is the
    ``__cause__``).
    """
    shown = os.fspath(path)
    full_path = Path(shown).resolve()
    code = _compile(full_path, shown)
    name = _module_name(full_path)
    module = types.ModuleType(name)
    module.__file__ = str(full_path)
    folder = str(full_path.parent)
    added_folder = folder not in sys.path
    if added_folder:
        sys.path.insert(0, folder)
    try:
        return _run_pipeline_file(code, module, full_path, shown)
    except BaseException:
        # A file that did not load leaves no trace: imports look where they
        # did before, and its module is not registered.
        if added_folder and folder in sys.path:
            sys.path.remove(folder)
        if sys.modules.get(name) is module:
            del sys.modules[name]
        raise


def _run_pipeline_file(
    code: types.CodeType, module: types.ModuleType, full_path: Path, shown: str
) -> LoadedPipeline:
    """Execute ``code`` in ``module`` and return its pipeline (see
    ``load_pipeline_file``)."""
    from papy.core._plumber import Plumber

    sys.modules[module.__name__] = module
    try:
        exec(code, module.__dict__)
    except (Exception, SystemExit) as error:  # a Ctrl-C is not the file's
        details, line = _user_traceback(error, full_path)
        where = f", line {line}" if line else ""
        if isinstance(error, SystemExit):
            what = (
                f"called sys.exit({error.code!r}) while loading{where}. An "
                "argument parser at module level does that when it rejects "
                "the command line it finds: loading imports the file, so code "
                "that parses the command line or exits must go under "
                "'if __name__ == \"__main__\":'"
            )
        else:
            what = f"raised {type(error).__name__} while loading{where}: {error}"
        raise PipelineFileError(f"pipeline file {shown!r} {what}", details) from error
    if not hasattr(module, codefile.PIPELINE_NAME):
        raise PipelineFileError(
            f"pipeline file {shown!r} defines no module-level "
            f"`{codefile.PIPELINE_NAME}`. A pipeline file must end with e.g. "
            f"`{codefile.PIPELINE_NAME} = Plumber()` followed by "
            f"`{codefile.PIPELINE_NAME}.add_pipe((piper_a, piper_b))` (this is "
            "the format Plumber.save writes)."
        )
    pipeline = getattr(module, codefile.PIPELINE_NAME)
    if not isinstance(pipeline, Plumber):
        raise PipelineFileError(
            f"pipeline file {shown!r}: `{codefile.PIPELINE_NAME}` is a "
            f"{type(pipeline).__name__}, expected a Plumber"
        )
    try:
        # A cycle made through the add_edge a Plumber inherits from DictGraph
        # (add_pipe refuses them) would otherwise surface later, wherever the
        # Pipers are first put in order, looking like an error of PaPy's.
        pipeline.postorder()
    except DaggerError as error:
        raise PipelineFileError(
            f"pipeline file {shown!r}: its pipes do not fit: {error}"
        ) from error
    return LoadedPipeline(path=full_path, module=module, pipeline=pipeline)


def load_pipeline(path: str | os.PathLike[str]) -> Any:
    """Run the pipeline file at ``path`` and return its ``pipeline`` Plumber
    (``load_pipeline_file`` without the module).

    WARNING: this EXECUTES the file's code; load only files you trust.

    Raises PipelineFileError (a PlumberError) as ``load_pipeline_file`` does.
    """
    return load_pipeline_file(path).pipeline


def _one_comment_line(name: str) -> str:
    """``name`` as it may stand in a comment line of the saved file: as
    it is if it is printable, else as its repr (a line break in it would
    end the comment, and what follows would run when the file loads)."""
    return name if name.isprintable() else repr(name)
