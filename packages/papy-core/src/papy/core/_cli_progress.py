"""Showing a running pipeline: live rich table on a terminal, structured log
lines otherwise, and the final summary in either form.

Both views take the same input: a list of ``PiperCounts`` (one per Piper, in
upstream-to-downstream order) and the seconds elapsed since the start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

from rich.console import Console
from rich.live import Live
from rich.table import Table


@dataclass(frozen=True)
class PiperCounts:
    name: str
    mode: str  # "linear", "thread x4", "process x2", ...
    items_in: int
    items_out: int
    errors: int
    busy_seconds: float
    is_input: bool = False  # an input Piper of the pipeline
    is_output: bool = False  # an output Piper of the pipeline


@dataclass(frozen=True)
class Totals:
    """Counted over the pipeline's inputs and outputs. With several output
    Pipers one item gives a result at each, so ``items_out`` and ``errors``
    count results, not input items."""

    items_in: int  # items read by the input Pipers
    items_out: int  # results of the output Pipers
    errors: int  # failed results of the output Pipers (not counting ``stopped``)
    seconds: float
    # Pipers that passed on errors, when none reached an output.
    pipers_with_errors: tuple[str, ...] = ()
    # Results whose worker processes the signal that ended the run killed.
    stopped: int = 0

    @property
    def failed(self) -> bool:
        """Some item did not go through (also when its error did not reach
        an output, e.g. when an input stream broke off)."""
        return bool(self.errors or self.pipers_with_errors)


def totals(counts: list[PiperCounts], seconds: float, stopped: int = 0) -> Totals:
    """Totals over the pipeline: what entered through the input Pipers and
    what left through the output Pipers (intermediate Pipers are not summed,
    so an item is counted once however many Pipers it crossed). ``stopped``
    of the error results are items the run was stopped under (see Totals)."""
    output_errors = sum(count.errors for count in counts if count.is_output)
    # Errors inside the pipeline are the ones at the outputs, unless none
    # reached them: then the Pipers that made them are named.
    inner_only = () if output_errors else (c.name for c in counts if c.errors)
    return Totals(
        items_in=sum(count.items_in for count in counts if count.is_input),
        items_out=sum(count.items_out for count in counts if count.is_output),
        errors=output_errors - stopped,
        seconds=seconds,
        pipers_with_errors=tuple(inner_only),
        stopped=stopped,
    )


def _rate(items: int, seconds: float) -> str:
    return f"{items / seconds:,.0f}/s" if seconds > 0 else "-"


def counts_table(counts: list[PiperCounts], seconds: float, title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("piper")
    table.add_column("runs on")
    for column in ("in", "out", "errors", "busy s", "out rate"):
        table.add_column(column, justify="right")
    for count in counts:
        errors = f"[red]{count.errors:,}[/red]" if count.errors else "0"
        table.add_row(
            count.name,
            count.mode,
            f"{count.items_in:,}",
            f"{count.items_out:,}",
            errors,
            f"{count.busy_seconds:.2f}",
            _rate(count.items_out, seconds),
        )
    return table


class ProgressView(Protocol):
    def update(self, counts: list[PiperCounts], seconds: float) -> None: ...

    def close(self) -> None: ...


class LiveView:
    """A table redrawn in place on the terminal (rich ``Live``)."""

    def __init__(self, console: Console, title: str) -> None:
        self._title = title
        self._live = Live(
            counts_table([], 0.0, title),
            console=console,
            auto_refresh=False,
            transient=True,  # the summary table replaces it at the end
        )
        self._live.start()

    def update(self, counts: list[PiperCounts], seconds: float) -> None:
        title = f"{self._title} - running {seconds:,.1f} s"
        self._live.update(counts_table(counts, seconds, title), refresh=True)

    def close(self) -> None:
        self._live.stop()


class LogView:
    """One ``progress`` log event per Piper every ``interval`` seconds."""

    def __init__(self, logger: Any, interval: float) -> None:
        self._logger = logger
        self._interval = interval
        self._last = time.monotonic()

    def update(self, counts: list[PiperCounts], seconds: float) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        for count in counts:
            self._logger.info(
                "progress",
                piper=count.name,
                items_in=count.items_in,
                items_out=count.items_out,
                errors=count.errors,
                elapsed_s=round(seconds, 3),
            )

    def close(self) -> None:
        return None


def print_summary(
    console: Console, counts: list[PiperCounts], total: Totals, interrupted: bool
) -> None:
    """The summary for a person at a terminal: a table and one total line."""
    title = "Pipeline interrupted" if interrupted else "Pipeline finished"
    console.print(counts_table(counts, total.seconds, title))
    if total.failed:
        status = "[red]with errors[/red]"
    elif interrupted:
        status = "[yellow]interrupted[/yellow]"
    else:
        status = "[green]all ok[/green]"
    stopped = f", {total.stopped:,} stopped" if total.stopped else ""
    console.print(
        f"total: {total.items_in:,} items in, {total.items_out:,} results out, "
        f"{total.errors:,} failed{stopped}, {total.seconds:.2f} s - {status}"
    )


def log_summary(
    logger: Any,
    counts: list[PiperCounts],
    total: Totals,
    interrupted: bool,
    level: str = "info",
) -> None:
    """The summary as log events of ``level``: one ``piper summary`` per
    Piper, then ``pipeline summary`` (with ``interrupted=True`` after Ctrl-C,
    SIGTERM or SIGHUP, and ``stopped=N`` for the results of worker processes
    that signal killed)."""
    emit = getattr(logger, level)
    for count in counts:
        emit(
            "piper summary",
            piper=count.name,
            runs_on=count.mode,
            items_in=count.items_in,
            items_out=count.items_out,
            errors=count.errors,
            busy_s=round(count.busy_seconds, 3),
        )
    emit(
        "pipeline summary",
        items_in=total.items_in,
        items_out=total.items_out,
        errors=total.errors,
        **({"stopped": total.stopped} if total.stopped else {}),
        seconds=round(total.seconds, 3),
        **({"interrupted": True} if interrupted else {}),
    )
