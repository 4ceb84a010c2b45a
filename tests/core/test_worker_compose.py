"""Workers composed of papy.util.func functions, as in PaPy 1.x: each takes
an inbox, and a later function's inbox is a 1-tuple of the previous result,
so serializers and their loaders compose into round trips."""

import pytest
from numap import NuMap
from papy.core import Piper, Plumber, Worker
from papy.util.func import (
    dump_item,
    json_dumps,
    json_loads,
    load_item,
    pickle_dumps,
    pickle_loads,
)
from test_save import run

ROUND_TRIPS = {
    "pickle": (pickle_dumps, pickle_loads),
    "json": (json_dumps, json_loads),
    "pickle_file": (pickle_dumps, dump_item, load_item, pickle_loads),
}
ITEMS = [{"a": number, "b": [number, "x" * number]} for number in range(7)]


@pytest.mark.timeout(10)
@pytest.mark.parametrize("functions", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_util_functions_compose_in_one_worker(functions):
    worker = Worker(functions)
    assert worker(({"a": 1},)) == {"a": 1}


@pytest.mark.timeout(10)
@pytest.mark.parametrize("functions", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_round_trip_on_a_linear_piper(functions):
    piper = Piper(Worker(functions), name="round_trip")
    assert run(Plumber(pipers=[piper]), [ITEMS]) == [ITEMS]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("functions", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_round_trip_on_a_process_piper(functions):
    processes = NuMap(worker_type="process", worker_num=2)
    piper = Piper(Worker(functions), parallel=processes, name="round_trip")
    assert run(Plumber(pipers=[piper]), [ITEMS]) == [ITEMS]


@pytest.mark.timeout(10)
def test_written_file_is_removed_by_the_loader(tmp_path):
    worker = Worker(
        (pickle_dumps, dump_item, load_item, pickle_loads),
        kwargs=({}, {"dir": str(tmp_path)}, {}, {}),
    )
    assert worker((ITEMS[3],)) == ITEMS[3]
    assert list(tmp_path.iterdir()) == []
