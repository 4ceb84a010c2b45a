"""The ``imports`` decorator: import statements attached to a function."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from numap._protocol import import_into

F = TypeVar("F", bound=Callable)


def imports(modules: Sequence[str], forgive: bool = False) -> Callable[[F], F]:
    """Attach imports to a function, in its module-level (global) namespace.

    modules: a list of module names. Each entry is one import; a
      comma-separated entry lists alternatives tried in order, the first
      that imports wins. The names bound are:

      - ``'foo'`` binds ``foo`` (``import foo``);
      - ``'foo.oof'`` binds ``oof`` (``import foo.oof as oof``);
      - ``'foo,bar'`` binds ``foo`` if foo imports, else ``bar``
        (``try: import foo / except ImportError: import bar``);
      - ``'foo.oof,bar.rab'`` binds ``oof`` to whichever imports
        (``import foo.oof as oof`` / ``import bar.rab as oof``): a dotted
        alternative always binds the last component of the entry's FIRST
        alternative.
    forgive: [default: False] if True, an entry none of whose alternatives
      imports is skipped instead of raising ImportError.

    Raises TypeError, naming the argument, when modules is not a list of
    str; ImportError when an entry does not import (unless forgive).

    The imports run once when the function is decorated, and again in every
    worker process (local or remote) before the function's first call
    there, so a function shipped by value to a fresh interpreter finds its
    modules. Attach every import a function needs, even when another
    function of the same module already has it.
    """
    if isinstance(modules, str):
        raise TypeError(
            "imports(modules): modules must be a list of module names, "
            f"not the string {modules!r}; write imports([{modules!r}])"
        )
    if not isinstance(modules, Iterable):
        raise TypeError(
            "imports(modules): modules must be a list of module names, "
            f"e.g. imports(['math']), not {modules!r}"
        )
    spec = (tuple(modules), bool(forgive))
    for name in spec[0]:
        if not isinstance(name, str):
            raise TypeError(
                "imports(modules): each entry of modules is a module name "
                f"(a str, e.g. 'math' or 'foo,bar'), not {name!r}"
            )

    def decorate(func: F) -> F:
        namespace = getattr(getattr(func, "func", func), "__globals__", None)
        if namespace is not None:
            import_into(namespace, spec[0], spec[1])
        func.__numap_imports__ = spec  # type: ignore[attr-defined]
        return func

    return decorate
