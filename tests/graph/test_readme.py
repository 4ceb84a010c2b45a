"""The usage example in packages/papy-graph/README.md runs and shows true values."""

import ast
import re
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "packages" / "papy-graph" / "README.md"


def example_source():
    text = README.read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", text, re.DOTALL).group(1)


@pytest.mark.timeout(10)
def test_readme_example_values(capsys):
    source = example_source()
    lines = source.splitlines()
    namespace = {}
    checked = 0
    for statement in ast.parse(source).body:
        code = compile(ast.Module([statement], []), "README.md", "exec")
        if isinstance(statement, ast.Expr):
            comment = lines[statement.end_lineno - 1].partition("  # ")[2]
            expression = ast.Expression(statement.value)
            value = eval(compile(expression, "README.md", "eval"), namespace)
            if comment:
                assert value == ast.literal_eval(comment), comment
                checked += 1
        else:
            exec(code, namespace)
    assert checked >= 5
    printed = capsys.readouterr().out.strip()
    expected = lines[-1].partition("  # ")[2]
    assert ast.literal_eval(printed) == ast.literal_eval(expected)
