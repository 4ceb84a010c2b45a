"""The ``papy`` command: run a pipeline file, or draw it.

``main`` parses the command line and dispatches to ``papy run`` (in
``_cli_run``) or ``papy graph`` (below); both return an ``ExitStatus``.
"""

from __future__ import annotations

import argparse
import math
import sys
import traceback
from collections.abc import Callable, Sequence

from papy.core._cli_exits import EXIT_STATUS_HELP, ExitStatus, Terminated, fail

PIPELINE_FILE_HELP = """\
pipeline files:
  A pipeline file is Python source that defines a module-level `pipeline`
  holding a papy.core.Plumber - the format Plumber.save writes. The file's
  folder is put on sys.path, so it can import helper modules next to it.
  Loading a pipeline file runs its code: run only files you trust.
"""

RUN_DESCRIPTION = """\
Load PIPELINE.py, feed it the INPUT paths, run it to the end and print a
summary per piper (items in/out, errors, busy time) and the total.

On a terminal a table of per-piper counters is redrawn while the pipeline
runs; when standard output is not a terminal, progress and the summary are
written as structured log lines (key=value) instead.

How INPUT paths reach the pipeline:
  - if the pipeline file defines make_inputs(paths), it is called with the
    list of INPUT paths (possibly empty) and returns one iterable of items
    per input piper, in the order of pipeline.get_inputs();
  - otherwise every input piper receives the INPUT paths themselves as its
    items (at least one INPUT is then required).
  Every INPUT must be an existing file or folder.
After the run, a finish() function in the pipeline file, if any, is called;
the lines it returns (e.g. where the output was written) are printed.
"""

RUN_EXAMPLES = """\
examples:
  papy run examples/fasta_stats.py
  papy run examples/fasta_stats.py reads.fasta --workers 4
  papy run my_pipeline.py data/*.csv --worker-type thread --log-file run.log
"""

GRAPH_DESCRIPTION = """\
Draw the pipeline in PIPELINE.py: one box per piper with its name, worker
functions, where it runs (linear, or a NuMap: thread/process/remote and
worker count) and its consume/produce/spawn settings; one arrow per pipe, in
the direction the data flows. Pipers sharing a NuMap are grouped.

The format follows the suffix of each -o FILE:
  .dot / .gv   Graphviz DOT text
  .mmd         Mermaid flowchart text (renders on GitHub, mermaid.live)
  .svg / .png  an image, drawn by Graphviz 'dot' (install it with e.g.
               'sudo apt-get install graphviz' or 'brew install graphviz')
  no suffix    both FILE.dot and FILE.mmd
Without -o, Mermaid text is printed to standard output.
"""

GRAPH_EXAMPLES = """\
examples:
  papy graph examples/fasta_stats.py -o fasta_stats.mmd
  papy graph examples/fasta_stats.py -o picture      # picture.dot + picture.mmd
  papy graph examples/fasta_stats.py -o fasta_stats.svg
"""

MAIN_DESCRIPTION = """\
PaPy: parallel pipelines of Python functions.

  papy run PIPELINE.py [INPUT ...]    run a pipeline and summarise it
  papy graph PIPELINE.py -o FILE      draw a pipeline (DOT, Mermaid, SVG, PNG)

Run 'papy run --help' or 'papy graph --help' for details.
"""

