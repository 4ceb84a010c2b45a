"""codefile: templates render valid Python that rebuilds what was saved."""

import cmath
import collections
import enum
import json
import math
import textwrap

import pytest
from hypothesis import given
from hypothesis import strategies as st
from papy.util import codefile
from papy.util.codefile import (
    CodefileError,
    Reference,
    arguments,
    assemble,
    function_code,
    import_from_path,
    literal,
    render,
)


def triple(inbox, factor=3):
    """A top-level function saved by source in the tests."""
    return inbox[0] * factor


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.binary()
)
literals = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner)
        | st.tuples(inner, inner)
        | st.tuples(inner)
        | st.dictionaries(st.text() | st.integers(), inner)
    ),
    max_leaves=12,
)


@pytest.mark.timeout(30)
@given(literals)
def test_literal_round_trips(value):
    assert eval(literal(value)) == value  # noqa: S307 - the point of the test


@pytest.mark.timeout(10)
def test_literal_special_values_and_references():
    assert math.isnan(eval(literal(float("nan"))))
    assert eval(literal(float("-inf"))) == float("-inf")
    assert eval(literal({1, 2})) == {1, 2}
    assert eval(literal(frozenset())) == frozenset()
    assert literal((Reference("worker_0"), "worker_0")) == "(worker_0, 'worker_0')"
    with pytest.raises(CodefileError, match="object"):
        literal(object())
    with pytest.raises(CodefileError, match="identifier"):
        Reference("not a name")


@pytest.mark.timeout(10)
@pytest.mark.parametrize("name", ["class", "None", "not-an-id", "1x", "", "__debug__"])
def test_references_and_keyword_names_must_be_names_python_can_bind(name):
    with pytest.raises(CodefileError, match="Reference name must be a Python ident"):
        Reference(name)
    with pytest.raises(CodefileError, match="keyword argument name must be a Python"):
        arguments(**{name: 1})


class Color(enum.IntEnum):
    RED = 1


Point = collections.namedtuple("Point", "x y")


class Name(str):
    pass


def contains_itself():
    items = [1]
    items.append(items)
    return items


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("value", "match"),
    [
        (Color.RED, "Color value"),  # repr() is no literal: was a SyntaxError
        (Point(1, 2), "Point value"),  # was written as a plain tuple
        (collections.defaultdict(list, a=[1]), "collections.defaultdict value"),
        (collections.OrderedDict(a=1), "collections.OrderedDict value"),
        (Name("x"), "Name value"),  # was written as a plain str
        ([1, {"key": Color.RED}], "Color value"),
        ({Point(1, 2): 0}, "Point value"),
        (contains_itself(), "contains itself"),
        (nested(100_000), "nested this deeply"),
    ],
    ids=[
        "IntEnum",
        "namedtuple",
        "defaultdict",
        "OrderedDict",
        "str-subclass",
        "IntEnum-inside",
        "namedtuple-key",
        "self-containing",
        "too-deep",
    ],
)
def test_literal_refuses_values_it_cannot_write_back(value, match):
    with pytest.raises(CodefileError, match=match) as caught:
        literal(value)
    assert "convert" in str(caught.value) or "saved function" in str(caught.value)


@pytest.mark.timeout(10)
def test_literal_writes_non_finite_complex_and_very_long_ints():
    back = eval(literal(complex(float("nan"), 0)))  # noqa: S307
    assert type(back) is complex and cmath.isnan(back) and back.imag == 0
    assert eval(literal(complex(1, float("-inf")))) == complex(1, float("-inf"))  # noqa: S307
    huge = -(10**5000)  # more digits than repr() of an int may have
    assert eval(literal([huge])) == [huge]  # noqa: S307


def same(left, right):
    """Equal, and of the same exact types all the way down."""
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return list(left) == list(right) and all(
            same(left[key], right[key]) for key in left
        )
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(map(same, left, right))
    return left == right


exact_literals = st.recursive(
    scalars | st.complex_numbers(allow_nan=False),
    lambda inner: (
        st.lists(inner)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text() | st.integers(), inner)
        | st.sets(st.integers() | st.text())
        | st.frozensets(st.binary())
    ),
    max_leaves=12,
)


@pytest.mark.timeout(30)
@given(exact_literals)
def test_literal_round_trips_with_the_exact_types(value):
    assert same(eval(literal(value)), value)  # noqa: S307 - the point of the test


@pytest.mark.timeout(10)
def test_render_names_a_missing_placeholder():
    assert render(codefile.NUMAP, name="numap_0", arguments="") == "numap_0 = NuMap()"
    with pytest.raises(CodefileError, match="'arguments'"):
        render(codefile.WORKER, name="w")


@pytest.mark.timeout(10)
def test_every_template_renders_valid_python():
    parts = [
        render(codefile.HEADER, title="demo", version="2.0", date="today"),
        render(codefile.IMPORTS, extra="import json"),
        render(codefile.SECTION, title="functions"),
        render(codefile.FUNCTION_IMPORT, module="json", attribute="dumps"),
        render(codefile.FUNCTION_IMPORT_AS, module="json", attribute="loads", name="x"),
        render(codefile.FUNCTION_FROM_PATH, name="f", path="'/a.py'", attribute="'f'"),
        render(codefile.FUNCTION_SOURCE, source="def g(inbox):\n    return 1\n"),
        render(codefile.NUMAP, name="n", arguments=arguments(worker_num=2)),
        render(
            codefile.WORKER,
            name="w",
            arguments=arguments((Reference("g"),), ((),), ({"k": {"a": 1}},)),
        ),
        render(codefile.PIPER, name="p", arguments=arguments(Reference("w"))),
        render(codefile.PIPELINE, name=codefile.PIPELINE_NAME, arguments=""),
        render(codefile.PIPER_ADD, pipeline="pipeline", arguments="p"),
        render(codefile.PIPE, pipeline="pipeline", arguments="(p, p)"),
    ]
    source = assemble(parts)
    assert source.endswith("\n") and not source.endswith("\n\n")
    assert "EXECUTES" in source
    assert "w = Worker((g,), ((),), ({'k': {'a': 1}},))" in source


