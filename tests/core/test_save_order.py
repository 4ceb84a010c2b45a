"""In a saved file, what a copied def statement evaluates (decorators,
defaults) comes before it and what its body uses may come after it, so a
body can reach the function itself (or one still being copied) through an
alias or a partial."""

import pytest
from saved_scripts import SAVE_OR_LOAD, save_then_load

SCRIPT = (
    """
import functools
import sys

from numap import NuMap
from papy.core import Dagger, Piper, Plumber, Worker, load_pipeline

LIMIT = 1000


def countdown(inbox):
    value = inbox[0]
    return 0 if value <= 0 else 1 + again((value - 1,))


again = countdown


def collatz_steps(inbox, steps=0):
    value = inbox[0]
    if value == 1 or steps > LIMIT:
        return steps
    following = value // 2 if value % 2 == 0 else 3 * value + 1
    return next_step((following,), steps=steps + 1)


next_step = functools.partial(collatz_steps)


def mark(function):
    function.tag = "marked"
    return function


def tagged(function):
    return mark(function)


@tagged
def with_tag(inbox, limit=LIMIT):
    return (inbox[0], with_tag.tag, limit)


numap = NuMap(worker_type="process", worker_num=2)
pipeline = Plumber(
    pipers=[
        Piper(Worker(countdown), parallel=numap, name="a"),
        Piper(Worker(collatz_steps), parallel=numap, name="b"),
        Piper(Worker(with_tag), name="c"),
    ]
)
INPUTS = [[3, 6], [3, 6], [3, 6]]
"""
    + SAVE_OR_LOAD
)


@pytest.mark.timeout(40)
def test_a_function_body_may_use_itself_through_an_alias_or_a_partial(tmp_path):
    before, text, after = save_then_load(tmp_path, SCRIPT)
    assert text.index("def countdown(") < text.index("again = countdown")
    assert text.index("def collatz_steps(") < text.index("functools.partial(")
    assert text.index("LIMIT = 1000") < text.index("def with_tag(")
    assert text.index("def mark(") < text.index("def with_tag(")
    assert before == after
    assert "[3, 6]" in after
    assert "[7, 8]" in after
    assert "[(3, 'marked', 1000), (6, 'marked', 1000)]" in after
