"""Pipers that share a name are told apart in `papy run`'s summary."""

from __future__ import annotations

import re

import pytest
from cli_helpers import PIPELINES


@pytest.mark.timeout(60)
def test_summary_numbers_pipers_that_share_a_name(papy):
    result = papy("run", str(PIPELINES / "same_names.py"))
    assert result.status == 3, result.output  # the odd items failed
    summaries = re.findall(r"\] piper summary .*", result.stdout)
    assert len(summaries) == 4, result.stdout
    pipers = sorted(re.search(r"piper=(\S+)", line)[1] for line in summaries)
    # numbered upstream first within each name: inc[1] is the input Piper
    assert pipers == ["fail_odd[1]", "fail_odd[2]", "inc[1]", "inc[2]"]
    for line in summaries:
        expected_errors = 5 if "fail_odd" in line else 0
        assert f"errors={expected_errors} items_in=10 items_out=10 " in line
    first_input = next(line for line in summaries if "piper=inc[1]" in line)
    assert summaries[0] == first_input
    # the failed items name the output Piper they left through the same way
    assert re.search(r"^  fail_odd\[[12]\] result #\d+: ", result.stderr, re.M)
