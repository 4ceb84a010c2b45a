"""Regression tests for defects found in review of papy.core (connect
rollback, atomic Dagger.connect, stop keywords, uneven join inputs)."""

import itertools
import logging

import pytest
from core_functions import both, first
from numap import NuMap, NuMapError
from papy.core import Dagger, DaggerError, Piper, PiperError, Plumber


def plus_one(inbox):
    return inbox[0] + 1


def started_numap():
    """A thread NuMap already started by a Piper on it, and that Piper."""
    numap = NuMap(worker_type="thread", worker_num=1)
    owner = Piper(plus_one, parallel=numap, name="owner")
    owner.connect([[1]])
    owner.start()
    return numap, owner


def finish(owner):
    assert list(owner) == [2]
    owner.stop(ends=[0])
    owner.disconnect()


# --- 1. a failed Piper.connect is undone -------------------------------------


@pytest.mark.timeout(20)
def test_failed_connect_names_the_piper_and_unregisters_it():
    numap, owner = started_numap()
    upstream = Piper(plus_one, name="u")
    upstream.connect([[1, 2, 3]])
    late = Piper(plus_one, parallel=numap, name="late")
    with pytest.raises(PiperError, match="'late'") as raised:
        late.connect([upstream])
    assert isinstance(raised.value.__cause__, NuMapError)
    assert late.state == "new"
    assert upstream._consumers == []
    upstream.start()
    assert list(upstream) == [2, 3, 4]  # no "feeds downstream Pipers" error
    upstream.stop()
    upstream.disconnect()
    finish(owner)


@pytest.mark.timeout(20)
def test_connect_to_an_unconnected_second_upstream_registers_nothing():
    ready = Piper(first, name="ready")
    ready.connect([[1]])
    unconnected = Piper(first, name="unconnected")
    join = Piper(first, name="join")
    with pytest.raises(PiperError, match="'unconnected' is not connected"):
        join.connect([ready, unconnected])
    assert ready._consumers == []
    ready.start()
    assert list(ready) == [1]


@pytest.mark.timeout(30)
def test_plumber_start_retried_after_a_failed_connect_has_one_reader():
    numap, owner = started_numap()
    head = Piper(plus_one, name="x")
    tail = Piper(plus_one, parallel=numap, name="y")
    plumber = Plumber(pipes=[(head, tail)])
    with pytest.raises(PiperError, match="'y'"):
        plumber.start([[1]])
    assert head._consumers == []
    finish(owner)
    plumber.start([range(50)])
    # One reader: no fan-out Tee whose unread branch would keep every item.
    assert head._consumers == [tail]
    assert head._tee is None
    plumber.run()
    plumber.wait(20)
    assert plumber.stats["pipers"][tail]["items_out"] == 50
    plumber.stop()


# --- 2. Dagger.connect is atomic and names a Piper connected elsewhere --------


@pytest.mark.timeout(20)
def test_dagger_connect_refuses_a_piper_connected_in_another_dagger():
    x, y, z = Piper(first, name="x"), Piper(first, name="y"), Piper(first, name="z")
    Dagger(pipes=[(x, y)]).connect([[1, 2]])
    other = Dagger(pipes=[(z, y)])
    with pytest.raises(DaggerError, match="'y' is already connected, perhaps in"):
        other.connect([[5]])
    assert z.state == "new"  # checked before connecting anything
    with pytest.raises(DaggerError, match="'y' is already connected"):
        other.connect([[5]])


@pytest.mark.timeout(20)
def test_dagger_connect_twice_says_so():
    x, y = Piper(first, name="x"), Piper(first, name="y")
    dagger = Dagger(pipes=[(x, y)])
    dagger.connect([[1]])
    with pytest.raises(DaggerError, match="connected by this Dagger"):
        dagger.connect([[1]])


@pytest.mark.timeout(30)
def test_failed_dagger_connect_disconnects_what_it_connected():
    numap, owner = started_numap()
    head = Piper(plus_one, name="head")
    middle = Piper(plus_one, name="middle")
    tail = Piper(plus_one, parallel=numap, name="tail")
    dagger = Dagger(pipes=[(head, middle, tail)])
    with pytest.raises(PiperError, match="'tail'"):
        dagger.connect([[1, 2]])
    assert [p.state for p in (head, middle, tail)] == ["new", "new", "new"]
    assert dagger._connected == [] and dagger._valves == []
    finish(owner)
    dagger.connect([[1, 2]])
    dagger.start()
    assert list(tail) == [4, 5]
    dagger.stop()
    dagger.disconnect()


class UndoFailingNuMap(NuMap):
    """A NuMap that refuses a Piper's second task, then fails to pop the
    first one (fault injection into connect's rollback)."""

    def add_task(self, func, iterable, *args, **kwargs):
        if len(self._tasks) == 1:
            raise RuntimeError("second task refused")
        return super().add_task(func, iterable, *args, **kwargs)

    def pop_task(self, number):
        raise OSError("pop_task broke")


@pytest.mark.timeout(20)
def test_failed_connect_whose_undo_fails_raises_the_original_error():
    numap = UndoFailingNuMap(worker_type="thread", worker_num=1)
    upstream = Piper(plus_one, name="u")
    upstream.connect([[1, 2]])
    spawned = Piper(plus_one, parallel=numap, spawn=2, name="s")
    with pytest.raises(PiperError, match="second task refused") as raised:
        spawned.connect([upstream])
    # The undo's failure is kept too, as a note on the original error.
    notes = "\n".join(getattr(raised.value, "__notes__", []))
    assert "pop_task" in notes and "OSError('pop_task broke')" in notes
    assert "'s'" in notes
    # The rest of the undo still ran: nothing stays registered upstream.
    assert spawned.state == "new"
    assert upstream._consumers == []
    upstream.start()
    assert list(upstream) == [2, 3]
    upstream.stop()
    upstream.disconnect()


