"""Dagger: building the topology, ordering, checks at connect."""

import pytest
from papy.core import Dagger, DaggerError, Piper, Worker


def first(inbox):
    return inbox[0]


def both(inbox):
    return tuple(inbox)


def pair(inbox):
    return (inbox[0], inbox[0])


def named(name, function=first, **kwargs):
    return Piper(function, name=name, **kwargs)


@pytest.mark.timeout(5)
def test_pipes_are_reversed_edges_and_inputs_outputs():
    a, b, c = named("a"), named("b"), named("c")
    dagger = Dagger(pipes=[(a, b, c)])
    assert set(dagger.edges()) == {(b, a), (c, b)}
    assert dagger.get_inputs() == [a]
    assert dagger.get_outputs() == [c]
    assert dagger.postorder() == [a, b, c]
    assert dagger.children_after_parents(a, c) == 1
    assert dagger.children_after_parents(c, a) == -1
    d = named("d")
    dagger.add_piper(d)
    assert dagger.children_after_parents(a, d) == 0


@pytest.mark.timeout(5)
def test_add_piper_creates_resolves_and_refuses():
    dagger = Dagger()
    created, piper = dagger.add_piper(Worker(first))
    assert created and isinstance(piper, Piper)
    assert dagger.add_piper(piper) == (False, piper)
    assert dagger.add_piper(id(piper)) == (False, piper)
    assert dagger.resolve(id(piper)) is piper
    assert dagger.resolve(named("x"), forgive=True) is False
    with pytest.raises(DaggerError):
        dagger.resolve(12345)
    with pytest.raises(DaggerError):
        dagger.add_piper(first, create=False)


@pytest.mark.timeout(5)
def test_add_pipers_adds_in_order_and_passes_arguments_on():
    a, b = named("a"), named("b")
    dagger = Dagger()
    dagger.add_pipers([a, b], branch="x")
    assert dagger.nodes() == [a, b]
    assert [dagger[p].branch for p in (a, b)] == ["x", "x"]
    with pytest.raises(DaggerError):
        dagger.add_pipers([named("c"), first], create=False)


@pytest.mark.timeout(5)
def test_add_pipe_refuses_cycles_and_changes_nothing():
    a, b, c = named("a"), named("b"), named("c")
    dagger = Dagger(pipes=[(a, b, c)])
    before = set(dagger.edges())
    new = named("new")
    with pytest.raises(DaggerError, match="cycle"):
        dagger.add_pipe((c, new, a))
    assert set(dagger.edges()) == before
    assert new not in dagger
    with pytest.raises(DaggerError, match="cycle"):
        dagger.add_pipe((a, a))


@pytest.mark.timeout(5)
def test_deleting_pipers_and_pipes():
    a, b, c, d = named("a"), named("b"), named("c"), named("d")
    dagger = Dagger(pipes=[(a, b, c), (a, d)])
    with pytest.raises(DaggerError, match="feeds"):
        dagger.del_piper(a)
    dagger.del_pipe((a, d))
    assert d not in dagger and a in dagger  # a still feeds b
    dagger.del_pipe((b, c), forced=True)
    assert b not in dagger and c not in dagger
    dagger.add_pipes([(a, b), (b, c)])
    dagger.del_pipers([b, c])
    assert dagger.nodes() == [a]
    dagger.add_pipes([(a, b), (a, c)])
    dagger.del_piper(a, forced=True)
    assert set(dagger.nodes()) == {b, c}
    dagger.add_pipes([(b, c)])
    dagger.del_pipes([(b, c)])
    assert dagger.nodes() == []


@pytest.mark.timeout(5)
def test_branch_orders_inputs_and_inboxes():
    left = named("left", branch=2)
    right = named("right", branch=1)
    join = named("join", both)
    dagger = Dagger(pipes=[(left, join), (right, join)])
    assert dagger.get_inputs() == [right, left]
    dagger.connect([range(3), range(10, 13)])
    dagger.start()
    assert list(join) == [(0, 10), (1, 11), (2, 12)]


@pytest.mark.timeout(5)
def test_diamond_runs_and_fans_out():
    a = named("a")
    b = named("b", lambda i: i[0] * 10, branch=1)
    c = named("c", lambda i: -i[0], branch=2)
    d = named("d", both)
    dagger = Dagger(pipes=[(a, b, d), (a, c, d)])
    dagger.connect([range(4)])
    dagger.start()
    assert list(d) == [(0, 0), (10, -1), (20, -2), (30, -3)]
    dagger.stop()
    dagger.disconnect()
    assert all(p.state == "new" for p in dagger)


@pytest.mark.timeout(5)
def test_mismatched_produce_and_consume_refused_at_connect():
    a = named("a", pair, produce=2)
    b = named("b")
    dagger = Dagger(pipes=[(a, b)])
    with pytest.raises(DaggerError, match="'a' -> 'b'"):
        dagger.connect([range(3)])
    assert a.state == "new" and b.state == "new"


@pytest.mark.timeout(5)
def test_misaligned_branches_refused_at_connect():
    a = named("a", both, consume=2)
    b = named("b", first)
    d = named("d", both)
    dagger = Dagger(pipes=[(a, d), (b, d)])
    # every pipe aligns, but a emits 1 item per 2 input items and b 1 per 1
    with pytest.raises(DaggerError, match="feeding 'd'"):
        dagger.connect([range(4), range(4)])


@pytest.mark.timeout(5)
def test_datas_must_match_inputs():
    a, b = named("a"), named("b")
    dagger = Dagger(pipers=[a, b])
    with pytest.raises(DaggerError, match="one input stream per input Piper"):
        dagger.connect([range(3)])
    with pytest.raises(DaggerError, match="not connected"):
        Dagger(pipes=[(named("x"), named("y"))]).connect()


@pytest.mark.timeout(5)
def test_start_before_connect_refused():
    with pytest.raises(DaggerError, match="connect"):
        Dagger(pipers=[named("a")]).start()
