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
from papy.core._cli_stdout import open_closed_standard_streams, silence

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


def build_parsers() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The parser of the ``papy`` command and that of ``papy run``."""
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
    run.add_argument(
        "--log-file",
        type=_file_name,
        metavar="FILE",
        help="also log to FILE (JSON lines)",
    )
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
        type=_interval_seconds,
        default=2.0,
        metavar="SECONDS",
        help="seconds between progress log lines when not on a terminal, "
        f"at least {SHORTEST_INTERVAL} [2]",
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
    return parser, run


def parse_command_line(
    parser: argparse.ArgumentParser,
    run_parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
) -> argparse.Namespace:
    """The arguments of ``papy`` (``parser``), and of ``papy run``
    (``run_parser``) where its options and INPUTs mix."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["run"]:
        # Options may come between the INPUTs (`papy run p.py a --workers 2
        # b`), which parse_args does not allow for a subcommand's parser.
        return run_parser.parse_intermixed_args(
            arguments[1:], argparse.Namespace(command="run")
        )
    return parser.parse_args(arguments)


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


# The shortest --progress-interval: below it the progress lines would be
# logged as fast as the loop can turn, starving the pipeline.
SHORTEST_INTERVAL = 0.01


def _interval_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a number of seconds, got {text!r}"
        ) from None
    if not (value >= SHORTEST_INTERVAL and math.isfinite(value)):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds of at least {SHORTEST_INTERVAL}, got {text!r}"
        )
    return value


def _file_name(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("expected a file name, got ''")
    return text


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
        return print_to_stdout(to_mermaid(picture))
    for target in targets:
        try:
            write_picture(picture, target)
        except GraphOutputError as error:
            return fail(str(error), ExitStatus.GRAPH_OUTPUT)
        except OSError as error:
            return fail(
                f"cannot write {target}: {error.strerror}", ExitStatus.GRAPH_OUTPUT
            )
        status = print_to_stdout(f"wrote {target}\n")
        if status != ExitStatus.OK:
            return status
    return int(ExitStatus.OK)


def print_to_stdout(text: str) -> int:
    """Write ``text`` to standard output; the exit status: OK, READER_GONE
    when the reader has gone (``papy graph ... | head -1``: ended without a
    word, as Unix tools end), GRAPH_OUTPUT when writing failed otherwise."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        silence(sys.stdout)
        return int(ExitStatus.READER_GONE)
    except OSError as error:
        silence(sys.stdout)
        return fail(
            f"cannot write to standard output: {error.strerror}",
            ExitStatus.GRAPH_OUTPUT,
        )
    return int(ExitStatus.OK)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``papy`` console script; returns the exit status."""
    open_closed_standard_streams()
    parser, run_parser = build_parsers()
    args = parse_command_line(parser, run_parser, argv)
    if args.command is None:
        parser.print_help()
        return int(ExitStatus.USAGE)
    try:
        if args.command == "graph":
            return graph_command(args)
        from papy.core._cli_run import ending_signals_as_interrupts, run_command

        with ending_signals_as_interrupts():
            return run_command(args)
    except Terminated as terminated:
        sys.stderr.write(f"papy: terminated ({terminated.signal_name})\n")
        return terminated.status
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
