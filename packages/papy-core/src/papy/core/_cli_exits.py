"""Exit statuses of the ``papy`` command, in one place (the help prints them)."""

from __future__ import annotations

import signal
import sys
from enum import IntEnum


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived. ``papy run`` handles it as it handles
    Ctrl-C (the pipeline is stopped, the summary printed, ``finish()``
    called), so that what the pipeline file started (servers, worker
    processes) does not outlive a killed run; the exit status is
    TERMINATED or HANGUP.
    Defined here, not beside the signal handlers in ``_cli_run``, because
    ``main`` must be able to catch it even when a Ctrl-C lands while
    ``_cli_run`` is being imported."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)  # the args pickling passes back
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        # 128 + the signal's number, as shells report it: TERMINATED, HANGUP
        self.status = int(ExitStatus(128 + signum))

    def __str__(self) -> str:
        return self.signal_name


class ExitStatus(IntEnum):
    OK = 0  # every item went through
    INTERNAL = 1  # an unexpected error inside PaPy (run with --debug and report it)
    USAGE = 2  # bad command-line arguments (argparse's own status)
    ITEMS_FAILED = 3  # the pipeline ran, but some items ended as errors
    BAD_PIPELINE = 4  # pipeline file missing or broken, or its finish() failed
    BAD_INPUT = 5  # an INPUT does not exist or the inputs could not be made
    GRAPH_OUTPUT = 6  # `papy graph` could not write a file (e.g. Graphviz missing)
    HANGUP = 129  # stopped with SIGHUP (the terminal closed; 128 + 1)
    INTERRUPTED = 130  # stopped with Ctrl-C
    READER_GONE = 141  # `papy graph`: stdout's reader left (128 + SIGPIPE)
    TERMINATED = 143  # stopped with SIGTERM (128 + 15, as shells report it)


EXIT_STATUS_HELP = """\
exit status:
  0    every item went through the pipeline
  1    unexpected internal error (rerun with --debug and report it)
  2    bad command-line arguments
  3    the pipeline ran but some items failed (the first errors are shown),
       or a debug=True Piper raised for one and ended the run there
  4    the pipeline file is missing, is not valid Python, raised or called
       sys.exit() while loading, defines no module-level `pipeline` Plumber,
       its pipes do not fit, or its finish() raised or returned something
       other than lines after the run
  5    an INPUT does not exist, the pipeline's make_inputs() failed or
       returned the wrong number of streams (or text, or something not
       iterable), or reading an input broke off (the items read before go
       through)
  6    papy graph could not write an output file or standard output (e.g.
       Graphviz missing, disk full)
  129  hung up (SIGHUP, the terminal closed): handled as SIGTERM is; what
       papy prints to that terminal is dropped (--log-file keeps the log)
  130  interrupted (Ctrl-C): the pipeline is stopped, the summary printed
  141  papy graph: standard output closed by its reader before the drawing
       was written (as for a tool that SIGPIPE ended)
  143  terminated (SIGTERM): handled as Ctrl-C is, except that worker
       processes the SIGTERM reached too (a signal to the process group, as
       timeout and service managers send) end at once, and their items in
       flight are counted as stopped, not failed
"""


def fail(
    message: str, status: ExitStatus, details: str = "", debug: bool = False
) -> int:
    """Print ``papy: error: message`` (and ``details`` with --debug) to stderr."""
    if debug and details:
        sys.stderr.write(details.rstrip("\n") + "\n")
    sys.stderr.write(f"papy: error: {message}\n")
    if details and not debug:
        sys.stderr.write("papy: (rerun with --debug to see the Python traceback)\n")
    return int(status)
