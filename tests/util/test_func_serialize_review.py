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
