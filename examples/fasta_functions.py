"""Worker functions and helpers for the FASTA statistics example.

Everything here is plain Python with no PaPy import, so the functions can be
tested on their own and pickled to worker processes by reference (this module
is importable from the pipeline file's folder, which ``papy run`` puts on
``sys.path`` before the worker processes start).

PaPy worker functions take an ``inbox`` as their first argument: a tuple with
one item from each upstream Piper (for an input Piper, one item of its input
stream). A record is a ``(sequence_id, sequence)`` tuple.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

KMER_SIZE = 3
ALPHABET = "ACGT"
KMERS = ["".join(letters) for letters in itertools.product(ALPHABET, repeat=KMER_SIZE)]
STAT_COLUMNS = ["id", "length", "gc_content", "n_count"]
COLUMNS = STAT_COLUMNS + KMERS

Record = tuple[str, str]


# -- a deterministic FASTA file -------------------------------------------------


def write_demo_fasta(
    path: str | Path,
    sequences: int = 3000,
    min_length: int = 200,
    max_length: int = 2000,
    seed: int = 2026,
) -> Path:
    """Write a reproducible FASTA file of random DNA and return its path.

    Arguments:
      path: file to (over)write.
      sequences: number of records [default 3000, about 3.3 MB].
      min_length, max_length: bounds of each sequence's length, inclusive.
      seed: the same seed always gives the same bytes.

    Each sequence has its own GC bias and a sprinkling of ``N`` (unknown
    bases), and is wrapped at 60 characters per line, as real FASTA files are.
    """
    if sequences < 0:
        raise ValueError(f"sequences must be >= 0, got {sequences}")
    if not 1 <= min_length <= max_length:
        raise ValueError(
            f"need 1 <= min_length <= max_length, got {min_length}, {max_length}"
        )
    rng = random.Random(seed)
    path = Path(path)
    with path.open("w", encoding="ascii") as handle:
        for number in range(1, sequences + 1):
            length = rng.randint(min_length, max_length)
            gc = rng.uniform(0.3, 0.7)
            weights = [(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2, 0.002]
            bases = rng.choices("ACGTN", weights=weights, k=length)
            handle.write(f">seq{number:06d} demo length={length}\n")
            sequence = "".join(bases)
            for start in range(0, length, 60):
                handle.write(sequence[start : start + 60] + "\n")
    return path


# -- reading FASTA --------------------------------------------------------------


def parse_fasta(handle: Iterable[str]) -> Iterator[Record]:
    """Yield ``(id, sequence)`` records from the lines of a FASTA file.

    The id is the first word after ``>``; sequence lines are joined with
    whitespace removed and upper-cased. Text before the first header is an
    error (``ValueError`` naming the line number), so a file that is not FASTA
    fails loudly instead of producing no records.
    """
    header: str | None = None
    chunks: list[str] = []
    for number, line in enumerate(handle, start=1):
        line = line.strip()
        if not line:
            continue
        if line.startswith(">"):
            if header is not None:
                yield header, "".join(chunks)
            words = line[1:].split()
            header = words[0] if words else f"record_at_line_{number}"
            chunks = []
        elif header is None:
            raise ValueError(
                f"line {number} is sequence data before any '>' header: "
                "is this a FASTA file?"
            )
        else:
            chunks.append(line.upper())
    if header is not None:
        yield header, "".join(chunks)


def read_fasta_files(paths: Iterable[str | Path]) -> Iterator[Record]:
    """Yield the records of several FASTA files, one file after the other."""
    for path in paths:
        with open(path, encoding="ascii", errors="replace") as handle:
            yield from parse_fasta(handle)


# -- worker functions -----------------------------------------------------------

DNA_LETTERS = frozenset("ACGTN")


def check_record(inbox: tuple[Record]) -> Record:
    """Pass a DNA record on; raise ``ValueError`` naming the record and the
    first letters that are not A, C, G, T or N (e.g. a protein sequence)."""
    sequence_id, sequence = inbox[0]
    unexpected = set(sequence) - DNA_LETTERS
    if unexpected:
        shown = "".join(sorted(unexpected)[:5])
        raise ValueError(f"record {sequence_id!r} is not DNA: letters {shown!r}")
    return sequence_id, sequence


def sequence_stats(inbox: tuple[Record]) -> dict[str, Any]:
    """Length, GC content (of the A/C/G/T bases) and count of ``N`` bases.

    An empty record, or one with no A/C/G/T at all, raises ``ValueError``:
    its GC content is undefined (PaPy turns that into an error for this item
    only).
    """
    sequence_id, sequence = inbox[0]
    counts = {base: sequence.count(base) for base in "ACGTN"}
    known = counts["A"] + counts["C"] + counts["G"] + counts["T"]
    if known == 0:
        raise ValueError(f"record {sequence_id!r} has no A/C/G/T bases")
    return {
        "id": sequence_id,
        "length": len(sequence),
        "gc_content": (counts["G"] + counts["C"]) / known,
        "n_count": counts["N"],
    }


def kmer_counts(inbox: tuple[Record], k: int = KMER_SIZE) -> dict[str, Any]:
    """Count every overlapping k-mer of A/C/G/T (windows with other letters
    are skipped). Returns ``{"id": ..., "AAA": n, ...}`` with all 4**k k-mers."""
    sequence_id, sequence = inbox[0]
    counts = dict.fromkeys(
        ("".join(letters) for letters in itertools.product(ALPHABET, repeat=k)), 0
    )
    for start in range(len(sequence) - k + 1):
        kmer = sequence[start : start + k]
        if kmer in counts:
            counts[kmer] += 1
    counts["id"] = sequence_id
    return counts


def merge_row(inbox: tuple[dict[str, Any], ...]) -> str:
    """Merge the dictionaries from the upstream Pipers into one TSV line.

    The order of the upstream Pipers does not matter: the dictionaries are
    merged by key, and they must agree on the record id.
    """
    merged: dict[str, Any] = {}
    for part in inbox:
        if "id" in merged and part["id"] != merged["id"]:
            raise ValueError(
                f"streams out of step: {merged['id']!r} met {part['id']!r}"
            )
        merged.update(part)
    return format_row(merged)


def stats_row(inbox: tuple[dict[str, Any]]) -> str:
    """The statistics of ``sequence_stats`` as a TSV line of ``STAT_COLUMNS``."""
    return format_row(inbox[0], STAT_COLUMNS)


def format_row(row: dict[str, Any], columns: list[str] = COLUMNS) -> str:
    """One TSV line (no newline) with the values of ``columns`` in order."""
    cells = []
    for column in columns:
        value = row[column]
        cells.append(f"{value:.6f}" if isinstance(value, float) else str(value))
    return "\t".join(cells)


class TsvSink:
    """A TSV file that a linear Piper appends lines to, header first.

    Linear Pipers run in the parent process, so one object can hold the open
    file. ``open`` truncates the file and writes the header; ``write`` is the
    worker function; ``close`` flushes and reports the number of rows.
    """

    def __init__(self, columns: list[str]) -> None:
        self.columns = columns
        self.path: Path | None = None
        self.rows = 0
        self._handle: IO[str] | None = None

    def open(self, path: str | Path) -> None:
        self.close()
        self.path = Path(path).resolve()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = self.path.open("w", encoding="utf-8")
        self._handle.write("\t".join(self.columns) + "\n")
        self.rows = 0

    def write(self, inbox: tuple[str]) -> str:
        """Worker function: write one line; returns it unchanged."""
        if self._handle is None:
            raise RuntimeError("TsvSink.write called before TsvSink.open(path)")
        self._handle.write(inbox[0] + "\n")
        self.rows += 1
        return inbox[0]

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