@pytest.mark.timeout(10)
def test_assemble_rejects_invalid_source():
    with pytest.raises(CodefileError, match="line 2"):
        assemble(["x = 1", "def ("])


@pytest.mark.timeout(10)
def test_function_code_import_source_and_path_rebuild_working_functions(tmp_path):
    imported = function_code(json.dumps)
    assert imported.kind == "import" and imported.code == "from json import dumps"

    copied = function_code(triple, prefer="source")
    assert copied.kind == "source" and copied.code.startswith("def triple(")

    module_file = tmp_path / "user_functions.py"
    module_file.write_text("def double(inbox):\n    return inbox[0] * 2\n")
    namespace: dict = {}
    exec(compile(module_file.read_text(), str(module_file), "exec"), namespace)  # noqa: S102
    by_path = function_code(namespace["double"], prefer="path")
    assert by_path.kind == "path"

    source = assemble(
        [
            "from papy.util.codefile import import_from_path",
            imported.code,
            copied.code,
            by_path.code,
            "result = (dumps([1]), triple((2,)), double((5,)))",
        ]
    )
    built: dict = {}
    exec(compile(source, "saved.py", "exec"), built)  # noqa: S102
    assert built["result"] == ("[1]", 6, 10)


@pytest.mark.timeout(10)
def test_function_code_refuses_lambdas_and_nested_functions():
    def nested(inbox):
        return inbox

    with pytest.raises(CodefileError, match="lambda or nested"):
        function_code(lambda inbox: inbox, prefer="source")
    with pytest.raises(CodefileError, match="lambda or nested"):
        function_code(nested)
    with pytest.raises(CodefileError, match="prefer"):
        function_code(triple, prefer="magic")


@pytest.mark.timeout(10)
def test_import_from_path_loads_once_and_names_missing_things(tmp_path):
    module_file = tmp_path / "counted.py"
    module_file.write_text(
        textwrap.dedent(
            """
            LOADS = []
            LOADS.append(1)
            def inc(inbox):
                return inbox[0] + 1
            """
        )
    )
    inc = import_from_path(module_file, "inc")
    assert inc((1,)) == 2
    assert import_from_path(str(module_file), "LOADS") == [1]
    with pytest.raises(AttributeError, match="'missing'"):
        import_from_path(module_file, "missing")
    with pytest.raises(FileNotFoundError, match="no such file"):
        import_from_path(tmp_path / "absent.py", "inc")


@pytest.mark.timeout(10)
def test_functions_loaded_by_path_are_saved_by_path(tmp_path):
    module_file = tmp_path / "by_path.py"
    module_file.write_text("def negate(inbox):\n    return -inbox[0]\n")
    negate = import_from_path(module_file, "negate")
    code = function_code(negate)
    assert code.kind == "path"
    assert repr(str(module_file)) in code.code
    built: dict = {}
    exec(  # noqa: S102
        assemble(["from papy.util.codefile import import_from_path", code.code]),
        built,
    )
    assert built["negate"]((4,)) == -4
    assert function_code(negate, prefer="source").kind == "source"


@pytest.mark.timeout(10)
def test_importable_module_is_the_rule_function_code_imports_by(tmp_path):
    import os.path
    import sys
    import types

    assert codefile.importable_module(json)
    assert codefile.importable_module(os.path, "os.path")
    assert codefile.importable_module(os.path)  # posixpath, under its own name
    assert not codefile.importable_module(json, "os.path")  # another module
    assert not codefile.importable_module(json, "no_such_module_here")
    assert not codefile.importable_module(types.ModuleType("made_by_hand"))
    assert not codefile.importable_module(sys.modules["__main__"], "__main__")
    module_file = tmp_path / "loaded_by_path.py"
    module_file.write_text("def negate(inbox):\n    return -inbox[0]\n")
    negate = import_from_path(module_file, "negate")
    path_module = sys.modules[negate.__module__]
    assert path_module.__spec__ is not None  # registered, yet not importable
    assert not codefile.importable_module(path_module)
    assert function_code(negate).kind == "path"


@pytest.mark.timeout(10)
def test_function_code_binds_the_name_it_is_given(tmp_path):
    imported = function_code(json.dumps, name="to_json")
    assert imported == codefile.FunctionCode(
        "import", "to_json", "from json import dumps as to_json"
    )
    assert function_code(json.dumps, name="dumps").code == "from json import dumps"
    module_file = tmp_path / "named.py"
    module_file.write_text("def negate(inbox):\n    return -inbox[0]\n")
    negate = import_from_path(module_file, "negate")
    by_path = function_code(negate, name="minus")
    assert by_path.kind == "path" and by_path.name == "minus"
    built: dict = {}
    source = assemble(
        ["from papy.util.codefile import import_from_path", imported.code, by_path.code]
    )
    exec(source, built)  # noqa: S102
    assert built["to_json"]([1]) == "[1]" and built["minus"]((4,)) == -4
    # A copied def binds its own name, whatever name is asked for.
    copied = function_code(triple, prefer="source", name="thrice")
    assert copied.kind == "source" and copied.name == "triple"
    for wrong in ("not a name", "class", "__debug__", 3):
        with pytest.raises(CodefileError, match="name must be a Python identifier"):
            function_code(json.dumps, name=wrong)
