"""Error messages across papy.util name a value's type the same way."""

import pytest
from papy.util import codefile, func, script


class Opaque:
    """A class of this test module: messages name it with its module."""

    def method(self):
        """Bound to an Opaque, which codefile cannot save."""


QUALIFIED = f"{Opaque.__module__}.{Opaque.__qualname__}"


def _message(call):
    with pytest.raises((TypeError, ValueError, codefile.CodefileError)) as caught:
        call()
    return str(caught.value)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("call", "expected"),
    [
        pytest.param(
            lambda: func.json_dumps((Opaque(),)), f"(a {QUALIFIED})", id="json_dumps"
        ),
        pytest.param(
            lambda: func.load_item((Opaque(),)), f"got {QUALIFIED}", id="load_item"
        ),
        pytest.param(
            lambda: func.ipasser((1,), Opaque()), f"got {QUALIFIED}", id="ipasser"
        ),
        pytest.param(
            lambda: script.script(("x",), Opaque()), f"got {QUALIFIED}", id="script"
        ),
        pytest.param(
            lambda: codefile.literal(Opaque()),
            f"write {QUALIFIED} value",
            id="codefile",
        ),
        pytest.param(
            lambda: codefile.function_code(Opaque().method),
            f"bound to a {QUALIFIED} object",
            id="function_code",
        ),
    ],
)
def test_other_types_are_named_with_their_module(call, expected):
    assert expected in _message(call)


@pytest.mark.timeout(10)
def test_builtin_types_are_named_plainly():
    assert "got int" in _message(lambda: func.json_loads((3,)))
    assert "got list" in _message(lambda: func.load_item(([],)))
