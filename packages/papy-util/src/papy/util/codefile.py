"""Templates for writing a PaPy pipeline as readable Python source.

``Plumber.save`` (papy.core) fills these templates and joins them into one
module; ``Plumber.load`` runs that module and takes its module-level
``pipeline`` object. The written file looks like this::

    HEADER                 comment block: what this is, loading runs code
    IMPORTS                numap / papy.core names, extra imports
    SECTION "functions"    FUNCTION_IMPORT / FUNCTION_FROM_PATH / FUNCTION_SOURCE
    SECTION "numaps"       NUMAP lines
    SECTION "workers"      WORKER lines
    SECTION "pipers"       PIPER lines
    SECTION "pipeline"     PIPELINE, then PIPER_ADD and PIPE lines

Every template is a `string.Template`; placeholders are ``${name}``, so the
braces of dict literals in the generated code need no escaping. Fill a
template with `render`, which names a missing placeholder in its error.
Argument lists are built with `arguments`, which renders Python literals
with `literal` and names of objects defined earlier in the file with
`Reference`.

Loading a saved pipeline executes its code: only load files you trust.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import keyword
import math
import os
import reprlib
import sys
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from string import Template
from types import ModuleType, NoneType
from typing import Any

from papy.util._names import type_name

__all__ = [
    "FUNCTION_FROM_PATH",
    "FUNCTION_IMPORT",
    "FUNCTION_IMPORT_AS",
    "FUNCTION_SOURCE",
    "HEADER",
    "IMPORTS",
    "NUMAP",
    "PIPE",
    "PIPELINE",
    "PIPELINE_NAME",
    "PIPER",
    "PIPER_ADD",
    "SECTION",
    "WORKER",
    "CodefileError",
    "FunctionCode",
    "Reference",
    "arguments",
    "assemble",
    "function_code",
    "import_from_path",
    "importable_module",
    "literal",
    "render",
]

PIPELINE_NAME = "pipeline"
"""Name of the module-level object that ``Plumber.load`` looks for."""

# ${title}: one-line description; ${date}: when it was written;
# ${version}: the PaPy version that wrote it. The first line names the
# file's encoding, so that a title that reads like one ("transcoding: mp4")
# is not taken for it (Python looks at the first two lines, PEP 263).
HEADER = Template(
    """\
# -*- coding: utf-8 -*-
# ${title}
#
# Written by PaPy ${version} (Plumber.save) on ${date}.
# The module-level object `pipeline` is the saved pipeline.
#
# WARNING: loading this file (Plumber.load, import, exec or running it)
# EXECUTES the Python code below. Only load pipelines from sources you trust.
"""
)

# ${extra}: further import lines (may be empty), one per line.
IMPORTS = Template(
    """\
from numap import NuMap
from papy.core import Piper, Plumber, Worker
from papy.util.codefile import import_from_path
${extra}"""
)

# ${title}: heading of a group of lines ("functions", "workers", ...).
SECTION = Template(
    """
