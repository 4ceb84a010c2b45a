"""Linear Pipers: item streams, errors, state rules."""

import pytest
from core_reference import ERR, normalize, piper_outputs
from hypothesis import given
from hypothesis import strategies as st
from numap import NuMap
from papy.core import Piper, PiperError, Worker, WorkerError


def first(inbox):
    return inbox[0]


def double(inbox):
    return inbox[0] * 2


def pair(inbox):
    return (inbox[0], -inbox[0])


def total(inbox):
    return sum(sum(entry) if isinstance(entry, tuple) else entry for entry in inbox)


def fail_on_3(inbox):
    if inbox[0] == 3:
        raise ValueError("three")
    return inbox[0]


def run(piper, data):
    piper.connect([data])
    piper.start()
    return [normalize(item) for item in piper]


@pytest.mark.timeout(5)
def test_linear_piper_maps_lazily():
    pulled = []

    def source():
        for i in range(5):
            pulled.append(i)
            yield i

    piper = Piper(double)
    piper.connect([source()])
    piper.start()
    assert pulled == []
    assert piper.next() == 0
    assert pulled == [0]
    assert list(piper) == [2, 4, 6, 8]


@pytest.mark.timeout(5)
def test_produce_unrolls_and_consume_groups():
    assert run(Piper(pair, produce=2), range(3)) == [0, 0, 1, -1, 2, -2]
    assert run(Piper(first, produce=3, repeat=True), "ab") == list("aaabbb")
    assert run(Piper(first, consume=2), range(5)) == [(0, 1), (2, 3), (4,)]


@pytest.mark.timeout(5)
def test_produce_with_wrong_result_length_fills_slots_with_errors():
    out = run(Piper(first, produce=2), [(1, 2), (3,), (4, 5)])
    assert out == [1, 2, ERR, ERR, 4, 5]


@pytest.mark.timeout(5)
def test_spawn_keeps_input_order():
    assert run(Piper(double, spawn=3), range(10)) == [2 * i for i in range(10)]


@pytest.mark.timeout(5)
def test_errors_flow_downstream_and_never_stop_the_stream():
    a = Piper(fail_on_3)
    b = Piper(double)
    c = Piper(first)
    a.connect([range(6)])
    b.connect([a])
    c.connect([b])
    for piper in (a, b, c):
        piper.start()
    out = list(c)
    assert [normalize(x) for x in out] == [0, 2, 4, ERR, 8, 10]
    error = out[3]
    assert isinstance(error, PiperError)
    assert isinstance(error.exception, WorkerError)
    assert isinstance(error.exception.exception, ValueError)
    assert a.stats["errors"] == 1 and c.stats["errors"] == 1
    assert c.stats["items_in"] == 6 and c.stats["items_out"] == 6


@pytest.mark.timeout(5)
def test_debug_raises():
    piper = Piper(fail_on_3, debug=True)
    piper.connect([range(6)])
    piper.start()
    assert [piper.next() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(PiperError):
        piper.next()


@pytest.mark.timeout(5)
def test_several_upstreams_are_zipped_in_connect_order_and_fanned_out():
    a = Piper(first)
    b = Piper(double)
    c = Piper(Worker(lambda inbox: inbox))
    d = Piper(total)
    a.connect([range(4)])
    b.connect([range(4)])
    c.connect([a, b])
    d.connect([b])
    for piper in (a, b, c, d):
        piper.start()
    assert list(c) == [(0, 0), (1, 2), (2, 4), (3, 6)]
    assert list(d) == [0, 2, 4, 6]


@pytest.mark.timeout(5)
def test_state_rules():
    piper = Piper(first)
    with pytest.raises(PiperError, match="connect"):
        piper.start()
    with pytest.raises(PiperError, match="start"):
        piper.next()
    with pytest.raises(PiperError, match="not connected"):
        piper.disconnect()
    with pytest.raises(PiperError, match="only a started"):
        piper.stop()
    piper.connect([range(3)])
    with pytest.raises(PiperError, match="already connected"):
        piper.connect([range(3)])
    piper.start()
    with pytest.raises(PiperError, match="already started"):
        piper.start()
    assert list(piper) == [0, 1, 2]
    piper.stop()
    piper.disconnect()
    assert piper.state == "new"
    assert run(piper, range(2)) == [0, 1]


@pytest.mark.timeout(5)
def test_downstream_of_unconnected_or_unstarted_upstream_is_refused():
    a = Piper(first)
    b = Piper(first)
    with pytest.raises(PiperError, match="not connected"):
        b.connect([a])
    a.connect([range(3)])
    b.connect([a])
    b.start()
    with pytest.raises(PiperError, match="start upstream"):
        b.next()


@pytest.mark.timeout(5)
@pytest.mark.parametrize(
    "kwargs",
    [
        {"consume": 0},
        {"produce": -1},
        {"spawn": 1.5},
        {"parallel": True},
        {"timeout": -1},
    ],
)
def test_invalid_arguments(kwargs):
    with pytest.raises(PiperError):
        Piper(first, **kwargs)


@pytest.mark.timeout(5)
def test_imap_and_parallel_name_the_numap_or_linear():
    numap = NuMap(worker_type="thread", worker_num=1)
    parallel = Piper(first, parallel=numap)
    assert parallel.imap is numap and parallel.parallel is numap
    for linear in (Piper(first), Piper(first, parallel=None)):
        assert linear.imap is None and linear.parallel is False


@pytest.mark.timeout(5)
def test_piper_from_piper_and_functions():
    assert Piper(Piper(double)).worker.task == (double,)
    # the second function reads the first one's result as inbox[0]
    assert run(Piper((first, double)), [-1, -2]) == [-2, -4]


@pytest.mark.timeout(60)
@given(
    data=st.lists(st.integers(-5, 5), max_size=25),
    consume=st.integers(1, 3),
    produce=st.integers(1, 3),
    spawn=st.integers(1, 3),
    repeat=st.booleans(),
)
def test_single_linear_piper_matches_reference(data, consume, produce, spawn, repeat):
    def function(inbox):
        value = total(inbox)
        if value == 3:
            raise ValueError("three")
        return value if repeat else tuple(value + j for j in range(produce))

    settings = {"consume": consume, "produce": produce, "spawn": spawn}
    piper = Piper(function, repeat=repeat, **settings)
    expected = piper_outputs(function, [data], 1, consume, produce, repeat)
    if produce == 1 and not repeat:
        expected = [x if x == ERR else x[0] for x in expected]
        piper = Piper(lambda inbox: function(inbox)[0], consume=consume, spawn=spawn)
    assert run(piper, data) == expected
