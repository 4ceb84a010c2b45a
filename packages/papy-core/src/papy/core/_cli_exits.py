"""Exit statuses of the ``papy`` command, in one place (the help prints them)."""

from __future__ import annotations

import sys
from enum import IntEnum


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived. ``papy run`` handles it as it handles Ctrl-C (the
    pipeline is stopped, the summary printed, ``finish()`` called), so that
    what the pipeline file started (servers, worker processes) does not
    outlive a killed run; the exit status is 143. Defined here, not beside
    the SIGTERM handler in ``_cli_run``, because ``main`` must be able to
    catch it even when a Ctrl-C lands while ``_cli_run`` is being imported."""


class ExitStatus(IntEnum):
    OK = 0  # every item went through
    INTERNAL = 1  # an unexpected error inside PaPy (run with --debug and report it)
    USAGE = 2  # bad command-line arguments (argparse's own status)
    ITEMS_FAILED = 3  # the pipeline ran, but some items ended as errors
    BAD_PIPELINE = 4  # pipeline file missing or broken, or its finish() raised
    BAD_INPUT = 5  # an INPUT does not exist or the inputs could not be made
    GRAPH_OUTPUT = 6  # `papy graph` could not write a file (e.g. Graphviz missing)
    INTERRUPTED = 130  # stopped with Ctrl-C
    TERMINATED = 143  # stopped with SIGTERM (128 + 15, as shells report it)


EXIT_STATUS_HELP = """\
exit status:
  0    every item went through the pipeline
  1    unexpected internal error (rerun with --debug and report it)
  2    bad command-line arguments
  3    the pipeline ran but some items failed (the first errors are shown),
       or a debug=True Piper raised for one and ended the run there
  4    the pipeline file is missing, is not valid Python, raised while loading,
       defines no module-level `pipeline` Plumber, its pipes do not fit, or
       its finish() raised after the run
  5    an INPUT does not exist, the pipeline's make_inputs() failed or
       returned the wrong number of streams, or reading an input broke off
       (the items read before go through)
  6    papy graph could not write an output file (e.g. Graphviz missing)
  130  interrupted (Ctrl-C): the pipeline is stopped, the summary printed
  143  terminated (SIGTERM): handled as Ctrl-C is
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
