"""Dagger: the topology of a pipeline, a directed acyclic graph of Pipers."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from papy.core._errors import DaggerError
from papy.core._piper import Piper, reads_needed
from papy.core._streams import Tee, Valve, is_iterable, tee_bound
from papy.graph import DictGraph, GraphError

_STRIDE_HOW = (
    "NuMap(stride=...) sets a NuMap's (its default is its number of "
    "workers), a linear Piper's is 1"
)


# Python frames one Piper can add to the stack of the thread that pulls
# its results: a linear Piper's iteration is 6 nested calls into its
# upstream Piper's (counted in a RecursionError's traceback, CPython 3.11);
# the rest leaves room for a NuMap's frames when its consumer feeds it.
FRAMES_PER_PIPER = 16


def _make_room_for_nested_pulls(piper_count: int) -> None:
    """Raise Python's recursion limit so that a chain of ``piper_count``
    Pipers, each pulling from the one before inside the same thread, fits:
    the default limit of 1000 ended pipelines of more than about 160
    linear Pipers with a RecursionError. The limit is never lowered."""
    needed = piper_count * FRAMES_PER_PIPER + 1000
    if sys.getrecursionlimit() < needed:
        sys.setrecursionlimit(needed)


def _check_pipe(pipe: Any) -> None:
    """Raise DaggerError unless ``pipe`` is a sequence (of Pipers) such as
    a tuple or a list, and not a string.

    A Piper given instead would be iterated, which reads its results (a
    Piper is an iterator), and the error would say to start it.
    """
    if isinstance(pipe, Sequence) and not isinstance(pipe, str | bytes):
        return
    hint = "pipes=[(a, b)] or add_pipe((a, b))"
    if isinstance(pipe, Piper):
        raise DaggerError(
            f"Dagger: a pipe must be a tuple or list of Pipers, got the Piper "
            f"{pipe.name!r} alone; write {hint} (a pipe of one Piper: (a,))"
        )
    raise DaggerError(
        f"Dagger: a pipe must be a tuple or list of Pipers, got {pipe!r}; write {hint}"
    )


class Dagger(DictGraph):
    """A directed acyclic graph of Pipers: the topology of a pipeline.

    A *pipe* ``(A, B)`` says data flows from Piper A to Piper B. The graph
    stores the reverse edge ``B -> A`` (a dependency), so a Piper's DictNode
    holds its upstream Pipers.

    Order: Pipers are connected and started in ``postorder`` (every Piper
    after its upstream Pipers; unrelated branches sorted by their ``branch``
    label, inherited from upstream Pipers, then shorter branches first, then
    insertion order). A Piper's inputs, and the input Pipers matched to
    ``datas``, follow this same order.

    Arguments:
      - pipers [default: ()]: valid ``add_piper`` arguments, added in order.
      - pipes [default: ()]: valid ``add_pipe`` arguments, added in order.
      - xtras [default: None]: one ``xtra`` dict per element of ``pipers``.
    """

    def __init__(
        self,
        pipers: Sequence[Any] = (),
        pipes: Sequence[Sequence[Any]] = (),
        xtras: Sequence[dict[Any, Any] | None] | None = None,
    ) -> None:
        super().__init__()
        if xtras is not None and len(xtras) != len(pipers):
            raise DaggerError(
                f"Dagger: got {len(xtras)} xtras for {len(pipers)} pipers; give "
                "one xtra dict per piper or none"
            )
        for index, piper in enumerate(pipers):
            self.add_piper(piper, xtra=None if xtras is None else xtras[index])
        self.add_pipes(pipes)
        self._connected: list[Piper] = []
        self._valves: list[Valve] = []

    # --- finding Pipers ---------------------------------------------------

    def resolve(self, piper: Any, forgive: bool = False) -> Any:
        """Return the Piper given as an instance or as its ``id()``.

        Raises DaggerError if it is not in this Dagger, or returns False when
        ``forgive`` is True.
        """
        if isinstance(piper, Piper) and piper in self:
            return piper
        if isinstance(piper, int) and not isinstance(piper, bool):
            for node in self:
                if id(node) == piper:
                    return node
        if forgive:
            return False
        raise DaggerError(f"Dagger: Piper {piper!r} is not in this Dagger")

    # --- adding and removing ------------------------------------------------

    def add_piper(
        self,
        piper: Any,
        xtra: dict[Any, Any] | None = None,
        create: bool = True,
        branch: Any = None,
    ) -> tuple[bool, Piper]:
        """Add a Piper unless it is already here; return (created, piper).

        ``piper`` is a Piper, the id of a Piper in this Dagger, or (with
        ``create``) anything the Piper constructor accepts (a Worker, a
        function...), from which a new Piper is made. ``branch`` (default:
        the Piper's own ``branch``) and ``xtra`` go to the graph node.

        Raises DaggerError if it cannot be resolved and ``create`` is False,
        or if it is an int that is no Piper's id here (an int is always
        taken as an id, never made into a Piper).
        """
        found = self.resolve(piper, forgive=True)
        if found is not False:
            return False, found
        created = False
        if not isinstance(piper, Piper):
            if isinstance(piper, int):
                raise DaggerError(
                    f"Dagger: no Piper of this Dagger has the id {piper!r} (an "
                    "int is taken as the id() of a Piper already added); add "
                    "the Piper itself"
                )
            if not create:
                raise DaggerError(
                    f"Dagger: {piper!r} is not a Piper of this Dagger and "
                    "create=False; add the Piper first"
                )
            piper = Piper(piper)
            created = True
        label = piper.branch if branch is None else branch
        self.add_node(piper, xtra=xtra, branch=label)
        return created, piper

    def add_pipers(self, pipers: Sequence[Any], *args: Any, **kwargs: Any) -> None:
        """Add Pipers in order; extra arguments go to ``add_piper``."""
        for piper in pipers:
            self.add_piper(piper, *args, **kwargs)

    def del_piper(self, piper: Any, forced: bool = False) -> None:
        """Remove a Piper (instance or id).

        Raises DaggerError if it has downstream Pipers, unless ``forced``.
        """
        piper = self.resolve(piper)
        downstream = self.get_downstream(piper)
        if downstream and not forced:
            names = ", ".join(repr(p.name) for p in downstream)
            raise DaggerError(
                f"Dagger: Piper {piper.name!r} feeds {names}; delete those pipes "
                "first or use forced=True"
            )
        self.del_node(piper)

    def del_pipers(self, pipers: Sequence[Any], *args: Any, **kwargs: Any) -> None:
        """Remove Pipers from right to left; extra arguments go to ``del_piper``."""
        for piper in reversed(list(pipers)):
            self.del_piper(piper, *args, **kwargs)

    def add_pipe(self, pipe: Sequence[Any], branch: Any = None) -> None:
        """Add a pipe ``(A, ..., N)``: data flows from A to B, ... to N.

        Elements are Pipers or valid ``add_piper`` arguments. Raises
        DaggerError, changing nothing, if ``pipe`` is not a tuple or list
        (e.g. a Piper given alone, ``add_pipe(a)`` for ``add_pipe((a,))``)
        or if the pipe would close a cycle.
        """
        _check_pipe(pipe)
        before = set(self)
        pipers = [self.add_piper(p, branch=branch)[1] for p in pipe]
        added: list[tuple[Piper, Piper]] = []
        for upstream, downstream in zip(pipers, pipers[1:], strict=False):
            if upstream is downstream or downstream in self.deep_nodes(upstream):
                for edge in added:
                    self.del_edge(edge)
                for piper in pipers:
                    if piper not in before and piper in self:
                        self.del_node(piper)
                raise DaggerError(
                    f"Dagger: the pipe {upstream.name!r} -> {downstream.name!r} "
                    "would close a cycle; a pipeline must be acyclic"
                )
            if upstream not in self[downstream]:
                self.add_edge((downstream, upstream))
                added.append((downstream, upstream))

    def add_pipes(self, pipes: Sequence[Sequence[Any]], *args: Any, **kwargs: Any):
        """Add pipes in order; extra arguments go to ``add_pipe``.

        Raises DaggerError unless ``pipes`` is a tuple or list of pipes,
        each a tuple or list of Pipers: ``[(a, b)]``, not ``[a, b]``.
        """
        if isinstance(pipes, str | bytes) or not isinstance(pipes, Sequence):
            raise DaggerError(
                f"Dagger: 'pipes' must be a list of pipes, each a tuple of "
                f"Pipers, e.g. pipes=[(a, b)]; got {pipes!r}"
            )
        for pipe in pipes:
            self.add_pipe(pipe, *args, **kwargs)

    def del_pipe(self, pipe: Sequence[Any], forced: bool = False) -> None:
        """Delete a pipe: its connections, then its Pipers from right to left.

        Without ``forced`` a Piper that still has downstream Pipers stays.
        Raises DaggerError if a Piper or a connection is not in this Dagger.
        """
        pipers = [self.resolve(p) for p in pipe]
        for upstream, downstream in zip(pipers, pipers[1:], strict=False):
            if upstream not in self[downstream]:
                raise DaggerError(
                    f"Dagger: there is no pipe {upstream.name!r} -> "
                    f"{downstream.name!r} to delete"
                )
        for upstream, downstream in zip(pipers, pipers[1:], strict=False):
            self.del_edge((downstream, upstream))
        for piper in reversed(pipers):
            if piper in self and (forced or not self.get_downstream(piper)):
                self.del_piper(piper, forced=forced)

    def del_pipes(self, pipes: Sequence[Sequence[Any]], *args: Any, **kwargs: Any):
        """Delete pipes in order; extra arguments go to ``del_pipe``."""
        for pipe in pipes:
            self.del_pipe(pipe, *args, **kwargs)

    # --- topology queries ---------------------------------------------------

    def postorder(self) -> list[Any]:
        """Pipers with every Piper after its upstream Pipers (see class doc)."""
        try:
            return super().postorder()
        except GraphError as error:
            raise DaggerError(f"Dagger: {error}") from error

    def get_upstream(self, piper: Piper) -> list[Piper]:
        """The Pipers feeding ``piper``, in pipeline order."""
        order = {p: i for i, p in enumerate(self.postorder())}
        return sorted(self[piper], key=order.__getitem__)

    def get_downstream(self, piper: Piper) -> list[Piper]:
        """The Pipers ``piper`` feeds, in pipeline order."""
        return [p for p in self.postorder() if piper in self[p]]

    def get_inputs(self) -> list[Piper]:
        """Pipers with no upstream Piper (the pipeline's inputs), in order."""
        return [p for p in self.postorder() if not self[p]]

    def get_outputs(self) -> list[Piper]:
        """Pipers with no downstream Piper (the pipeline's outputs), in order."""
        fed = {upstream for topo in self.values() for upstream in topo}
        return [p for p in self.postorder() if p not in fed]

    def children_after_parents(self, piper1: Piper, piper2: Piper) -> int:
        """1 if piper1 is upstream of piper2, -1 if downstream, 0 if neither."""
        if piper1 in self.deep_nodes(piper2):
            return 1
        if piper2 in self.deep_nodes(piper1):
            return -1
        return 0

    # --- checking -----------------------------------------------------------

    def check(self, datas: Sequence[Any] | None = None) -> None:
        """Raise DaggerError if the pipeline could misalign or deadlock.

        For every pipe A -> B, ``A.produce * A.spawn`` must equal
        ``B.consume * B.spawn``; the Pipers feeding one Piper must emit the
        same number of items per input item; strides must fit (see
        ``stride_pairs``); no Piper whose stream can gain items (a timeout
        without the NuMap's ``skip``) or lose input order (an unordered
        NuMap) may feed a join (see ``_check_late_results`` and
        ``_check_unordered``); ``datas`` (if given) must have one input
        stream per input Piper, each an iterable.
        """
        order = self.postorder()
        rate: dict[Piper, Fraction] = {}
        for piper in order:
            upstream = self.get_upstream(piper)
            for source in upstream:
                given = source.produce * source.spawn
                taken = piper.consume * piper.spawn
                if given != taken:
                    raise DaggerError(
                        f"Dagger: pipe {source.name!r} -> {piper.name!r} does not "
                        f"align: produce*spawn of {source.name!r} is {given} but "
                        f"consume*spawn of {piper.name!r} is {taken}; make them equal"
                    )
            rates = {rate[source] for source in upstream} or {Fraction(1)}
            if len(rates) > 1:
                detail = ", ".join(f"{s.name!r}: {rate[s]}" for s in upstream)
                raise DaggerError(
                    f"Dagger: the Pipers feeding {piper.name!r} emit different "
                    f"numbers of items per input item ({detail}); their streams "
                    "cannot be zipped"
                )
            rate[piper] = rates.pop() * piper.produce / piper.consume
        self._check_numap_cycles(order)
        self._check_strides()
        self._check_late_results(order)
        self._check_unordered(order)
        if datas is not None:
            self._check_datas(datas, [p for p in order if not self[p]])

    @staticmethod
    def _check_datas(datas: Any, inputs: list[Piper]) -> None:
        """Raise DaggerError unless ``datas`` is a sequence of one iterable
        per input Piper of ``inputs``."""
        if (
            isinstance(datas, str | bytes)
            or not isinstance(datas, Sequence)
            or len(datas) != len(inputs)
        ):
            names = ", ".join(repr(p.name) for p in inputs)
            raise DaggerError(
                f"Dagger: 'datas' must be a sequence (e.g. a list) holding one "
                f"input stream per input Piper ({len(inputs)}: {names}), got "
                f"{datas!r}"
            )
        for index, (piper, data) in enumerate(zip(inputs, datas, strict=True)):
            if not is_iterable(data):
                raise DaggerError(
                    f"Dagger: datas[{index}], the input of Piper {piper.name!r}, "
                    f"is {data!r}, which is not iterable; give an iterable of "
                    "input items (e.g. a list, a range or a generator)"
                )

    def stride_pairs(self) -> list[tuple[Piper, Piper, Piper]]:
        """Triples ``(a, b, at)``: Pipers a and b must have the same stride
        for the items grouped or zipped by Piper ``at`` to belong together.

        A Piper with produce=n > 1 lays out its output stride by stride (a0
        b0 a1 b1 for stride 2), and a Piper with consume=n > 1 groups its
        input stride by stride (see DESIGN.md): the groups hold the items of
        one result only if both use the same stride. The layout passes
        unchanged through Pipers with consume=1 and produce=1 (spawned ones
        too: they keep input order), so the producer may be a few pipes
        upstream. So: ``(producer, consumer, consumer)`` for a consume>1
        Piper reading a laid-out stream, and ``(producer1, producer2,
        joiner)`` for a Piper zipping streams laid out by two producers.
        """
        layout: dict[Piper, Piper | None] = {}
        triples: list[tuple[Piper, Piper, Piper]] = []
        for piper in self.postorder():
            producers: list[Piper] = []
            for source in self.get_upstream(piper):
                producer = layout[source]
                if producer is not None and producer not in producers:
                    producers.append(producer)
            triples += [(producers[0], other, piper) for other in producers[1:]]
            laid_out = producers[0] if producers else None
            if piper.consume > 1 and laid_out is not None:
                triples.append((laid_out, piper, piper))
            if piper.produce > 1:
                layout[piper] = piper
            elif piper.consume > 1:
                layout[piper] = None
            else:
                layout[piper] = laid_out
        return triples

    def _check_strides(self) -> None:
        """Refuse Pipers whose groups or rows would mix the items of
        different results (see ``stride_pairs``)."""
        for a, b, at in self.stride_pairs():
            if a.stride == b.stride:
                continue
            if b is at:
                raise DaggerError(
                    f"Dagger: {at.name!r} (consume={at.consume}, stride "
                    f"{at.stride}) groups the items that {a.name!r} (produce="
                    f"{a.produce}, stride {a.stride}) makes with a different "
                    "stride, so its groups would mix items of different "
                    f"results; give them the same stride: {_STRIDE_HOW}"
                )
            raise DaggerError(
                f"Dagger: {at.name!r} zips streams that {a.name!r} (produce="
                f"{a.produce}, stride {a.stride}) and {b.name!r} (produce="
                f"{b.produce}, stride {b.stride}) lay out with different "
                "strides, so its rows would pair parts of different results; "
                f"give them the same stride: {_STRIDE_HOW}"
            )

    def _reader_misled_by(
        self, piper: Piper, order: list[Piper], regrouping: bool
    ) -> tuple[Piper, bool] | None:
        """The first Piper that ``piper`` feeds, directly or through
        others, and that would pair its items wrongly (a join some of
        whose inputs ``piper`` does not feed: ``(reader, True)``) or, with
        ``regrouping``, group them wrongly (consume>1: ``(reader,
        False)``); None if there is none."""
        for reader in order:
            if piper not in self.deep_nodes(reader):
                continue
            if self._joins_unevenly(piper, reader):
                return reader, True
            if regrouping and reader.consume > 1:
                return reader, False
        return None

    def _joins_unevenly(self, piper: Piper, reader: Piper) -> bool:
        """Whether ``reader`` joins streams of which some come through
        ``piper`` and others do not. (When all of them do, ``piper`` lies
        before the fan-out: every stream carries the same items, extra or
        out of order alike, and the join pairs them right.)"""
        if len(self[reader]) < 2:
            return False
        through = [
            source is piper or piper in self.deep_nodes(source)
            for source in self[reader]
        ]
        return any(through) and not all(through)

    def _check_late_results(self, order: list[Piper]) -> None:
        """Refuse a Piper with a timeout on a NuMap without ``skip`` that
        feeds a join (a Piper with several upstream Pipers, not all of
        them fed by it) or a consume>1 Piper, directly or through others.

        Without ``skip`` a late result is not given up: the Piper returns
        an error for every timeout that passes, then the result (the
        contract: "the result can be retrieved later"), so it emits more
        items than it read. A linear chain just carries the extra items to
        the end, but a join would pair them with the wrong items of its
        other inputs, and a regrouping would put them in the wrong groups,
        silently.
        """
        for piper in order:
            if piper.timeout is None or getattr(piper.imap, "skip", True):
                continue
            found = self._reader_misled_by(piper, order, regrouping=True)
            if found is None:
                continue
            reader, joins = found
            if joins:
                what = "joins it with other streams, would pair"
            else:
                what = f"groups its items (consume={reader.consume}), would group"
            raise DaggerError(
                f"Dagger: Piper {piper.name!r} has timeout={piper.timeout} on "
                f"NuMap {getattr(piper.imap, 'name', piper.imap)!r} with "
                "skip=False, so each timeout adds an error item before the "
                f"late result, and {reader.name!r}, which {what} items "
                "wrongly; give that NuMap skip=True (a late result is then "
                "given up and the error takes its slot) or remove the timeout"
            )

    def _check_unordered(self, order: list[Piper]) -> None:
        """Refuse a Piper on an unordered NuMap (``ordered=False``) that
        feeds a join (not all of whose inputs it feeds), directly or
        through other Pipers: its results come
        as they finish, so the join would pair them with items of other
        inputs that came from different input items, silently."""
        for piper in order:
            if getattr(piper.imap, "ordered", True):
                continue
            found = self._reader_misled_by(piper, order, regrouping=False)
            if found is None:
                continue
            reader, _ = found
            raise DaggerError(
                f"Dagger: Piper {piper.name!r} is on NuMap "
                f"{getattr(piper.imap, 'name', piper.imap)!r} with "
                f"ordered=False, which gives results as they finish, and "
                f"{reader.name!r} joins its stream with other streams item "
                "by item, so it would pair items of different inputs; give "
                "that NuMap ordered=True (the default), or do not join "
                "its stream"
            )

    def _check_numap_cycles(self, order: list[Piper]) -> None:
        """Refuse NuMaps that feed each other (A -> B -> A).

        A NuMap's feeder thread waits for the items of its tasks' inputs. If
        NuMap B reads results of NuMap A and A reads results of B, each
        feeder can end up waiting for items the other one has not fed yet.
        Linear Pipers in between run in the reader's thread, so they pass
        the dependency through.
        """
        sources: dict[Piper, dict[int, tuple[Piper, Piper]]] = {}
        follows: dict[int, dict[int, tuple[Piper, Piper]]] = {}
        names: dict[int, Any] = {}
        for piper in order:
            feeding: dict[int, tuple[Piper, Piper]] = {}
            for upstream in self[piper]:
                if upstream.imap is not None:
                    feeding.setdefault(id(upstream.imap), (upstream, piper))
                    names[id(upstream.imap)] = upstream.imap
                else:
                    for key, pipe in sources[upstream].items():
                        feeding.setdefault(key, pipe)
            sources[piper] = feeding
            if piper.imap is not None:
                own = id(piper.imap)
                names[own] = piper.imap
                for key, pipe in feeding.items():
                    if key != own:
                        follows.setdefault(own, {}).setdefault(key, pipe)
        for start in follows:
            path = self._numap_path(follows, start, start)
            if path:
                hops = "; ".join(
                    f"{getattr(names[b], 'name', b)!r} reads "
                    f"{getattr(names[a], 'name', a)!r} ({up.name!r} -> {down.name!r})"
                    for a, b, (up, down) in path
                )
                raise DaggerError(
                    f"Dagger: NuMaps feed each other in a cycle ({hops}); their "
                    "feeders could wait for each other forever. Put these Pipers "
                    "on one NuMap, or let data flow one way between NuMaps"
                )

    @staticmethod
    def _numap_path(
        follows: dict[int, dict[int, tuple[Any, Any]]], start: int, goal: int
    ) -> list[tuple[int, int, tuple[Any, Any]]]:
        """A path of reads from ``goal`` back to ``start``, or [] (DFS)."""
        stack: list[tuple[int, list[Any]]] = [(start, [])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for source, pipe in follows.get(node, {}).items():
                step = [*path, (source, node, pipe)]
                if source == goal:
                    return step
                if source not in seen:
                    seen.add(source)
                    stack.append((source, step))
        return []

    # --- running ------------------------------------------------------------

    def connect_inputs(self, datas: Sequence[Any]) -> None:
        """Connect the input Pipers (in pipeline order) to ``datas``.

        ``datas`` holds one iterable of input items per input Piper. Raises
        DaggerError if the number of streams does not match.
        """
        self.check(datas)
        for piper, data in zip(self.get_inputs(), datas, strict=True):
            valve = Valve(data)
            piper.connect([valve])
            self._valves.append(valve)
            self._connected.append(piper)

    def connect(self, datas: Sequence[Any] | None = None) -> None:
        """Connect Pipers upstream first; with ``datas``, the inputs too.

        Checks the topology first (see ``check``) and raises DaggerError
        before connecting anything if it could misalign or deadlock, or if a
        Piper to connect is connected already (e.g. in another Dagger). If
        connecting a Piper fails, the Pipers this call connected are
        disconnected again before the error is raised.
        """
        self.check(datas)
        self._check_unconnected(datas is not None)
        self._allow_native_chains()
        connected_before = len(self._connected)
        valves_before = len(self._valves)
        try:
            if datas is not None:
                self.connect_inputs(datas)
            for piper in self.postorder():
                upstream = self.get_upstream(piper)
                if not upstream:
                    if piper.state == "new":
                        raise DaggerError(
                            f"Dagger: input Piper {piper.name!r} is not connected; "
                            "give 'datas' to connect() or call connect_inputs()"
                        )
                    continue
                piper.connect(upstream)
                self._connected.append(piper)
        except BaseException:
            # Take back what this call connected, downstream first.
            self._disconnect_since(connected_before, valves_before)
            raise

    def _check_unconnected(self, inputs_too: bool) -> None:
        """Raise DaggerError naming a Piper that connect() would connect but
        that is connected already (input Pipers only if ``inputs_too``)."""
        for piper in self.postorder():
            if piper.state == "new" or not (inputs_too or self.get_upstream(piper)):
                continue
            if piper in self._connected:
                raise DaggerError(
                    f"Dagger: Piper {piper.name!r} is already connected by this "
                    "Dagger; disconnect() the Dagger first"
                )
            raise DaggerError(
                f"Dagger: Piper {piper.name!r} is already connected, perhaps in "
                "another Dagger; disconnect() it first"
            )

    def _allow_native_chains(self) -> None:
        """Mark the Pipers that may read their upstream by NuMap chaining.

        A Piper may if it could on its own (``Piper.can_chain_from``) and so
        can every Piper downstream of it on the same NuMap: a Piper reading
        through the parent inside a NuMap's feeder would otherwise wait for
        results of a chained task that the feeder never fed.
        """
        able = {}
        for piper in self:
            upstream = list(self[piper])
            able[piper] = len(upstream) == 1 and piper.can_chain_from(
                upstream[0], len(self.get_downstream(upstream[0]))
            )
        upstream_of = {piper: set(self.deep_nodes(piper)) for piper in self}
        for piper in self:
            same = [
                p
                for p in self
                if p.imap is not None
                and p.imap is piper.imap
                and piper in upstream_of[p]
            ]
            piper._chain_allowed = able[piper] and all(able[p] for p in same)

    def disconnect(self, forced: bool = False) -> None:
        """Disconnect Pipers downstream first (inputs included).

        With ``forced`` every task of every NuMap used is removed, even tasks
        that do not belong to this Dagger.
        """
        self._disconnect_since(0, 0, forced)

    def _disconnect_since(
        self, connected: int, valves: int, forced: bool = False
    ) -> None:
        """Disconnect, downstream first, the Pipers connected after the
        first ``connected``, and forget the valves after the first ``valves``."""
        for piper in reversed(self._connected[connected:]):
            if piper.state != "new":
                piper.disconnect(forced=forced)
        del self._connected[connected:]
        del self._valves[valves:]

    def start(self) -> None:
        """Start Pipers upstream first, in two stages so they can share NuMaps:
        all with stages (0, 1), then all with stage (2,).

        Each Piper read by several Pipers gets a bounded fan-out (see
        ``_set_tee_bounds``): read the outputs of such a pipeline
        concurrently (a Plumber reads each in its own thread) to keep that
        bound. Read one to its end after the other in one thread, they do
        not wait for each other, and the output read last is held whole.
        """
        if not self._connected:
            if not len(self):
                raise DaggerError(
                    "Dagger: the pipeline has no Pipers; add them with "
                    "add_piper() or add_pipe() before starting it"
                )
            raise DaggerError("Dagger: connect() the pipeline before start()")
        connected = {id(piper) for piper in self._connected}
        for piper in self.postorder():
            if id(piper) not in connected:
                raise DaggerError(
                    f"Dagger: Piper {piper.name!r} is not connected; connect() "
                    "the pipeline before start() (connect_inputs() connects "
                    "the input Pipers only)"
                )
        for piper in self._connected:
            if piper.state != "connected":
                raise DaggerError(
                    f"Dagger: already started (Piper {piper.name!r} is "
                    f"{piper.state}); a Dagger starts once per connect(): stop() "
                    "and disconnect() it, then connect() it again"
                )
        self._check_numap_buffers()
        self._check_buffers_read_across()
        self._set_tee_bounds()
        _make_room_for_nested_pulls(len(self._connected))
        for piper in self._connected:
            piper.start(stages=(0, 1))
        for piper in self._connected:
            piper.start(stages=(2,))

    def _check_numap_buffers(self) -> None:
        """Refuse a NuMap whose buffer cannot hold a turn of every task it
        feeds (``stride`` x tasks; natively chained tasks take no turn).

        The feeder gives each task a turn of ``stride`` items, and a task
        waits in its turn for buffer room. With less, the results that fill
        the buffer can be ones that are read only after an item of the task
        waiting for room, and nothing moves again (0 items out).
        """
        for pipers in self._fed_pipers_by_numap():
            numap, stride = pipers[0].imap, pipers[0].stride
            buffer = getattr(numap, "arguments", {}).get("buffer")
            tasks = _fed_tasks(pipers)
            if buffer is None or tasks < 2 or buffer >= stride * tasks:
                continue
            names = ", ".join(repr(piper.name) for piper in pipers)
            raise DaggerError(
                f"Dagger: NuMap {getattr(numap, 'name', numap)!r} has buffer="
                f"{buffer}, less than its stride ({stride}) x the {tasks} tasks "
                f"its feeder feeds (Pipers {names}) = {stride * tasks}, so the "
                "pipeline could stall for good; give it "
                f"NuMap(buffer={stride * tasks}) or more, or leave buffer unset "
                "(its default is stride x tasks)"
            )

    def _check_buffers_read_across(self) -> None:
        """Refuse a NuMap whose buffer is too small for the other NuMaps'
        feeders that read several of its streams in turns of their own.

        A feeder reads one task's inputs per turn. While the turn of one
        reader takes its items of one of this NuMap's streams, this NuMap's
        feeder, which feeds its tasks in turn too, fills the buffer with
        results of its other streams, which their readers take only in
        their own turns; and those readers may wait, through the pipeline,
        for the first one. If those results fill the buffer first, no
        feeder moves again (0 items out, and no stop). While a turn takes
        its items of one stream, this NuMap makes as many of each other
        stream (its turns alternate, and another stream's may come first):
        each can come to hold the longest turn's worth of results (rounded
        up to this NuMap's strides), and the stream being read needs room
        for one batch besides. (Measured: on 2- and 3-stage pipelines a
        buffer one or two items smaller stalled; where the stream being
        read has the first turn, one item less sufficed. A random
        pipeline in which another stream's turn came first stalled with
        one stride less.) Readers that do not depend on each other would
        not stall; they are refused too, as the graph does not say which
        do.
        """
        fed = {id(pipers[0].imap): pipers for pipers in self._fed_pipers_by_numap()}
        for numap, turns in self._turns_read_across(fed).items():
            stride = getattr(numap, "stride", 1) or 1
            streams = {source for sources in turns.values() for source in sources}
            reads = [results for t in turns.values() for results in t.values()]
            longest = -(-max(reads) // stride) * stride
            need = (len(streams) - 1) * longest + _batch_size(numap)
            given = getattr(numap, "arguments", {}).get("buffer")
            tasks = _fed_tasks(fed.get(id(numap), []))
            buffer = stride * tasks if given is None else given
            if buffer >= need:
                continue
            name = getattr(numap, "name", numap)
            pipes = ", ".join(
                f"{source.name!r} -> {piper.name!r}"
                for piper, sources in turns.items()
                for source in sources
            )
            default = " (its default, stride x tasks)" if given is None else ""
            raise DaggerError(
                f"Dagger: Pipers on other NuMaps read {len(streams)} streams of "
                f"NuMap {name!r} in turns of their own ({pipes}), and its "
                f"buffer, {buffer}{default}, could fill with the streams read "
                "in later turns while the first waits: the pipeline would "
                f"stall for good. Give {name!r} NuMap(buffer={need}) or more, "
                "or give the reading NuMaps smaller strides, or put those "
                "Pipers on one NuMap"
            )

    def _turns_read_across(
        self, fed: dict[int, list[Piper]]
    ) -> dict[Any, dict[Piper, dict[Piper, int]]]:
        """{NuMap X: {reader: {Piper on X: results}}}, for the NuMaps X
        two or more of whose Pipers are read by readers (see
        ``_reads_in_turns``) on other NuMaps (one stream read by several
        readers is taken from X by whichever pulls first: nothing of it
        waits in X's buffer for a later turn): each reader with the Pipers
        on X whose results it reads (through linear Pipers too, which run
        in its thread, and through Pipers on other NuMaps, whose inputs
        must flow for the reader's to), and the most of them it takes
        before anything it reads moves on.

        That is a turn of its NuMap (stride x consume x spawn items of its
        inputs) when that NuMap's feeder feeds other tasks too (``fed``:
        the fed Pipers by NuMap id), whose turns wait for the reader's
        turn to fill; else a batch (stride / workers, rounded up, instead
        of the stride), the items its feeder gathers before it sends them
        to a worker. Worked back through consume and produce to results."""
        by_numap: dict[Any, dict[Piper, dict[Piper, int]]] = {}
        readers = self._readers()
        for reader in self._connected:
            if not self._reads_in_turns(reader, readers):
                continue
            scale = _items_held_up_by(reader, fed)
            for source, results in self._held_upstream(reader).items():
                if source.imap is not None:
                    turns = by_numap.setdefault(source.imap, {})
                    turns.setdefault(reader, {})[source] = results * scale
        return {
            numap: turns
            for numap, turns in by_numap.items()
            if len({source for sources in turns.values() for source in sources}) > 1
        }

    def _held_upstream(self, reader: Piper) -> dict[Piper, int]:
        """{Piper upstream of ``reader``: the most of its results that must
        flow for ``reader`` to gather one turn of inputs}, through linear
        Pipers (run in the thread that reads them) and through Pipers on
        other NuMaps, whose inputs must flow for theirs to. A NuMap's own
        Pipers upstream of one of its Pipers are read by its own feeder:
        the walk does not pass from a Piper into them, nor from the reader
        into its own NuMap's. Each Piper is walked on only when reached with
        more than before, so diamonds cost no more than a pass each."""
        held: dict[Piper, int] = {}
        items = reader.consume * reader.spawn
        pending = [(upstream, items, reader.imap) for upstream in self[reader]]
        while pending:
            source, wanted, feeder = pending.pop()
            if source.imap is not None and source.imap is feeder:
                continue  # read by that NuMap's own feeder
            results = -(-wanted // source.produce)
            if held.get(source, 0) >= results:
                continue
            held[source] = results
            if source.imap is not None:
                feeder = source.imap
            pending.extend(
                (upstream, results * source.consume, feeder)
                for upstream in self[source]
            )
        return held

    def _reads_in_turns(self, piper: Piper, readers: dict[Piper, list[Piper]]) -> bool:
        """Whether ``piper`` is where a thread reads other Pipers' results
        a turn at a time: a parallel Piper (its NuMap's feeder; natively
        chained ones are read inside the NuMap), or a linear join at an
        output (the thread reading that output takes one item of each
        input in turn, so it couples what its inputs read), or a linear
        join whose readers down to an output are all linear (they run in
        the thread reading that output)."""
        if piper.imap is not None:
            return piper._chained_from is None
        return len(self[piper]) > 1 and _reaches_an_output_linearly(piper, readers)

    def _set_tee_bounds(self) -> None:
        """Give every Piper read by several Pipers the queue bound of its
        Tee (see ``tee_bound``): how far one reader may run ahead of
        another before it waits.

        The bound must let each reader take all the items it needs before
        its branch gives an output item: with less room, a join of two
        branches of one fan-out could wait for an item that the Tee holds
        back until the join has read it. A Piper that must give m results
        reads up to ``consume x (ceil(m / produce) + stride x spawn)``
        items (whole blocks of strides, consume items per produce
        results), so working up from an output, which must give 1 result,
        gives each Piper's ``need``. (Without the division by produce,
        alternating produce=2 and consume=2 Pipers doubled it at each pair.)
        """
        order = self.postorder()
        readers = self._readers(order)
        need: dict[Piper, int] = {}
        for piper in reversed(order):
            results = max((need[r] for r in readers[piper]), default=1)
            need[piper] = reads_needed(piper, results)
        for piper in order:
            if len(readers[piper]) > 1:
                piper._tee_bound = tee_bound(max(need[r] for r in readers[piper]))

    def _readers(self, order: list[Piper] | None = None) -> dict[Piper, list[Piper]]:
        """{Piper: the Pipers that read it}, worked out in one pass over
        ``order`` (default: the postorder; get_downstream() sorts the
        whole graph per call)."""
        order = self.postorder() if order is None else order
        readers: dict[Piper, list[Piper]] = {piper: [] for piper in order}
        for piper in order:
            for upstream in self[piper]:
                readers[upstream].append(piper)
        return readers

    def _fed_pipers_by_numap(self) -> list[list[Piper]]:
        """The connected parallel Pipers whose tasks the NuMap's feeder
        feeds (not natively chained), grouped by NuMap."""
        fed: dict[int, list[Piper]] = {}
        for piper in self._connected:
            if piper.imap is not None and piper._chained_from is None:
                fed.setdefault(id(piper.imap), []).append(piper)
        return list(fed.values())

    def close_inputs(self) -> None:
        """Make the input streams end now; buffered items still flow out.

        Also lifts the bounds of the fan-outs' queues (``Tee.release``):
        a reader waiting for a slower one then reads what is left at once
        and ends, instead of in step with the slow one; what is left is
        bounded by the buffers upstream of the fan-out.
        """
        for valve in self._valves:
            valve.close()
        for tee in self._tees():
            tee.release()

    def _tees(self) -> list[Tee]:
        """The fan-outs (Tees) of the connected Pipers read by several."""
        return [piper._tee for piper in self._connected if piper._tee is not None]

    def stop(self) -> None:
        """Stop the Pipers (each NuMap once, with its end tasks)."""
        ends = self._end_tasks()
        for piper in self._connected:
            if piper.state == "started":
                piper.stop(ends=ends.get(id(piper.imap)))

    def _end_tasks(self) -> dict[int, list[int]]:
        """Per NuMap, the task ids whose results leave that NuMap."""
        ends: dict[int, list[int]] = {}
        for piper in self._connected:
            if piper.imap is None:
                continue
            inside = [p for p in self.get_downstream(piper) if p.imap is piper.imap]
            if not inside:
                ends.setdefault(id(piper.imap), []).extend(piper._tasks)
        return ends


def _reaches_an_output_linearly(
    piper: Piper, readers: dict[Piper, list[Piper]]
) -> bool:
    """Whether a path of linear Pipers leads from ``piper`` to an output
    (a Piper nobody reads)."""
    pending = [piper]
    seen: set[Piper] = set()
    while pending:
        current = pending.pop()
        if not readers[current]:
            return True
        seen.add(current)
        pending.extend(
            reader
            for reader in readers[current]
            if reader.imap is None and reader not in seen
        )
    return False


def _batch_size(numap: Any) -> int:
    """The items ``numap``'s feeder sends a worker at once: its stride over
    its workers, rounded up."""
    workers = getattr(numap, "worker_num", 1) + sum(
        count for _, count in getattr(numap, "worker_remote", None) or ()
    )
    return -(-(getattr(numap, "stride", 1) or 1) // max(1, workers))


def _items_held_up_by(reader: Piper, fed: dict[int, list[Piper]]) -> int:
    """How many of its inboxes ``reader`` gathers before any of them moves
    on: 1 for a linear join; a whole turn of its NuMap (``stride``) when
    that NuMap's feeder feeds other Pipers too (``fed``: the fed Pipers by
    NuMap id), as their turns, the reader's own downstream Pipers' among
    them, wait until the reader's turn has all its items; else a batch
    (what the feeder gathers before it sends them to a worker). The
    reader's own spawned tasks do not count: a round of them is in the
    items it reads already (consume x spawn), and a pipeline joining two
    streams on a spawn=2 Piper ran with the buffer that leaves."""
    if reader.imap is None:
        return 1
    if any(other is not reader for other in fed.get(id(reader.imap), [])):
        return reader.stride
    return _batch_size(reader.imap)


def _fed_tasks(pipers: list[Piper]) -> int:
    """The tasks a NuMap's feeder feeds for ``pipers`` (its fed Pipers):
    its default buffer is its stride times that."""
    return sum(len(piper._tasks) for piper in pipers)
