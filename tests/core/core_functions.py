"""Importable worker functions for the papy.core tests (and saved pipelines)."""

import math


def first(inbox):
    return inbox[0]


def scale(inbox, factor=1, offset=0):
    return inbox * factor + offset


def square_root(inbox):
    return math.sqrt(inbox)


def both(inbox):
    return tuple(inbox)


def pair(inbox):
    return (inbox[0], -inbox[0])


def total(inbox):
    return sum(sum(e) if isinstance(e, tuple) else e for e in inbox)
