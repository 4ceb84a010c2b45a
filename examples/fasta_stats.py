"""Per-sequence statistics of a FASTA file, computed on worker processes.

Run it with the ``papy`` command::

    papy run examples/fasta_stats.py                  # generates a demo FASTA
    papy run examples/fasta_stats.py my.fasta b.fa    # your own files

Without an INPUT it writes a reproducible demo file, ``fasta_stats_demo.fasta``
(3000 random DNA sequences, about 3.3 MB), in the current directory. The
result is a TSV, ``fasta_stats.tsv`` in the current directory (set the
environment variable FASTA_STATS_OUTPUT to write elsewhere; and
FASTA_STATS_DEMO_SEQUENCES to change the size of the demo file), with one row per
sequence: id, length, GC content, number of N bases and the count of every
3-mer.

The pipeline::

    records ──> stats ──┐
       └─────> kmers ───┴──> tsv_row ──> write_tsv

``records`` checks each (id, sequence) record; ``stats`` and ``kmers`` run on
one shared process NuMap; ``tsv_row`` merges their two results into a line;
``write_tsv`` appends it to the TSV. A record that is not DNA becomes an
error for that record only; the others go through.
"""

import os
from pathlib import Path

import fasta_functions as ff
from numap import NuMap
from papy.core import Piper, Plumber, Worker

OUTPUT = Path(os.environ.get("FASTA_STATS_OUTPUT", "fasta_stats.tsv"))
DEMO_INPUT = Path("fasta_stats_demo.fasta")
DEMO_SEQUENCES = int(os.environ.get("FASTA_STATS_DEMO_SEQUENCES", "3000"))

sink = ff.TsvSink(ff.COLUMNS)

# One pool of worker processes (one per CPU) shared by the two CPU-bound
# Pipers; a stride of 32 sends records to the workers in batches.
cpu = NuMap(worker_type="process", stride=32, name="cpu")

records = Piper(Worker(ff.check_record), name="records")
stats = Piper(Worker(ff.sequence_stats), parallel=cpu, name="stats")
kmers = Piper(Worker(ff.kmer_counts), parallel=cpu, name="kmers")
tsv_row = Piper(Worker(ff.merge_row), name="tsv_row")
write_tsv = Piper(Worker(sink.write), name="write_tsv")

pipeline = Plumber()
pipeline.add_pipe((records, stats, tsv_row, write_tsv))
pipeline.add_pipe((records, kmers, tsv_row))

_inputs: list[Path] = []


def make_inputs(paths):
    """One input stream (for ``records``): the records of the FASTA files,
    or of a freshly generated demo file when no path is given."""
    if not paths:
        paths = [ff.write_demo_fasta(DEMO_INPUT, sequences=DEMO_SEQUENCES)]
    # absolute(), not resolve(): resolved, /dev/fd/63 (from bash's <(...))
    # becomes a name that cannot be opened.
    _inputs[:] = [Path(path).absolute() for path in paths]
    sink.open(OUTPUT)
    return [ff.read_fasta_files(_inputs)]


def finish():
    """Close the TSV and say where the output went."""
    sink.close()
    if sink.path is None:
        return []
    sources = ", ".join(str(path) for path in _inputs)
    return [f"{sink.rows} rows of statistics for {sources} written to {sink.path}"]
