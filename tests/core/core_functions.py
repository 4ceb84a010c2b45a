"""Importable worker functions for the papy.core tests (and saved pipelines)."""

import math
import sys


def first(inbox):
    return inbox[0]


def scale(inbox, factor=1, offset=0):
    return inbox[0] * factor + offset


def square_root(inbox):
    return math.sqrt(inbox[0])


def both(inbox):
    return tuple(inbox)


def pair(inbox):
    return (inbox[0], -inbox[0])


def total(inbox):
    return sum(sum(e) if isinstance(e, tuple) else e for e in inbox)


def flatten(inbox):
    """Every number in an inbox, in order (entries may be tuples)."""
    values = []
    for entry in inbox:
        if isinstance(entry, tuple):
            values.extend(entry)
        else:
            values.append(entry)
    return values


def mix(inbox, salt, produce=1, repeat=False):
    """An order-sensitive function that fails on some inputs.

    Returns ``produce`` numbers (a tuple) unless produce is 1 or repeat.
    """
    value = salt
    for position, number in enumerate(flatten(inbox), 1):
        value = (value * 31 + position * number) % 1009
    if value % 11 == 3:
        raise ValueError(f"unlucky {value}")
    if produce == 1 or repeat:
        return value
    return tuple((value + j) % 1009 for j in range(produce))


def sleepy(inbox, slow=(), seconds=1.0):
    """Returns the item; sleeps ``seconds`` first for items in ``slow``."""
    import time

    if inbox[0] in slow:
        time.sleep(seconds)
    return inbox[0]


def fail_on(inbox, bad=()):
    if inbox[0] in bad:
        raise ValueError(f"bad item {inbox[0]}")
    return inbox[0]


def busy(inbox, seconds=0.0002):
    """Burns about ``seconds`` of CPU and returns the item."""
    import time

    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass
    return inbox[0]


def exit_on(inbox, bad=()):
    """sys.exit(3) for the items in ``bad``; the item itself otherwise."""
    if inbox[0] in bad:
        sys.exit(3)
    return inbox[0]


def die_on(inbox, bad=()):
    """Ends the worker process at once (os._exit, no cleanup) for the items
    in ``bad``; the item itself otherwise."""
    import os

    if inbox[0] in bad:
        os._exit(3)
    return inbox[0]


def plus(inbox, number=1):
    return inbox[0] + number