# --- ${title} ---
"""
)

# A function importable from an installed module.
# ${module}: dotted module name; ${attribute}: name in that module.
FUNCTION_IMPORT = Template("from ${module} import ${attribute}")

# As FUNCTION_IMPORT, bound to another name (${name}) to avoid clashes.
FUNCTION_IMPORT_AS = Template("from ${module} import ${attribute} as ${name}")

# A function defined in a .py file that is not on sys.path.
# ${name}: name to bind; ${path}, ${attribute}: Python string literals
# (render them with `literal`).
FUNCTION_FROM_PATH = Template("${name} = import_from_path(${path}, ${attribute})")

# A function whose source is copied into the file.
# ${source}: the dedented ``def`` block (see `function_code`).
FUNCTION_SOURCE = Template("${source}")

# ${name}: variable name; ${arguments}: rendered with `arguments`.
NUMAP = Template("${name} = NuMap(${arguments})")
WORKER = Template("${name} = Worker(${arguments})")
PIPER = Template("${name} = Piper(${arguments})")
PIPELINE = Template("${name} = Plumber(${arguments})")

# ${pipeline}: the pipeline variable (PIPELINE_NAME); ${arguments} as above.
PIPER_ADD = Template("${pipeline}.add_piper(${arguments})")
PIPE = Template("${pipeline}.add_pipe(${arguments})")


# Modules loaded by import_from_path, by absolute file path. Their names
# (``_papy_path_<n>_<stem>``) mean nothing to another process.
_PATH_MODULES: dict[str, ModuleType] = {}


class CodefileError(ValueError):
    """A value or function cannot be written as Python source."""


class Reference(str):
    """A name defined earlier in the generated file; rendered without quotes.

    ``arguments(Reference("worker_0"))`` gives ``worker_0``, while
    ``arguments("worker_0")`` gives ``'worker_0'``. Raises CodefileError
    for a name that is not an identifier or is a keyword (``class``,
    ``None``, also ``__debug__``).
    """

    def __new__(cls, name: str) -> Reference:
        _check_name("Reference name", name)
        return super().__new__(cls, name)


def _check_name(what: str, name: Any) -> None:
    """Raise CodefileError unless ``name`` can be bound and used as a
    variable or keyword argument name in the generated file."""
    if not isinstance(name, str) or not name.isidentifier():
        raise CodefileError(f"{what} must be a Python identifier, got {name!r}")
    # __debug__ is no keyword, yet the compiler refuses to bind it, as a
    # variable or as a keyword argument, just the same.
    if keyword.iskeyword(name) or name == "__debug__":
        raise CodefileError(
            f"{what} must be a Python identifier that code can bind, not "
            f"{name!r} (a keyword, or __debug__); choose another name"
        )


def render(template: Template, **values: Any) -> str:
    """Fill ``template`` with ``values`` (converted with str()).

    Raises CodefileError naming a placeholder that has no value.
    """
    try:
        return template.substitute({k: str(v) for k, v in values.items()})
    except KeyError as missing:
        raise CodefileError(
            f"template placeholder {missing.args[0]!r} has no value; "
            f"pass {missing.args[0]}=... to render()"
        ) from None


# Only these exact types are written: a subclass (IntEnum, namedtuple,
# defaultdict, a str subclass) would either not be a literal or come back
# as its base type, so a loaded pipeline would differ from the saved one.
_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (tuple, list, dict, set, frozenset)


def literal(value: Any) -> str:
    """Return Python source that evaluates to ``value``.

    Accepts `Reference` (rendered as a bare name), None, bool, int, float
    (also inf and nan), complex, str, bytes, and tuples, lists, dicts, sets
    and frozensets of those, each of exactly that type. Anything else,
    including subclasses of those types (IntEnum, namedtuple, defaultdict,
    OrderedDict ...), a container holding itself and a value nested too
    deeply, raises CodefileError: convert it to a plain builtin value, or
    save such objects through a function or a module the file imports.
    """
    try:
        return _literal(value, set())
    except RecursionError:
        raise CodefileError(
            f"cannot write a {type_name(value)} value nested this deeply as a "
            "Python literal; flatten it, or build it in a saved function"
        ) from None


def _literal(value: Any, open_containers: set[int]) -> str:
    """`literal`; ``open_containers`` holds the ids of enclosing containers."""
    if isinstance(value, Reference):
        return str(value)
    kind = type(value)
    if kind in _SCALARS:
        return _scalar(value)
    if kind not in _CONTAINERS:
        raise _unwritable(value)
    if id(value) in open_containers:
        raise CodefileError(
            f"cannot write a {kind.__name__} that contains itself as a Python "
            "literal; build it in a saved function instead"
        )
    open_containers.add(id(value))
    try:
        return _container(value, open_containers)
    finally:
        open_containers.discard(id(value))


def _container(value: Any, open_containers: set[int]) -> str:
    kind = type(value)
    if kind is dict:
        pairs = [
            f"{_literal(key, open_containers)}: {_literal(item, open_containers)}"
            for key, item in value.items()
        ]
        return "{" + ", ".join(pairs) + "}"
    items = [_literal(item, open_containers) for item in value]
    if kind is tuple:
        return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"
    if kind is list:
        return "[" + ", ".join(items) + "]"
    if not items:
        return f"{kind.__name__}()"
    body = "{" + ", ".join(sorted(items)) + "}"
    return body if kind is set else f"frozenset({body})"


def _scalar(value: Any) -> str:
    if type(value) is float and not math.isfinite(value):
        return f"float({str(value)!r})"
    if type(value) is complex and not (
        math.isfinite(value.real) and math.isfinite(value.imag)
    ):
        return f"complex({_scalar(value.real)}, {_scalar(value.imag)})"
    try:
        source = repr(value)
    except ValueError:
        # An int with more digits than sys.get_int_max_str_digits() allows
        # in decimal; hexadecimal has no such limit.
        source = hex(value)
    try:
        same = ast.literal_eval(source) == value
    except (SyntaxError, ValueError) as error:
        raise _unwritable(value) from error
    if not same:
        raise _unwritable(value)
    return source


def _unwritable(value: Any) -> CodefileError:
    try:
        shown = reprlib.repr(value)
    except Exception:  # a broken __repr__ must not hide the real problem
        shown = "<no repr>"
    return CodefileError(
        f"cannot write {type_name(value)} value {shown} as a Python literal: "
        "only None, bool, int, float, complex, str, bytes and tuples, lists, "
        "dicts, sets and frozensets of them are written, of exactly those "
        "types (not subclasses); convert it (e.g. int(x), tuple(x), dict(x)) "
        "or pass it through a saved function or an imported module"
    )


def arguments(*args: Any, **kwargs: Any) -> str:
    """Render a call's argument list: ``literal``s, then ``key=literal``s.

    Raises CodefileError for a value ``literal`` refuses, and for a keyword
    that is not a Python identifier or is a keyword such as ``class`` or
    ``__debug__`` (all can be passed with ``**``, but not written as
    ``key=value``).
    """
    parts = [literal(arg) for arg in args]
    for key, value in kwargs.items():
        _check_name("keyword argument name", key)
        parts.append(f"{key}={literal(value)}")
    return ", ".join(parts)


@dataclass(frozen=True)
class FunctionCode:
    """How a saved file gets hold of one function.

    kind: "import" (``from module import attribute``), "path"
    (``import_from_path(file, attribute)``) or "source" (its ``def`` copied).
    name: the name the function is bound to in the saved file.
    code: the line(s) to put in the functions section.
    """

    kind: str
    name: str
    code: str


def importable_module(module: ModuleType, name: str | None = None) -> bool:
    """Whether ``import <name>`` in another process gives ``module``.

    name [default: None, for ``module.__name__``]: the dotted name to import
    it by, which may differ from the module's own (``os.path`` is
    ``posixpath`` on POSIX: importable as "os.path", and as "posixpath").

    True when this process's import system has ``module`` in
    ``sys.modules`` under ``name`` and made it from a spec (so another
    process finds it the same way), except for the running script
    (``__main__``: another process's is another file) and for modules loaded
    with `import_from_path` (their names exist only in this process: load
    those by path). `function_code` imports a function only if its module
    passes this test under the function's ``__module__``. Never raises.
    """
    if name is None:
        name = getattr(module, "__name__", None)
    return (
        isinstance(name, str)
        and name != "__main__"
        and sys.modules.get(name) is module
        and getattr(module, "__spec__", None) is not None
        and all(loaded is not module for loaded in _PATH_MODULES.values())
    )


def _importable(func: Callable[..., Any]) -> bool:
    """Whether ``func`` is importable by its module and qualified name."""
    module_name = getattr(func, "__module__", None)
    qualname = getattr(func, "__qualname__", "")
    if not isinstance(module_name, str) or "." in qualname:
        return False
    module = sys.modules.get(module_name)
    if module is None or not importable_module(module, module_name):
        return False
    return getattr(module, qualname, None) is func


def _path_module_file(func: Callable[..., Any]) -> str | None:
    """The file of ``func``'s module if `import_from_path` loaded it."""
    module = sys.modules.get(getattr(func, "__module__", None) or "")
    for path, loaded in _PATH_MODULES.items():
        if loaded is module:
            return path
    return None


def _import_code(func: Callable[..., Any], attribute: str, name: str) -> FunctionCode:
    template = FUNCTION_IMPORT if name == attribute else FUNCTION_IMPORT_AS
    module = _public_module_name(func, attribute)
    code = render(template, module=module, attribute=attribute, name=name)
    return FunctionCode("import", name, code)


def _public_module_name(func: Callable[..., Any], attribute: str) -> str:
    """``func.__module__``, or the public module that re-exports ``func``
    when that is a private one (``_operator`` -> ``operator``, ``_io`` ->
    ``io``): the name without its leading underscores, if that module is
    importable and gives the same object under ``attribute``."""
    module_name = func.__module__
    head, _, last = module_name.rpartition(".")
    if not last.startswith("_") or last.startswith("__"):
        return module_name
    public_name = f"{head}.{last.lstrip('_')}" if head else last.lstrip("_")
    public = sys.modules.get(public_name)
    if (
        public is not None
        and importable_module(public, public_name)
        and getattr(public, attribute, None) is func
    ):
        return public_name
    return module_name


def function_code(
    func: Callable[..., Any], prefer: str = "import", *, name: str | None = None
) -> FunctionCode:
    """Decide how a saved pipeline refers to ``func`` and render that code.

    prefer: "import" (default) imports a function that lives at the top level
    of a module that `importable_module` accepts, and otherwise copies its
    source; "source" always copies the source of a top-level ``def``; "path"
    loads it from its .py file with `import_from_path`. A function whose
    module was itself loaded with `import_from_path` is loaded by path again
    (unless "source").
    name [default: None, for ``func.__name__``] (keyword only): the name an
    import or a load by path binds, e.g. when the function's own name is
    taken (``from module import f as name``). A copied ``def`` always binds
    the function's own name. The returned ``FunctionCode.name`` is the name
    the code binds.

    Raises CodefileError for lambdas, nested functions, bound methods,
    functions defined in a class, and functions with no available source
    (built in C, defined at the interactive prompt) that cannot be imported
    either.
    """
    if prefer not in ("import", "source", "path"):
        raise CodefileError(
            f"prefer must be 'import', 'source' or 'path', got {prefer!r}"
        )
    own_name = getattr(func, "__name__", None)
    if not callable(func) or not own_name:
        raise CodefileError(f"func must be a named function, got {func!r:.60}")
    if name is None:
        name = own_name
    else:
        _check_name("name", name)
    qualname = getattr(func, "__qualname__", own_name)
    bound_to = getattr(func, "__self__", None)
    if inspect.ismethod(func) or not isinstance(bound_to, (ModuleType, NoneType)):
        # Its copy would lose the object it is bound to (a "self" argument).
        raise CodefileError(
            f"{qualname} is a method bound to a {type_name(bound_to)} "
            "object, which cannot be saved; use a top-level function, or a "
            "module it can import"
        )
    if "." in qualname and "<locals>" not in qualname:
        # A staticmethod or plain class attribute: its copied source would
        # lose the class around it (and a module cannot import "A.f").
        raise CodefileError(
            f"{qualname} is defined in a class; use a top-level function, or "
            "a module it can import"
        )
    loaded_from = _path_module_file(func)
    if loaded_from is not None and prefer != "source":
        # Its module name exists only in this process: load it by path again.
        prefer = "path"
    elif prefer == "import" and _importable(func):
        return _import_code(func, own_name, name)
    if own_name == "<lambda>" or "<locals>" in qualname:
        raise CodefileError(
            f"{func!r:.60} is a lambda or nested function; define it with def "
            "at the top level of a module so it can be saved"
        )
    if prefer == "path":
        filename = loaded_from or inspect.getsourcefile(func)
        if filename is None:
            raise CodefileError(f"{own_name} has no source file to load it from")
        code = render(
            FUNCTION_FROM_PATH,
            name=name,
            path=literal(os.path.abspath(filename)),
            attribute=literal(own_name),
        )
        return FunctionCode("path", name, code)
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        if _importable(func):
            return _import_code(func, own_name, name)
        raise CodefileError(
            f"the source of {own_name} is not available and it cannot be "
            "imported; put it in a module file"
        ) from None
    return FunctionCode("source", own_name, render(FUNCTION_SOURCE, source=source))


def assemble(parts: Iterable[str]) -> str:
    """Join rendered parts into one module source and check its syntax.

    Parts are joined by newlines; the result ends with one newline. Raises
    CodefileError (with the line number) when the result is not valid Python.
    """
    text = "\n".join(part.rstrip("\n") for part in parts) + "\n"
    try:
        compile(text, "<papy pipeline>", "exec")
    except SyntaxError as error:
        raise CodefileError(
            f"generated pipeline source is not valid Python (line {error.lineno}: "
            f"{error.msg})"
        ) from error
    return text


def import_from_path(path: str | os.PathLike[str], attribute: str) -> Any:
    """Load the Python file at ``path`` and return its ``attribute``.

    Used by saved pipelines for functions whose module is not importable.
    Each file is executed once per process; later calls reuse the module.
    Raises FileNotFoundError for a missing file and AttributeError (naming
    the file) when the attribute is not defined in it.
    """
    full_path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(full_path):
        raise FileNotFoundError(f"import_from_path: no such file {full_path!r}")
    module = _load_path_module(full_path)
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise AttributeError(f"{full_path!r} does not define {attribute!r}") from None


def _load_path_module(full_path: str) -> ModuleType:
    module = _PATH_MODULES.get(full_path)
    if module is not None:
        return module
    stem = os.path.splitext(os.path.basename(full_path))[0]
    unique = f"_papy_path_{len(_PATH_MODULES)}_{stem}"
    spec = importlib.util.spec_from_file_location(unique, full_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"import_from_path: cannot load {full_path!r} as Python")
    module = importlib.util.module_from_spec(spec)
    # Registered before running, so dataclasses in the file and pickling by
    # reference can find their module. Only forked workers inherit this
    # entry: a spawned or remote worker cannot import that name, so a
    # function pickled by reference fails to unpickle there (the error
    # names this module).
    sys.modules[unique] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[unique]
        raise
    _PATH_MODULES[full_path] = module
    return module
