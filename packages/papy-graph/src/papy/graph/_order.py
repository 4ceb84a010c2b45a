"""A total order over arbitrary ``branch`` labels.

Python 3 refuses to compare most values of different types (``1 < "a"``
raises), but sorting branches must never raise. ``branch_sort_key`` maps any
label to a key that always compares:

1. ``None`` (no branch) sorts first, as it did under Python 2.
2. Real numbers (``bool``, ``int``, ``float``, ``Fraction``, ``Decimal``)
   come next, compared by value; NaN sorts after every other number.
3. Every other label is grouped by its type's qualified name
   (``module.QualName``) and the groups are sorted by that name. Within a
   group, tuples and lists are compared element by element with these same
   rules (a list inside itself counts there as an empty list), sets and
   frozensets by their members in this order; other values with their own
   ``<``, falling back to comparing their ``repr`` when ``<`` raises.

Labels of one type should have a total order of their own (as numbers and
strings do) for the result to be meaningful; the sort never raises anyway.
"""

from __future__ import annotations

from decimal import Decimal
from numbers import Real
from typing import Any

_NO_BRANCH = 0
_NUMBER = 1
_NOT_A_NUMBER = 2
_BY_TYPE = 3


class _SameTypeLabel:
    """Wraps a label so that labels of one type compare without raising.

    A pair the type cannot order (``<`` raises TypeError) is compared by
    ``repr`` for equality too, so that equality and order always agree.
    """

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _SameTypeLabel):
            return NotImplemented
        try:
            self.value < other.value  # noqa: B015 - probes orderability
            return bool(self.value == other.value)
        except Exception:
            return repr(self.value) == repr(other.value)

    def __lt__(self, other: _SameTypeLabel) -> bool:
        try:
            return bool(self.value < other.value)
        except Exception:
            return repr(self.value) < repr(other.value)

    __hash__ = None  # type: ignore[assignment]


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def branch_sort_key(label: Any) -> tuple[Any, ...]:
    """Return a key for ``label`` that compares with any other label's key."""
    return _sort_key(label, enclosing=())


def _sort_key(label: Any, enclosing: tuple[int, ...]) -> tuple[Any, ...]:
    """``branch_sort_key`` of ``label`` found inside the containers whose
    ids are ``enclosing``.

    A list can contain itself (directly or through tuples and other lists);
    such an inner reference gets the key of an empty container of its type,
    as ``repr`` shows it as ``[...]``, so the key stays finite.
    """
    if label is None:
        return (_NO_BRANCH,)
    if isinstance(label, Decimal):
        return (_NOT_A_NUMBER,) if label.is_nan() else (_NUMBER, label)
    if isinstance(label, Real):
        if label != label:  # NaN is the only number unequal to itself
            return (_NOT_A_NUMBER,)
        return (_NUMBER, label)
    if isinstance(label, (tuple, list, set, frozenset)):
        if id(label) in enclosing:
            return (_BY_TYPE, _type_name(label), ())
        inner = (*enclosing, id(label))
        items = [_sort_key(item, inner) for item in label]
        if isinstance(label, (set, frozenset)):
            # Sets are only partially ordered by <; compare their sorted members.
            items.sort()
        return (_BY_TYPE, _type_name(label), tuple(items))
    return (_BY_TYPE, _type_name(label), _SameTypeLabel(label))


def compare_labels(label1: Any, label2: Any) -> int:
    """Return -1, 0 or 1 as ``label1`` sorts before, with or after ``label2``."""
    key1 = branch_sort_key(label1)
    key2 = branch_sort_key(label2)
    if key1 < key2:
        return -1
    if key2 < key1:
        return 1
    return 0
