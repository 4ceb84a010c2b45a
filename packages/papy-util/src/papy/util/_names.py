"""How papy.util's error messages name the type of a value."""

from __future__ import annotations

from typing import Any


def type_name(value: Any) -> str:
    """The name of ``value``'s type as a message shows it.

    Built-in types by their plain name (``str``, ``list``); others with
    their module (``collections.OrderedDict``, ``mymodule.Point``), so that
    two classes of the same name cannot be told apart only by guessing.
    """
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"