MAIN_EXAMPLES = """\
example:
  papy run examples/fasta_stats.py    # statistics of a generated FASTA file
"""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep our paragraphs as written."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="papy",
        description=MAIN_DESCRIPTION,
        epilog=MAIN_EXAMPLES + "\n" + PIPELINE_FILE_HELP + "\n" + EXIT_STATUS_HELP,
        formatter_class=_Formatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a pipeline file",
        description=RUN_DESCRIPTION,
        epilog=RUN_EXAMPLES + "\n" + PIPELINE_FILE_HELP + "\n" + EXIT_STATUS_HELP,
        formatter_class=_Formatter,
    )
    run.add_argument("pipeline", metavar="PIPELINE.py", help="the pipeline file")
    run.add_argument(
        "inputs", metavar="INPUT", nargs="*", default=[], help="input paths"
    )
    run.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        help="run every NuMap of the pipeline with N local workers (a "
        "default stride follows)",
    )
    run.add_argument(
        "--worker-type",
        choices=("thread", "process"),
        help="run every NuMap of the pipeline on threads or on processes",
    )
    run.add_argument("--log-file", metavar="FILE", help="also log to FILE (JSON lines)")
    run.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="lowest level logged [INFO; on a terminal the screen shows "
        "only ERROR and above unless this is given]",
    )
    run.add_argument(
        "--show-errors",
        type=_int_at_least(0),
        default=5,
        metavar="N",
        help="how many failed items to describe at the end [5]",
    )
    run.add_argument(
        "--progress-interval",
        type=_positive_seconds,
        default=2.0,
        metavar="SECONDS",
        help="seconds between progress log lines when not on a terminal [2]",
    )
    run.add_argument(
        "--debug",
        action="store_true",
        help="show Python tracebacks for errors (in the pipeline file, the "
        "inputs and the failed items)",
    )

    graph = commands.add_parser(
        "graph",
        help="draw a pipeline file as DOT, Mermaid, SVG or PNG",
        description=GRAPH_DESCRIPTION,
        epilog=GRAPH_EXAMPLES + "\n" + PIPELINE_FILE_HELP + "\n" + EXIT_STATUS_HELP,
        formatter_class=_Formatter,
    )
    graph.add_argument("pipeline", metavar="PIPELINE.py", help="the pipeline file")
    graph.add_argument(
        "-o",
        "--output",
        action="append",
        metavar="FILE",
        help="file to write; the suffix picks the format (repeatable)",
    )
    graph.add_argument("--debug", action="store_true", help="show Python tracebacks")
    return parser


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int = _int_at_least(1)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds, got {text!r}"
        ) from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(
            f"must be a positive number of seconds, got {text!r}"
        )
    return value


def graph_command(args: argparse.Namespace) -> int:
    from papy.core._cli_graph import (
        GraphOutputError,
        describe,
        output_paths,
        to_mermaid,
        write_picture,
    )
    from papy.core._errors import PipelineFileError
    from papy.core._save import load_pipeline_file

    try:
        targets = [path for text in args.output or [] for path in output_paths(text)]
    except GraphOutputError as error:
        return fail(str(error), ExitStatus.USAGE)
    try:
        loaded = load_pipeline_file(args.pipeline)
    except PipelineFileError as error:
        return fail(str(error), ExitStatus.BAD_PIPELINE, error.details, args.debug)
    picture = describe(loaded.pipeline, title=loaded.path.stem)
    if not targets:
        sys.stdout.write(to_mermaid(picture))
        return int(ExitStatus.OK)
    for target in targets:
        try:
            write_picture(picture, target)
        except GraphOutputError as error:
            return fail(str(error), ExitStatus.GRAPH_OUTPUT)
        except OSError as error:
            return fail(
                f"cannot write {target}: {error.strerror}", ExitStatus.GRAPH_OUTPUT
            )
        print(f"wrote {target}")
    return int(ExitStatus.OK)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``papy`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return int(ExitStatus.USAGE)
    try:
        if args.command == "graph":
            return graph_command(args)
        from papy.core._cli_run import run_command, sigterm_as_interrupt

        with sigterm_as_interrupt():
            return run_command(args)
    except Terminated:
        sys.stderr.write("papy: terminated\n")
        return int(ExitStatus.TERMINATED)
    except KeyboardInterrupt:
        sys.stderr.write("papy: interrupted\n")
        return int(ExitStatus.INTERRUPTED)
    except Exception as error:  # a bug in PaPy, not a user mistake
        return fail(
            f"internal error: {type(error).__name__}: {error}",
            ExitStatus.INTERNAL,
            traceback.format_exc(),
            args.debug,
        )


if __name__ == "__main__":
    sys.exit(main())