# --- 3. Piper.stop(forced=False, **kwargs) passes keywords to the NuMap -------


class NotingNuMap(NuMap):
    """A NuMap whose stop takes one more keyword and remembers its call."""

    def stop(self, ends=None, forced=False, note=None):
        self.stop_call = {"ends": ends, "forced": forced, "note": note}
        super().stop(ends=ends, forced=forced)


@pytest.mark.timeout(20)
def test_stop_passes_keywords_to_the_numap():
    numap = NotingNuMap(worker_type="thread", worker_num=1)
    piper = Piper(plus_one, parallel=numap, name="a")
    piper.connect([[1, 2]])
    piper.start()
    assert piper.next() == 2  # one result still pending: forced
    piper.stop(forced=True, ends=[0], note="bye")
    assert numap.stop_call == {"ends": [0], "forced": True, "note": "bye"}
    assert piper.state == "stopped"
    piper.disconnect()


@pytest.mark.timeout(20)
def test_stop_refuses_a_keyword_the_numap_does_not_take():
    piper = Piper(plus_one, parallel=NuMap(worker_type="thread", worker_num=1))
    piper.name = "a"
    piper.connect([[1]])
    piper.start()
    assert list(piper) == [2]
    with pytest.raises(TypeError, match="Piper 'a'.*'timeout'"):
        piper.stop(ends=[0], timeout=1)
    assert piper.state == "started"
    piper.stop(ends=[0])
    piper.disconnect()
    linear = Piper(plus_one, name="b")
    linear.connect([[1]])
    linear.start()
    with pytest.raises(TypeError, match="Piper 'b'.*'timeout'"):
        linear.stop(timeout=1)
    linear.stop(forced=True, ends=None)
    assert linear.state == "stopped"


# --- 4. a join of inputs of different lengths warns -------------------------


def join_output(datas, numap=None):
    parallel = numap if numap is not None else False
    left = Piper(first, parallel=parallel, name="i1", branch=1)
    right = Piper(first, parallel=parallel, name="i2", branch=2)
    join = Piper(both, parallel=parallel, name="j")
    dagger = Dagger(pipes=[(left, join), (right, join)])
    dagger.connect(datas)
    dagger.start()
    output = list(join)
    dagger.stop()
    dagger.disconnect()
    return output


def uneven_warnings(caplog):
    return [r.getMessage() for r in caplog.records if "ended after" in r.getMessage()]


@pytest.mark.timeout(20)
def test_join_warns_when_a_later_input_ends_first(caplog):
    with caplog.at_level(logging.WARNING, logger="papy"):
        assert join_output([[1, 2, 3], [10]]) == [(1, 10)]
    (message,) = uneven_warnings(caplog)
    assert "input 1 of Piper 'j' ended after 1 item while input 0 still has" in message


@pytest.mark.timeout(20)
def test_join_warns_when_the_first_input_ends_first(caplog):
    with caplog.at_level(logging.WARNING, logger="papy"):
        assert join_output([[10], [1, 2, 3]]) == [(10, 1)]
    (message,) = uneven_warnings(caplog)
    assert "input 0 of Piper 'j' ended after 1 item while input 1 still has" in message


@pytest.mark.timeout(20)
def test_join_of_equal_inputs_does_not_warn(caplog):
    with caplog.at_level(logging.WARNING, logger="papy"):
        assert join_output([[1, 2], [3, 4]]) == [(1, 3), (2, 4)]
        assert join_output([iter(()), iter(())]) == []
    assert uneven_warnings(caplog) == []


@pytest.mark.timeout(20)
def test_join_with_an_endless_input_warns_and_ends(caplog):
    with caplog.at_level(logging.WARNING, logger="papy"):
        assert join_output([itertools.count(), [7, 8]]) == [(0, 7), (1, 8)]
    (message,) = uneven_warnings(caplog)
    assert "input 1 of Piper 'j' ended after 2 items while input 0" in message


@pytest.mark.timeout(30)
@pytest.mark.parametrize("stride", [1, 3])
@pytest.mark.parametrize(
    "datas", [([1, 2, 3, 4, 5], [10, 20]), ([10, 20], [1, 2, 3, 4, 5])]
)
def test_join_on_one_numap_of_uneven_inputs_ends_and_warns(caplog, stride, datas):
    numap = NuMap(worker_type="thread", worker_num=2, stride=stride)
    with caplog.at_level(logging.WARNING, logger="papy"):
        output = join_output([list(d) for d in datas], numap)
    assert output == list(zip(*datas, strict=False))
    (message,) = uneven_warnings(caplog)
    short = 0 if len(datas[0]) < len(datas[1]) else 1
    assert (
        f"input {short} of Piper 'j' ended after 2 items while input {1 - short}"
        in message
    )


# --- 5. Dagger.start twice ---------------------------------------------------


@pytest.mark.timeout(20)
def test_dagger_start_twice_raises_dagger_error():
    x, y = Piper(first, name="x"), Piper(first, name="y")
    dagger = Dagger(pipes=[(x, y)])
    dagger.connect([[1, 2]])
    dagger.start()
    with pytest.raises(DaggerError, match="already started"):
        dagger.start()
    assert list(y) == [1, 2]  # the first start is intact
    dagger.stop()
    with pytest.raises(DaggerError, match="already started"):
        dagger.start()
    dagger.disconnect()
    dagger.connect([[3]])
    dagger.start()
    assert list(y) == [3]
    dagger.stop()
    dagger.disconnect()
