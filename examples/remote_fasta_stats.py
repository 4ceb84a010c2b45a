"""FASTA statistics computed by worker processes of an RPyC classic server.

Run it with the ``papy`` command::

    papy run examples/remote_fasta_stats.py            # a small demo FASTA
    papy run examples/remote_fasta_stats.py my.fasta

The example starts its own ``rpyc_classic`` server on 127.0.0.1 (a free port,
loopback only, never registered), and the ``stats`` Piper runs on a NuMap
with no local workers and two workers on that "remote" host. The server gets
this folder on its PYTHONPATH so its workers can import ``fasta_functions``:
a real remote host needs the function modules installed in the same way.
A classic server runs any code it is sent: use it only on trusted networks,
or with SSL.

Output: ``remote_fasta_stats.tsv`` in the current directory (environment
variable REMOTE_FASTA_STATS_OUTPUT to change it): id, length, GC content and
number of N bases for each sequence.

The pipeline::

    records ──> stats (remote NuMap on 127.0.0.1) ──> tsv_row ──> write_tsv
"""

import os
from pathlib import Path

import fasta_functions as ff
from local_rpyc import ClassicServer, free_port
from numap import NuMap
from papy.core import Piper, Plumber, Worker

OUTPUT = Path(os.environ.get("REMOTE_FASTA_STATS_OUTPUT", "remote_fasta_stats.tsv"))
DEMO_INPUT = Path("remote_fasta_stats_demo.fasta")
HOST = f"127.0.0.1:{free_port()}"

server = ClassicServer(int(HOST.split(":")[1]), [Path(__file__).resolve().parent])
sink = ff.TsvSink(ff.STAT_COLUMNS)

remote = NuMap(worker_num=0, worker_remote=[(HOST, 2)], stride=16, name="remote")

records = Piper(Worker(ff.check_record), name="records")
stats = Piper(Worker(ff.sequence_stats), parallel=remote, name="stats")
tsv_row = Piper(Worker(ff.stats_row), name="tsv_row")
write_tsv = Piper(Worker(sink.write), name="write_tsv")

pipeline = Plumber()
pipeline.add_pipe((records, stats, tsv_row, write_tsv))


def make_inputs(paths):
    """Start the server; the records of the FASTA files (or of a 500-sequence
    demo file) are the one input stream."""
    if not paths:
        paths = [ff.write_demo_fasta(DEMO_INPUT, sequences=500)]
    server.start()
    sink.open(OUTPUT)
    return [ff.read_fasta_files(paths)]


def finish():
    """Stop the server, close the TSV and say where it is."""
    server.stop()
    sink.close()
    if sink.path is None:
        return []
    return [f"{sink.rows} rows written to {sink.path} by workers on {HOST}"]
