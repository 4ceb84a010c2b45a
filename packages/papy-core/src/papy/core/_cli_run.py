"""``papy run``: load a pipeline file, feed it its inputs, run it, summarise.

Steps, each with its own exit status when it fails (see ``_cli_exits``):
load the file (4), check the INPUT paths and make the input streams (5),
start and run the pipeline while showing progress, then print the summary,
the first failed items (3) and the lines of the file's ``finish()`` hook.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from papy.core._cli_errors import ErrorCollector, FailedItem
from papy.core._cli_exits import ExitStatus, Terminated, fail
from papy.core._cli_graph import numap_info
from papy.core._cli_inputs import (
    GuardedStream,
    InputError,
    check_paths,
    iter_not_text,
    make_datas,
)
from papy.core._cli_progress import (
    LiveView,
    LogView,
    PiperCounts,
    ProgressView,
    Totals,
    log_summary,
    print_summary,
    totals,
)
from papy.core._cli_stdout import UntilBroken, is_terminal, silence
from papy.core._errors import DaggerError, PipelineFileError, PiperError, PlumberError
from papy.core._save import LoadedPipeline, load_pipeline_file
from rich.console import Console

# Seconds that a stop after SIGTERM or SIGHUP waits for the items in
# flight before it aborts as a second signal would: whoever sent it (a
# service manager, `timeout`) expects the process to end, and may never
# send another; a pipeline that has stalled would never drain.
TERM_DRAIN_SECONDS = 30.0


@dataclass
class Session:
    """What one ``papy run`` works with."""

    args: argparse.Namespace
    console: Console
    on_terminal: bool
    logger: Any


# -- the pipeline's shape ---------------------------------------------------------


def pipers_in_order(pipeline: Any) -> list[Any]:
    """Pipers upstream first (a Dagger's postorder)."""
    return list(pipeline.postorder())


def piper_labels(pipeline: Any) -> dict[int, str]:
    """What the command calls each Piper (by ``id``): its name, numbered
    ``name[1]``, ``name[2]``, ... upstream first where Pipers share a name
    (as Pipers with a default name often do)."""
    pipers = pipers_in_order(pipeline)
    sharing = Counter(piper.name for piper in pipers)
    seen: Counter[str] = Counter()
    labels = {}
    for piper in pipers:
        name = piper.name
        if sharing[name] > 1:
            seen[name] += 1
            name = f"{name}[{seen[name]}]"
        labels[id(piper)] = name
    return labels


def distinct_numaps(pipeline: Any) -> list[Any]:
    numaps: dict[int, Any] = {}
    for piper in pipers_in_order(pipeline):
        if piper.imap is not None:
            numaps.setdefault(id(piper.imap), piper.imap)
    return list(numaps.values())


def runs_on(piper: Any) -> str:
    """``linear``, or where the Piper's NuMap runs, e.g. ``process x2``."""
    if piper.imap is None:
        return "linear"
    return numap_info(piper.imap).summary()


class OverrideError(Exception):
    """--workers / --worker-type cannot apply to one of the pipeline's NuMaps."""


def override_workers(
    pipeline: Any, workers: int | None, worker_type: str | None
) -> None:
    """Apply --workers / --worker-type to every NuMap before it starts.

    A NuMap with remote workers keeps them: ``workers`` sets its local
    workers only if it has some (a purely remote NuMap stays remote), and
    it cannot become a thread NuMap (OverrideError). A stride equal to the
    old number of workers (NuMap's default) follows the new number, so the
    added workers get items; an explicit ``buffer`` (``numap.buffer`` is not
    None before start) caps that stride, as NuMap requires buffer >= stride.
    The NuMap of a produce>1 or consume>1 Piper keeps its stride: that
    stride lays out which items its results or groups are made of
    (consume=2 over raw items pairs item i with item i + stride), so
    following the workers would change the results, and it keeps equal
    the strides that must stay equal (see ``Dagger.stride_pairs``, whose
    Pipers all have produce>1 or consume>1).
    """
    laying_out = {
        id(piper.imap)
        for piper in pipeline
        if piper.imap is not None and (piper.consume > 1 or piper.produce > 1)
    }
    for numap in distinct_numaps(pipeline):
        remote_hosts = getattr(numap, "worker_remote", None) or ()
        remote = sum(number for _, number in remote_hosts)
        if worker_type == "thread" and remote:
            raise OverrideError(
                f"--worker-type thread: NuMap {numap.name!r} has remote workers, "
                "which need worker_type 'process'"
            )
        if worker_type is not None:
            numap.worker_type = worker_type
        if workers is not None and not (remote and numap.worker_num == 0):
            default_stride = numap.stride == numap.worker_num + remote
            if default_stride and id(numap) not in laying_out:
                numap.stride = workers + remote
                if numap.buffer is not None:
                    numap.stride = min(numap.stride, numap.buffer)
            numap.worker_num = workers


def piper_counts(pipeline: Any) -> list[PiperCounts]:
    inputs = {id(piper) for piper in pipeline.get_inputs()}
    outputs = {id(piper) for piper in pipeline.get_outputs()}
    labels = piper_labels(pipeline)
    counts = []
    for piper in pipers_in_order(pipeline):
        # Called while the pipeline runs: a consistent copy of the counters
        # (as Plumber.stats takes), so items_in/items_out/errors agree.
        stats = piper.counters()
        counts.append(
            PiperCounts(
                name=labels[id(piper)],
                mode=runs_on(piper),
                items_in=stats["items_in"],
                items_out=stats["items_out"],
                errors=stats["errors"],
                busy_seconds=stats["busy"],
                is_input=id(piper) in inputs,
                is_output=id(piper) in outputs,
            )
        )
    return counts


# -- running ----------------------------------------------------------------------


def setup_logging(
    args: argparse.Namespace, on_terminal: bool, console: Console, stdout: UntilBroken
) -> Any:
    from papy.util.config import start_logger

    level = args.log_level or "INFO"
    # On a terminal the live table shows progress and the end lists failed
    # items, so the screen gets only errors unless a level was asked for.
    stream_level = level if (args.log_level or not on_terminal) else "ERROR"
    return start_logger(
        log_to_file=bool(args.log_file),
        log_filename=args.log_file,
        log_rotate=False,
        log_to_file_level=level,
        log_to_stream=_ConsoleStream(console) if on_terminal else stdout,
        log_to_stream_level=stream_level,
    ).bind(command="papy run")


class _ConsoleStream:
    """A text stream that prints through rich, above the live table."""

    def __init__(self, console: Console) -> None:
        self._console = console

    def write(self, text: str) -> int:
        self._console.print(text, end="", markup=False, highlight=False)
        return len(text)

    def flush(self) -> None:
        return None


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def _raise_hung_up(signum: int, frame: Any) -> None:
    # The terminal is gone: writing to it would fail (EIO) at every
    # message papy prints while it stops.
    for stream in (sys.stdout, sys.stderr):
        if is_terminal(stream):
            silence(stream)
    raise Terminated(signum)


def _in_this_process(handler: Any) -> Any:
    """``handler``, run only in the process that installs it. A process
    forked from papy (a worker process) inherits the handler and would
    raise Terminated inside the user's function; there the signal ends
    the process, as its default action does."""
    owner = os.getpid()

    def handle(signum: int, frame: Any) -> None:
        if os.getpid() == owner:
            handler(signum, frame)
            return
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    return handle


@contextlib.contextmanager
def ending_signals_as_interrupts() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise Terminated in the main thread.
    A SIGHUP that is ignored (``nohup papy run ...``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handlers = {signal.SIGTERM: _raise_terminated}
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        handlers[signal.SIGHUP] = _raise_hung_up
    previous = {
        signum: signal.signal(signum, _in_this_process(handler))
        for signum, handler in handlers.items()
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class RunFailed(Exception):
    """The pipeline's run thread ended with an error (not an item error)."""


class DebugStop(Exception):
    """A ``debug=True`` Piper raised the error of an item (``error``), which
    ended the run there, as debug mode means."""

    def __init__(self, error: PiperError) -> None:
        super().__init__(str(error))
        self.error = error


def _finished(pipeline: Any, timeout: float) -> bool:
    """Wait up to ``timeout`` s; True once the run has ended, DebugStop if a
    debug=True Piper raised an item's error, RunFailed if the run thread
    failed otherwise (``wait`` chains that failure as the cause)."""
    try:
        pipeline.wait(timeout)
    except PlumberError as error:
        cause = error.__cause__
        if cause is None:
            return False
        # Only a debug=True Piper raises a PiperError out of next().
        if isinstance(cause, PiperError):
            raise DebugStop(cause) from cause
        raise RunFailed(f"{type(cause).__name__}: {cause}") from cause
    return True


def drive(session: Session, pipeline: Any) -> tuple[float, KeyboardInterrupt | None]:
    """Run a started pipeline to its end, showing progress, and stop it.

    Returns the seconds it ran and what interrupted it, if anything: on
    Ctrl-C (or SIGTERM or SIGHUP, as Terminated) the pipeline is stopped
    (the items already read flow out). Raises RunFailed if the run thread
    failed, and DebugStop, after stopping the pipeline, if a debug=True
    Piper raised.
    """
    view: ProgressView
    poll_seconds = 0.2  # how often the live table is redrawn
    if session.on_terminal:
        view = LiveView(session.console, f"papy run {Path(session.args.pipeline).name}")
    else:
        view = LogView(session.logger, session.args.progress_interval)
        poll_seconds = min(poll_seconds, session.args.progress_interval)
    begin = time.monotonic()
    interrupted = None
    try:
        pipeline.run()
        while not _finished(pipeline, poll_seconds):
            view.update(piper_counts(pipeline), time.monotonic() - begin)
    except KeyboardInterrupt as interruption:
        interrupted = interruption
    except DebugStop:
        view.update(piper_counts(pipeline), time.monotonic() - begin)
        view.close()
        pipeline.stop()
        raise
    except BaseException:
        view.close()
        with contextlib.suppress(PlumberError):
            pipeline.stop()
        raise
    seconds = time.monotonic() - begin
    view.update(piper_counts(pipeline), seconds)
    view.close()
    return seconds, stop_unless_interrupted(pipeline, interrupted)


def stop_unless_interrupted(
    pipeline: Any, interrupted: KeyboardInterrupt | None
) -> KeyboardInterrupt | None:
    """``pipeline.stop()``, after saying so if the run was ``interrupted``;
    a Ctrl-C (or SIGTERM, SIGHUP) ends it without waiting any longer for
    the items in flight. Returns what interrupted the run: ``interrupted``,
    or that signal if it came first or is the SIGTERM or SIGHUP that
    ended the run.

    The interruption is returned, not raised, so that the caller still
    prints the summary of what was done and the lines of ``finish()``.
    The pipeline is left as the signal found it: the NuMaps' worker
    processes end with papy, as after any Ctrl-C.
    """
    second_signal = None
    try:
        if interrupted is not None:
            # stop() lets the items in flight finish, which a slow function
            # can make long, and waits for a read of an input that cannot
            # be told to stop: say so, and how not to wait. (Inside the
            # try: the next Ctrl-C can come as soon as this is written.)
            sys.stderr.write(stopping_message(interrupted))
        if isinstance(interrupted, Terminated):
            second_signal = _signal_again_after(TERM_DRAIN_SECONDS, interrupted.signum)
        pipeline.stop()
    except KeyboardInterrupt as again:
        sys.stderr.write("papy: stopped without waiting for the items in flight\n")
        if interrupted is None or isinstance(again, Terminated):
            return again
    finally:
        if second_signal is not None:
            second_signal.cancel()
    return interrupted


def _signal_again_after(seconds: float, signum: int) -> threading.Timer:
    """A started timer that sends this process ``signum`` after
    ``seconds``: the second signal that aborts a stop (cancel it once the
    stop is over)."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signum))
    timer.daemon = True
    timer.start()
    return timer


def stopping_message(interruption: KeyboardInterrupt) -> str:
    """What ``papy run`` says when it starts to stop after ``interruption``."""
    if isinstance(interruption, Terminated):
        # Sent to the process group, the signal has ended the worker
        # processes already: their items cannot finish.
        return (
            f"papy: stopping ({interruption.signal_name}); the items in flight "
            "finish first, except on worker processes the signal reached too, "
            "and an input waiting for data is waited for, for up to "
            f"{TERM_DRAIN_SECONDS:.0f} s (Ctrl-C or a second "
            f"{interruption.signal_name} to abort now)\n"
        )
    return (
        "papy: stopping; the items in flight finish first, and an input "
        "waiting for data is waited for (Ctrl-C again to abort)\n"
    )


class CommandError(Exception):
    """``papy run`` cannot go on: the message for the user, the exit status
    and (for --debug) a traceback."""

    def __init__(self, message: str, status: ExitStatus, details: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.details = details


@dataclass
class RunResult:
    seconds: float
    interrupted: KeyboardInterrupt | None  # Terminated for SIGTERM, SIGHUP
    streams: list[GuardedStream]
    # The item error a debug=True Piper raised, which ended the run early.
    debug_error: PiperError | None = None


def start_and_run(
    session: Session, loaded: LoadedPipeline, collector: ErrorCollector
) -> RunResult:
    """Apply the overrides, make the inputs, start and run the pipeline.

    Raises CommandError when any step before the run fails, or the run
    thread fails.
    """
    args = session.args
    pipeline = loaded.pipeline
    try:
        override_workers(pipeline, args.workers, args.worker_type)
    except OverrideError as error:
        raise CommandError(str(error), ExitStatus.USAGE) from error
    try:
        check_paths(args.inputs)
        streams = make_datas(loaded, args.inputs)
    except InputError as error:
        raise CommandError(str(error), ExitStatus.BAD_INPUT, error.details) from error
    collector.attach(pipeline, piper_labels(pipeline))
    session.logger.info("papy run", pipeline=str(loaded.path), inputs=args.inputs)
    try:
        pipeline.start(streams)
    except (DaggerError, PiperError, PlumberError) as error:
        raise CommandError(
            f"cannot start the pipeline in {args.pipeline}: {error}",
            ExitStatus.BAD_PIPELINE,
        ) from error
    begin = time.monotonic()
    try:
        seconds, interrupted = drive(session, pipeline)
    except DebugStop as stop:
        seconds = time.monotonic() - begin
        return RunResult(seconds, None, streams, stop.error)
    except RunFailed as error:
        cause = error.__cause__ or error
        raise CommandError(
            f"the pipeline stopped with an error: {error}",
            ExitStatus.INTERNAL,
            "".join(traceback.format_exception(cause)),
        ) from error
    return RunResult(seconds, interrupted, streams)


def run_command(args: argparse.Namespace) -> int:
    """``papy run``: returns the exit status (see ``_cli_exits``)."""
    stdout = UntilBroken(sys.stdout)
    on_terminal = stdout.isatty()
    console = Console(file=stdout)  # type: ignore[arg-type]
    try:
        loaded = load_pipeline_file(args.pipeline)
    except PipelineFileError as error:
        return fail(str(error), ExitStatus.BAD_PIPELINE, error.details, args.debug)
    try:
        logger = setup_logging(args, on_terminal, console, stdout)
    except OSError as error:
        return fail(
            f"cannot write the log file {args.log_file!r}: {error.strerror}",
            ExitStatus.USAGE,
        )
    session = Session(args, console, on_terminal, logger)
    collector = ErrorCollector(max(args.show_errors, 0))
    try:
        result = start_and_run(session, loaded, collector)
    except CommandError as error:
        _finish_quietly(loaded, session)  # let the file release what it holds
        return fail(str(error), error.status, error.details, args.debug)
    except BaseException:
        _finish_quietly(loaded, session)
        raise
    try:
        finish_lines = _call_finish(loaded, session)
        finish_error = None
    except FinishFailed as error:
        finish_lines, finish_error = [], error
    interrupted = result.interrupted is not None
    ended_by = ending_signal(result.interrupted)
    stopped = collector.stopped(ended_by)
    total = summarise(
        session, loaded.pipeline, result.seconds, finish_lines, interrupted, stopped
    )
    if result.debug_error is not None:
        report_debug_stop(collector, result.debug_error, args.debug)
    elif total.failed:
        report_failures(collector.first(ended_by), total, args.debug)
    if stopped:
        sys.stderr.write(
            f"papy: {stopped} result(s) in flight stopped: {ended_by} also "
            "ended the worker processes holding them (not counted as failed)\n"
        )
    if isinstance(result.interrupted, Terminated):
        sys.stderr.write(
            f"papy: terminated ({ended_by}); the summary covers the items read\n"
        )
        return result.interrupted.status
    if interrupted:
        sys.stderr.write("papy: interrupted; the summary covers the items read\n")
        return int(ExitStatus.INTERRUPTED)
    if finish_error is not None:
        details = "".join(traceback.format_exception(finish_error))
        fail(str(finish_error), ExitStatus.BAD_PIPELINE, details, args.debug)
    failures = [stream.failure() for stream in result.streams]
    broken = [failure for failure in failures if failure is not None]
    if broken:
        for failure in broken:
            fail(str(failure), ExitStatus.BAD_INPUT, failure.details, args.debug)
        return int(ExitStatus.BAD_INPUT)
    if total.failed or result.debug_error is not None:
        return int(ExitStatus.ITEMS_FAILED)
    if finish_error is not None:
        return int(ExitStatus.BAD_PIPELINE)
    return int(ExitStatus.OK)


def ending_signal(interruption: KeyboardInterrupt | None) -> str | None:
    """The name of the signal that ended the run (SIGTERM, SIGHUP), or None."""
    if isinstance(interruption, Terminated):
        return interruption.signal_name
    return None


def summarise(
    session: Session,
    pipeline: Any,
    seconds: float,
    finish_lines: list[str],
    interrupted: bool,
    stopped: int,
) -> Totals:
    """Print (terminal) or log the per-Piper summary, the total and the lines
    from ``finish()``; return the totals. ``stopped`` error results are
    items the run was stopped under (see ``Totals``)."""
    counts = piper_counts(pipeline)
    total = totals(counts, seconds, stopped)
    if session.on_terminal:
        print_summary(session.console, counts, total, interrupted)
        for line in finish_lines:
            session.console.print(line, markup=False, highlight=False, soft_wrap=True)
    else:
        level = summary_level(session.args.log_level)
        log_summary(session.logger, counts, total, interrupted, level)
        emit = getattr(session.logger, level)
        for line in finish_lines:
            emit("output", message=line)
    return total


def summary_level(log_level: str | None) -> str:
    """The level of the summary and ``output`` events off a terminal: INFO,
    or the --log-level asked for when it is higher, so that they are what
    the run tells its caller whatever the filter."""
    if log_level in ("WARNING", "ERROR"):
        return log_level.lower()
    return "info"


def report_failures(shown: list[FailedItem], total: Totals, debug: bool) -> None:
    """The first failed results, ``shown``, on stderr (with tracebacks under
    --debug). Counted as results: with several output Pipers, one failed
    item gives a failed result at each."""
    if total.errors:
        head = f"papy: {total.errors} failed result(s)"
        if shown:
            head += f"; the first {len(shown)}:" if len(shown) < total.errors else ":"
    else:
        names = ", ".join(repr(name) for name in total.pipers_with_errors)
        head = f"papy: errors in piper(s) {names} did not reach the outputs"
    sys.stderr.write(head + "\n")
    for failed in shown:
        sys.stderr.write(f"  {failed.summary()}\n")
        if debug and failed.traceback():
            indented = "".join(
                "    " + line for line in failed.traceback().splitlines(True)
            )
            sys.stderr.write(indented.rstrip("\n") + "\n")
    if not debug and any(failed.traceback() for failed in shown):
        sys.stderr.write("papy: (rerun with --debug to see the Python tracebacks)\n")


def report_debug_stop(
    collector: ErrorCollector, error: PiperError, debug: bool
) -> None:
    """Say that a debug=True Piper stopped the run at a failed item, and show
    that item as report_failures shows failed items."""
    shown = [failed for failed in collector.first() if failed.error is error]
    sys.stderr.write(
        "papy: a debug=True Piper raised the error of an item, which stops "
        "the run there (the summary covers the items up to it):\n"
    )
    if shown:
        failed = shown[0]
        sys.stderr.write(f"  {failed.summary()}\n")
        traceback_text = failed.traceback()
    else:  # not kept (--show-errors 0)
        sys.stderr.write(f"  {error}\n")
        traceback_text = ""
    if debug and traceback_text:
        indented = "".join("    " + line for line in traceback_text.splitlines(True))
        sys.stderr.write(indented.rstrip("\n") + "\n")
    elif traceback_text:
        sys.stderr.write("papy: (rerun with --debug to see the Python traceback)\n")


class FinishFailed(Exception):
    """The pipeline file's ``finish()`` raised (its outputs may be incomplete)."""


def _call_finish(loaded: LoadedPipeline, session: Session) -> list[str]:
    """The lines ``finish()`` returns; FinishFailed if it raised, or returned
    neither None nor an iterable of lines."""
    finish = loaded.hook("finish")
    if finish is None:
        return []
    try:
        returned = finish()
    except Exception as error:
        raise _finish_raised(loaded, session, error) from error
    try:
        lines = iter_not_text(() if returned is None else returned)
    except TypeError as error:
        session.logger.error("finish_failed", error=str(error))
        raise FinishFailed(
            f"finish() in {loaded.path} returned {error}: return a list of lines "
            "(or None)"
        ) from error
    try:
        return [str(line) for line in lines]  # a generator finish runs here
    except Exception as error:
        raise _finish_raised(loaded, session, error) from error


def _finish_raised(
    loaded: LoadedPipeline, session: Session, error: Exception
) -> FinishFailed:
    described = f"{type(error).__name__}: {error}"
    session.logger.error("finish_failed", error=described)
    return FinishFailed(
        f"finish() in {loaded.path} raised {described}; its outputs may be incomplete"
    )


def _finish_quietly(loaded: LoadedPipeline, session: Session) -> None:
    """finish() after a failed run: the run's error is the one reported."""
    with contextlib.suppress(FinishFailed):
        _call_finish(loaded, session)
