"""Four Pipers, two by two with the same (default) name: the run summary must
keep them apart (used by the CLI tests).

``inc`` -> ``inc`` -> ``fail_odd`` and ``inc`` -> ``fail_odd``: each fail_odd
gets 10 items, 5 of them odd.
"""

from papy.core import Piper, Plumber, Worker


def inc(inbox):
    return inbox[0] + 1


def fail_odd(inbox):
    if inbox[0] % 2:
        raise ValueError("odd")
    return inbox[0]


a, b = Piper(Worker(inc)), Piper(Worker(inc))
c, d = Piper(Worker(fail_odd)), Piper(Worker(fail_odd))
pipeline = Plumber(pipes=[(a, b, c), (a, d)])


def make_inputs(paths):
    return [range(10)]
