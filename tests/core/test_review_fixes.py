"""Regression tests for defects found in review of papy.core (connect
rollback, atomic Dagger.connect, stop keywords, uneven join inputs)."""

import pytest
from core_functions import first
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
    assert plumber.stats["pipers"]["y"]["items_out"] == 50
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
