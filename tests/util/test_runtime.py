"""get_runtime: one process-wide dictionary."""

import multiprocessing

import pytest
from papy.util import runtime
from papy.util.runtime import get_runtime


def _report_and_change(queue):
    shared = get_runtime()
    queue.put(dict(shared))
    shared["child"] = True


@pytest.mark.timeout(20)
def test_one_dictionary_per_process():
    shared = get_runtime()
    assert shared is get_runtime() is runtime.PAPY_RUNTIME
    shared["test_key"] = 1
    try:
        assert get_runtime()["test_key"] == 1
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        process = context.Process(target=_report_and_change, args=(queue,))
        process.start()
        seen_by_child = queue.get(timeout=15)
        process.join(15)
        assert process.exitcode == 0
        assert seen_by_child["test_key"] == 1  # forked: a copy
        assert "child" not in get_runtime()  # not shared back
    finally:
        del shared["test_key"]
