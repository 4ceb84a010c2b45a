"""Serialization helpers: errors name the function and keep the cause."""

import json
import pickle
import threading

import pytest
from papy.util.func import json_dumps, json_loads, pickle_dumps, pickle_loads

CASES = [
    pytest.param(
        json_dumps,
        b"x",
        TypeError,
        "json_dumps: the first input",
        id="json_dumps-bytes",
    ),
    pytest.param(
        json_dumps, {"s": {1}}, TypeError, "json_dumps: .*set", id="json_dumps-set"
    ),
    pytest.param(
        json_loads, 3, TypeError, "json_loads: .*str or bytes", id="json_loads-int"
    ),
    pytest.param(
        json_loads,
        "{",
        json.JSONDecodeError,
        "json_loads: .*not valid JSON",
        id="json_loads-bad",
    ),
    pytest.param(
        json_loads,
        b'"\xff"',
        UnicodeDecodeError,
        "json_loads: .*not JSON text",
        id="json_loads-undecodable-bytes",
    ),
    pytest.param(
        pickle_dumps,
        threading.Lock(),
        TypeError,
        "pickle_dumps: .*lock",
        id="pickle_dumps-lock",
    ),
    pytest.param(
        pickle_loads, "x", TypeError, "pickle_loads: .*got str", id="pickle_loads-str"
    ),
    pytest.param(
        pickle_loads,
        b"garbage",
        pickle.UnpicklingError,
        "pickle_loads: ",
        id="pickle_loads-bad",
    ),
    pytest.param(
        pickle_loads, b"", EOFError, "pickle_loads: ", id="pickle_loads-empty"
    ),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("function", "value", "error", "match"), CASES)
def test_serialization_errors_name_the_function_and_keep_the_cause(
    function, value, error, match
):
    with pytest.raises(error, match=match) as caught:
        function((value,))
    assert caught.value.__cause__ is not None


# --- a caller can still catch the subclass the serializer raised ---------


class StateRefused(pickle.UnpicklingError):
    """A subclass a caller may catch by name."""


class NeedsTwoArguments(pickle.UnpicklingError):
    def __init__(self, what, why):
        super().__init__(f"{what}: {why}")


class RewritesItsMessage(TypeError):
    def __str__(self):
        return "always this"


class RefusesItsState:
    """Unpickling it raises the exception class stored in its state."""

    def __init__(self, error):
        self.error = error

    def __setstate__(self, state):
        error = state["error"]
        if error is NeedsTwoArguments:
            raise error("state", "refused")
        raise error("state refused")


class RefusesToPickle:
    def __init__(self, error):
        self.error = error

    def __reduce__(self):
        raise self.error("cannot reduce")


@pytest.mark.timeout(10)
def test_pickle_loads_keeps_the_subclass_raised_while_unpickling():
    data = pickle.dumps(RefusesItsState(StateRefused))
    with pytest.raises(StateRefused, match="pickle_loads: ") as caught:
        pickle_loads((data,))
    assert type(caught.value) is StateRefused
    assert isinstance(caught.value.__cause__, StateRefused)


@pytest.mark.timeout(10)
def test_pickle_dumps_keeps_a_type_error_subclass():
    class Refused(TypeError):
        pass

    with pytest.raises(Refused, match="pickle_dumps: .*RefusesToPickle"):
        pickle_dumps((RefusesToPickle(Refused),))


@pytest.mark.timeout(10)
def test_a_subclass_that_needs_other_arguments_falls_back_to_its_base():
    data = pickle.dumps(RefusesItsState(NeedsTwoArguments))
    with pytest.raises(pickle.UnpicklingError, match="pickle_loads: ") as caught:
        pickle_loads((data,))
    assert type(caught.value) is pickle.UnpicklingError
    assert isinstance(caught.value.__cause__, NeedsTwoArguments)


@pytest.mark.timeout(10)
def test_a_subclass_that_rewrites_its_message_falls_back_to_its_base():
    with pytest.raises(TypeError, match="pickle_dumps: ") as caught:
        pickle_dumps((RefusesToPickle(RewritesItsMessage),))
    assert type(caught.value) is TypeError
    assert isinstance(caught.value.__cause__, RewritesItsMessage)
