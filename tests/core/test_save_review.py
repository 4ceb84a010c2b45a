"""Plumber.save defects found in review: what copied functions use, methods,
and error messages that name where the unsavable value is."""

import pytest
from papy.core import Piper, Plumber, PlumberError, Worker


class Scaler:
    def __init__(self, k):
        self.k = k

    def scale(self, inbox):
        return inbox[0] * self.k

    @staticmethod
    def negate(inbox):
        return -inbox[0]


@pytest.mark.timeout(10)
def test_bound_methods_and_class_functions_are_refused(tmp_path):
    bound = Plumber(pipers=[Piper(Worker(Scaler(3).scale), name="a")])
    with pytest.raises(PlumberError, match="Scaler.scale is a method bound to"):
        bound.save(tmp_path / "bound.py")
    static = Plumber(pipers=[Piper(Worker(Scaler.negate), name="a")])
    with pytest.raises(PlumberError, match="Scaler.negate is defined in a class"):
        static.save(tmp_path / "static.py")
