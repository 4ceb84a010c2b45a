"""Plumber: runs a Dagger's pipeline in a background thread.

Threads::

    caller ── start(datas) ──> connect + start Pipers and NuMaps
    caller ── run() ─────────> run thread: pulls every output Piper to its
                               end, each in its own puller thread
    caller ── pause() ───────> every puller finishes its item, then waits
    caller ── stop() ────────> inputs closed; run thread drains what is
                               buffered; NuMaps stopped; Pipers disconnected
"""

from __future__ import annotations

import contextlib
import inspect
import os
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from papy.core import _numaps
from papy.core._dagger import Dagger
from papy.core._errors import PiperError, PlumberError
from papy.core._log import get_logger
from papy.core._save import load_pipeline, pipeline_source
from papy.core._waits import join_thread, timeout_seconds, wait_event

# Seconds between two looks at the inputs' waiting_for_data in pause().
_INPUT_POLL = 0.05


class Plumber(Dagger):
    """A Dagger that also runs its pipeline: start, run, pause, stop, wait.

    Arguments:
      - logger_options [default: None, meaning {}]: keyword arguments for
        ``papy.util.config.start_logger``; given (non-empty), logging is
        configured when the Plumber is made.
      - dagger [default: None]: a Dagger whose Pipers and pipes are copied.
      - name [default: None]: the pipeline's name in logs and saved files.
      - other keyword arguments go to ``Dagger`` (pipers, pipes, xtras).

    States::

        new --start(datas)--> started --run()--> running --pause()--> paused
        paused --run()--> running; running --(outputs end)--> finished
        started | running | paused | finished --stop()--> stopped

    ``stop`` on a running or paused pipeline closes the inputs and lets the
    items already read flow out (every item is processed exactly once), then
    stops every NuMap. Methods called in the wrong state raise PlumberError.

    A run fails when reading an output raises (a ``debug=True`` Piper
    raised the error of an item; an Exception that an input iterator
    raises is not such a failure, but that item's error, see
    ``Piper.connect``): the inputs
    are closed at once, the output that raised a PiperError is read to its
    end without counting or keeping anything (``Piper.discard_rest``: left
    unread, it could stall the other outputs through a NuMap buffer they
    share), the other outputs give what was read before the close, the run
    finishes and ``wait()`` raises the first such error.

    ``stats``: ``pipers_tracked`` ({Piper: {position: result}} for parallel
    Pipers with ``track=True``), ``pipers`` ({Piper: counters items_in,
    items_out, errors, busy seconds}, keyed by the Piper object), ``run_start``
    and ``run_end`` (epoch seconds or None).
    """

    def __init__(
        self,
        logger_options: dict[str, Any] | None = None,
        dagger: Dagger | None = None,
        name: str | None = None,
        **kwargs: Any,
    ) -> None:
        # Before the Dagger's own set-up adds pipes: changing them checks
        # the state (see _require_idle).
        if name is not None and not isinstance(name, str):
            raise PlumberError(f"Plumber: 'name' must be a str or None, got {name!r}")
        if dagger is not None and not isinstance(dagger, Dagger):
            raise PlumberError(
                f"Plumber: 'dagger' must be a Dagger (whose Pipers and pipes are "
                f"copied) or None, got {dagger!r}; give Pipers as pipers=[...] "
                "and pipes as pipes=[(a, b)]"
            )
        self.name = name or f"pipeline_{id(self):x}"
        self.state = "new"
        self._lock = threading.Lock()
        super().__init__(**kwargs)
        if dagger is not None:
            for piper in dagger:
                topo = dagger[piper]
                self.add_piper(piper, xtra=dict(topo.xtra), branch=topo.branch)
            for downstream, upstream in dagger.edges():
                self.add_pipe((upstream, downstream))
        self.logger_options = _started_logging(logger_options)
        self.log = get_logger(pipeline=self.name)
        # Run state, all guarded by _lock (with _changed to wait on it):
        #   state: see the class docstring;
        #   _pause_wanted: set: every puller must stop pulling after its
        #     current item. Set and cleared only under _lock, but read
        #     without it by the pullers before each item (an Event's flag
        #     is a cheap, thread-safe read); a puller that sees it set
        #     takes _lock and checks again (_wait_while_paused);
        #   _pullers_active: output pullers still reading their Piper;
        #   _pullers_paused: pullers waiting because of _pause_wanted;
        #   _draining: the run thread must pull everything left, then end.
        # _finished is set once the run thread has ended (outputs exhausted,
        # or an error in _failure).
        self._changed = threading.Condition(self._lock)
        self._pause_wanted = threading.Event()
        self._pullers_active = 0
        self._pullers_paused = 0
        self._draining = False
        self._finished = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self._run_start: float | None = None
        self._run_end: float | None = None
        self._tracked: dict[Any, dict[int, Any]] = {}

    # --- statistics -------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """A snapshot of tracked results, per-Piper counters and run times.

        ``pipers_tracked`` maps each tracked Piper to its results
        ``{index: result}``; ``pipers`` maps every Piper (the object, as
        ``pipers_tracked`` does, so Pipers sharing a name keep their own
        counters), upstream first, to ``{"items_in", "items_out", "errors",
        "busy"}``; ``run_start``/``run_end`` are ``time.time()`` values or
        None.
        """
        tracked = {**self._tracked, **self._live_tracked()}
        counters = {piper: piper.counters() for piper in self.postorder()}
        return {
            "pipers_tracked": tracked,
            "pipers": counters,
            "run_start": self._run_start,
            "run_end": self._run_end,
        }

    def _reset_stats(self) -> None:
        """Forget every statistic of earlier runs: the Pipers' counters, the
        tracked results and the run times (all together, so that ``stats``
        never mixes a new run's counters with an old run's times)."""
        for piper in self:
            piper.reset_stats()
        self._tracked = {}
        with self._lock:
            self._run_start = self._run_end = None

    def _live_tracked(self) -> dict[Any, dict[int, Any]]:
        """Tracked results of the connected parallel Pipers with track=True."""
        return {
            piper: piper.tracked()
            for piper in self
            if piper.track and piper.imap is not None and piper.state != "new"
        }

    # --- pipes --------------------------------------------------------------
    # Every change to the graph (adding or removing Pipers and pipes, through
    # any Dagger method) goes through these four. On a started pipeline a
    # new Piper would never be connected, so nothing would pull it, and a
    # removed one would leave its neighbours half-connected: its items would
    # be lost without an error. So the pipes change only while new or stopped.

    def _require_idle(self) -> None:
        with self._lock:
            self._require("change the pipes of", "new", "stopped")

    def add_node(
        self, node: Any, xtra: Mapping[Any, Any] | None = None, branch: Any = None
    ) -> bool:
        self._require_idle()
        return super().add_node(node, xtra, branch)

    def del_node(self, node: Any) -> bool:
        self._require_idle()
        return super().del_node(node)

    def add_edge(self, edge: Iterable[Any], double: bool = False) -> None:
        self._require_idle()
        super().add_edge(edge, double)

    def del_edge(self, edge: Iterable[Any], double: bool = False) -> None:
        self._require_idle()
        super().del_edge(edge, double)

    # --- state machine ------------------------------------------------------

    def _require(self, action: str, *states: str) -> None:
        if self.state not in states:
            allowed = " or ".join(states)
            raise PlumberError(
                f"Plumber {self.name!r}: cannot {action} a {self.state} pipeline "
                f"(it must be {allowed})"
            )

    def start(self, datas: Sequence[Any]) -> None:  # type: ignore[override]
        """Connect the inputs to ``datas`` (one iterable per input Piper, in
        pipeline order), connect the Pipers and start them and their NuMaps.

        Pipeline order is that of ``get_inputs()``: ``branch`` labels first,
        then shorter branches first (the 1.x contract), NOT the order the
        pipes were added in. With ``add_pipe((read1, trim, pair))`` then
        ``add_pipe((read2, pair))`` it is [read2, read1]; give the input
        Pipers ``branch=1`` and ``branch=2`` to pin it (see ``Dagger``).

        Raises PlumberError if already started, DaggerError for a topology
        that does not fit ``datas`` (nothing is started then).
        """
        with self._lock:
            self._require("start", "new", "stopped")
        self._reset_stats()
        for piper in self:
            piper.log = get_logger(pipeline=self.name, piper=piper.name)
        try:
            self.connect(datas)
            Dagger.start(self)
        except BaseException as error:
            self._abandon(error)
            raise
        with self._lock:
            self.state = "started"
            self._finished.clear()
            self._failure = None
        self.log.info("pipeline started", pipers=len(self))

    def _abandon(self, error: BaseException) -> None:
        """Undo a start that failed with ``error``: stop every NuMap it
        started (whole: workers ended, threads joined) and disconnect.

        ``error`` is what the caller must see, so a failure of the undo
        itself (e.g. a second Ctrl-C) is added to it as a note instead of
        replacing it. A NuMap is stopped with a blocking ``stop()``, never
        ``stop(forced=True)``, which only begins stopping: its tasks could
        not be removed then, and every later start would fail on them.
        """
        try:
            for piper in self._connected:
                # Also a NuMap whose Piper is not marked started (the start
                # was interrupted right after the NuMap's); a NuMap that
                # never started is left alone by _numaps.stop.
                if piper.imap is not None:
                    _numaps.stop(piper.imap)
                if piper.state == "started":
                    piper.stop()
            self.disconnect(forced=True)
        except BaseException as cleanup:
            error.add_note(
                f"Plumber {self.name!r}: undoing the failed start failed too "
                f"({cleanup!r}); some NuMaps may still run: stop them, or "
                "make new ones, before starting again"
            )

    def run(self) -> None:
        """Run (or resume) a started or paused pipeline in a background thread.

        Every output Piper is pulled to its end in its own thread (see
        ``_pull_all``); results are discarded except for tracked Pipers.
        Does nothing on a finished pipeline (e.g. one that ended while being
        paused); raises PlumberError in other states.
        """
        with self._lock:
            if self.state == "finished":
                return
            self._require("run", "started", "paused")
            if self.state == "paused":
                self._pause_wanted.clear()
                self._tighten_fan_outs()
                self.state = "running"
                self._changed.notify_all()
                self.log.info("pipeline resumed")
                return
            thread = threading.Thread(
                target=self._run, name=f"papy-run-{self.name}", daemon=True
            )
            # Started under the lock, so that no stop() or pause() sees a
            # running pipeline without its thread. (start() only waits for
            # the thread to exist; _run takes the lock later.)
            try:
                thread.start()
            except RuntimeError as error:  # out of threads or memory
                raise PlumberError(
                    f"Plumber {self.name!r}: cannot start the run thread "
                    f"({error}); free threads or memory, then run it again"
                ) from error
            self.state = "running"
            self._run_start = time.time()
            self._thread = thread
        self.log.info("pipeline running")

    def pause(self) -> None:
        """Stop pulling results; return once the run thread pulls nothing.

        Parallel Pipers go on until their NuMap buffers are full. An output
        that is being pulled finishes its item first; if that item waits
        for input data that has not arrived (an input whose
        ``waiting_for_data`` is True, as ``make_lines(follow=True)``'s at the
        end of its file), pause returns without it, and that item still
        comes out when its data arrives. A pipeline whose run has finished
        has nothing to pause: pause returns at once. Raises PlumberError in
        any other state but running.
        """
        with self._lock:
            if self.state == "finished":
                return
            self._require("pause", "running")
            self._pause_wanted.set()
            # A puller waiting in a fan-out for a slower output, which
            # pauses, could never finish its item and pause too.
            self._loosen_fan_outs()
            while (
                self._pullers_paused < self._pullers_active
                and not self._finished.is_set()
                and not self._input_waits_for_data()
            ):
                # An input's flag changes without telling us: look again
                # now and then, besides when a puller pauses.
                self._changed.wait(_INPUT_POLL)
            if not self._finished.is_set():
                self.state = "paused"
        self.log.info("pipeline paused")

    def _loosen_fan_outs(self) -> None:
        """Let the readers of every fan-out run ahead of each other (see
        ``Tee.loosen``). While paused they still stop soon: the pullers
        after their item, the NuMaps' feeders when their buffers are full."""
        for tee in self._tees():
            tee.loosen()

    def _tighten_fan_outs(self) -> None:
        """Bound the fan-outs again (see ``Tee.tighten``)."""
        for tee in self._tees():
            tee.tighten()

    def _input_waits_for_data(self) -> bool:
        return any(valve.waiting_for_data for valve in self._valves)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the running pipeline has finished.

        ``timeout`` [default: None]: seconds to wait, None (or ``inf``, or
        more than ``threading.TIMEOUT_MAX``) for no limit.

        Raises PlumberError (a RuntimeError) if it has not finished within
        ``timeout`` seconds, if it was never run, if it is paused (a paused
        pipeline never finishes: run() it again first), or if the run failed
        (the error is chained); and for a ``timeout`` that is nan, negative
        or not a number. A pause from another thread during the wait holds
        it until that thread runs the pipeline again.
        """
        try:
            seconds = timeout_seconds(
                f"Plumber {self.name!r}: wait()'s 'timeout'", timeout
            )
        except (TypeError, ValueError) as error:
            raise PlumberError(str(error)) from None
        with self._lock:
            if self.state in ("new", "started", "stopped") and self._thread is None:
                first = "run()" if self.state == "started" else "start() and run()"
                raise PlumberError(
                    f"Plumber {self.name!r}: cannot wait for a {self.state} "
                    f"pipeline; {first} it first"
                )
            if self.state == "paused":
                raise PlumberError(
                    f"Plumber {self.name!r}: cannot wait for a paused pipeline, "
                    "it would never finish; run() it again first"
                )
        # Sliced (see _waits): a Ctrl-C another thread received must still
        # interrupt a caller waiting without a timeout.
        if not wait_event(self._finished, seconds):
            raise PlumberError(
                f"Plumber {self.name!r}: the pipeline did not finish within {timeout} s"
            )
        if self._failure is not None:
            raise PlumberError(
                f"Plumber {self.name!r}: the run failed: {self._failure!r}"
            ) from self._failure

    def stop(self) -> None:  # type: ignore[override]
        """Stop the pipeline: close its inputs, let buffered items flow out,
        stop the NuMaps and disconnect the Pipers.

        An input read that is waiting for data when stop is called ends at
        once if the input has a ``stop_reading()`` method (papy's
        ``make_lines(follow=True)`` has); any other input iterator is not
        interrupted: stop returns once it gives its next item (which still
        goes through the pipeline) or ends. A Ctrl-C interrupts that wait;
        stop() can be called again.

        Raises PlumberError unless started, running, paused or finished.
        """
        with self._lock:
            self._require("stop", "started", "running", "paused", "finished")
        self.close_inputs()
        if self._thread is None:
            self._pull_all()
        else:
            with self._lock:
                self._draining = True
                self._pause_wanted.clear()
                self._changed.notify_all()
            # Waited for on the event the run thread sets last, not with
            # join(): a Ctrl-C inside join() can leave the thread marked as
            # ended, so a stop() called again after it would not wait and
            # would read the results before the NuMaps finished. Both waits
            # are sliced (see _waits) so that a Ctrl-C delivered to another
            # thread still interrupts them.
            wait_event(self._finished)
            join_thread(self._thread)
            self._thread = None
        self._tracked.update(self._live_tracked())
        Dagger.stop(self)
        self.disconnect()
        with self._lock:
            self.state = "stopped"
            self._draining = False
            self._pause_wanted.clear()
            if self._run_end is None and self._run_start is not None:
                self._run_end = time.time()
        self.log.info("pipeline stopped", **self._totals())

    # --- saving and loading -------------------------------------------------

    def save(self, filename: str | os.PathLike[str]) -> None:
        """Write the pipeline as Python source to ``filename``.

        Functions importable from a module are imported; functions defined
        in the running script are copied as source, with the globals they
        use; NuMaps keep the settings the user gave (defaults are computed
        again where the file loads). The file defines a module-level
        ``pipeline`` Plumber. It is written beside ``filename`` and renamed
        over it, so a failed save keeps the previous file. Raises
        PlumberError, naming where, for what cannot be written (lambdas,
        nested functions, methods, arguments that are not Python literals,
        globals that are none of module, function, literal or importable).
        """
        source = pipeline_source(self)
        _write_replacing(os.fspath(filename), source)
        self.log.info("pipeline saved", filename=os.fspath(filename))

    def load(self, filename: str | os.PathLike[str]) -> Plumber:
        """Replace this (new or stopped) pipeline's Pipers and pipes with those
        of the pipeline file ``filename``; returns self.

        WARNING: loading EXECUTES the file's code; load only files you trust.
        Raises PlumberError if this pipeline is in use, and PipelineFileError
        (a PlumberError) if the file cannot be loaded or defines no
        ``pipeline`` Plumber (see ``papy.core.load_pipeline``).
        """
        with self._lock:
            self._require("load", "new", "stopped")
        loaded = load_pipeline(filename)
        for piper in list(self):
            self.del_node(piper)
        for piper in loaded:
            topo = loaded[piper]
            self.add_piper(piper, xtra=dict(topo.xtra), branch=topo.branch)
        for downstream in loaded:
            for upstream in loaded[downstream]:
                self.add_pipe((upstream, downstream))
        self.name = loaded.name
        self.logger_options = dict(loaded.logger_options)
        self.log = get_logger(pipeline=self.name)
        # The stats of the replaced pipeline's runs are not this one's.
        self._reset_stats()
        return self

    # --- the run thread -----------------------------------------------------

    def _wait_while_paused(self) -> None:
        with self._lock:
            while self._pause_wanted.is_set() and not self._draining:
                self._pullers_paused += 1
                self._changed.notify_all()
                self._changed.wait()
                self._pullers_paused -= 1

    def _run(self) -> None:
        self._pull_all()
        with self._lock:
            self._run_end = time.time()
            if self.state in ("running", "paused"):
                self.state = "finished"
            self._finished.set()
            self._changed.notify_all()
        if self._failure is not None:
            self.log.error("pipeline failed", error=repr(self._failure))
        self.log.info("pipeline finished", **self._totals())

    def _pull_all(self) -> None:
        """Pull every output Piper to its end, each in its own thread.

        Outputs are read independently (not in lock-step) because they can
        emit different numbers of items per input item: waiting on one
        while another's results fill a shared NuMap's buffer would stall.
        """
        outputs = [p for p in self.get_outputs() if p.state == "started"]
        # The pullers wait at ``go`` until every one of them has started: an
        # output left without a puller would stall the others through the
        # NuMap buffers they share, so if one cannot start, none pulls.
        go = threading.Event()
        abandoned = threading.Event()
        threads: list[threading.Thread] = []
        for piper in outputs[1:]:
            thread = threading.Thread(
                target=self._pull_when_all_started,
                args=(go, abandoned, piper),
                name=f"papy-pull-{piper.name}",
                daemon=True,
            )
            try:
                thread.start()
            except RuntimeError as error:  # out of threads or memory
                self._record_failure(
                    PlumberError(
                        f"Plumber {self.name!r}: cannot start a thread to pull "
                        f"output Piper {piper.name!r} ({error})"
                    )
                )
                abandoned.set()
                go.set()
                for started in threads:
                    join_thread(started)
                return
            threads.append(thread)
        with self._lock:
            self._pullers_active = len(outputs)
        go.set()
        if outputs:
            self._pull(outputs[0])
        # stop() runs this in the caller's thread when the pipeline was
        # never run: joins sliced (see _waits) so Ctrl-C interrupts them.
        for thread in threads:
            join_thread(thread)

    def _pull_when_all_started(
        self, go: threading.Event, abandoned: threading.Event, piper: Any
    ) -> None:
        go.wait()
        if not abandoned.is_set():
            self._pull(piper)

    def _pull(self, piper: Any) -> None:
        """Pull one output Piper to its end, pausing when asked.

        A PiperError raised by ``next()`` (a debug=True Piper's) fails the
        run; the rest of the output is then discarded (see the class doc).
        """
        try:
            while True:
                if self._pause_wanted.is_set():  # no lock unless pausing
                    self._wait_while_paused()
                try:
                    piper.next()
                except StopIteration:
                    break
                except PiperError as error:
                    self._record_failure(error)
                    piper.discard_rest()
                    break
        except BaseException as error:  # reported by wait()
            self._record_failure(error)
        finally:
            with self._lock:
                self._pullers_active -= 1
                self._changed.notify_all()

    def _record_failure(self, error: BaseException) -> None:
        """Fail the run with ``error`` (the first failure is kept) and close
        the inputs, so that the outputs soon run dry and the run ends."""
        with self._lock:
            if self._failure is None:
                self._failure = error
        self.close_inputs()

    def _totals(self) -> dict[str, Any]:
        """What came out of the pipeline: the output Pipers' items and how
        many of them are errors (an error passed on by every Piper below
        the one that failed is counted once, where it leaves)."""
        outputs = [piper.counters() for piper in self.get_outputs()]
        return {
            "items_out": sum(counters["items_out"] for counters in outputs),
            "errors": sum(counters["errors"] for counters in outputs),
        }


def _started_logging(logger_options: Any) -> dict[str, Any]:
    """A copy of ``logger_options`` (None: {}), with which logging has been
    configured (``papy.util.config.start_logger(**logger_options)``) unless
    it is empty.

    Raises PlumberError, naming ``logger_options``, unless it is None or a
    dict whose keys are arguments of ``start_logger``, or if
    ``start_logger`` refuses a value (its error is the cause).
    """
    if logger_options is None:
        return {}
    if not isinstance(logger_options, Mapping):
        raise PlumberError(
            "Plumber: 'logger_options' must be a dict of keyword arguments for "
            f"papy.util.config.start_logger, or None, got {logger_options!r}"
        )
    options = dict(logger_options)
    if not options:
        return options
    from papy.util.config import start_logger

    known = inspect.signature(start_logger).parameters
    unknown = [key for key in options if key not in known]
    if unknown:
        raise PlumberError(
            f"Plumber: 'logger_options' has key(s) {', '.join(map(repr, unknown))} "
            "that papy.util.config.start_logger does not take; it takes "
            f"{', '.join(known)}"
        )
    try:
        start_logger(**options)
    except (TypeError, ValueError) as error:
        raise PlumberError(
            f"Plumber: 'logger_options' {options!r} were refused by "
            f"papy.util.config.start_logger: {error}"
        ) from error
    return options


def _write_replacing(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all: into a new file
    beside it, then renamed over it, so that a full disk or a crash never
    leaves a half-written pipeline where a good one was."""
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(
        dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        # mkstemp makes the file private; give it the old file's mode, or
        # that of a plain new file.
        mode = os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644
        os.chmod(temporary, mode)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
