"""The FASTA example's functions on their own: generator, parser, statistics."""

from __future__ import annotations

import hashlib
import io
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
sys.path.insert(0, str(EXAMPLES))

import fasta_functions as ff  # noqa: E402


@pytest.mark.timeout(20)
def test_demo_fasta_is_deterministic_and_realistic(tmp_path):
    first = ff.write_demo_fasta(tmp_path / "a.fasta", sequences=300)
    second = ff.write_demo_fasta(tmp_path / "b.fasta", sequences=300)
    data = first.read_bytes()
    assert hashlib.sha256(data).digest() == hashlib.sha256(second.read_bytes()).digest()
    records = list(ff.read_fasta_files([first]))
    assert len(records) == 300
    assert records[0][0] == "seq000001"
    assert all(200 <= len(sequence) <= 2000 for _, sequence in records)
    assert set("".join(sequence for _, sequence in records)) <= set("ACGTN")
    sequence_lines = [
        line for line in data.decode().splitlines() if not line.startswith(">")
    ]
    assert max(len(line) for line in sequence_lines) == 60


@pytest.mark.timeout(20)
def test_default_demo_file_is_a_few_megabytes(tmp_path):
    path = ff.write_demo_fasta(tmp_path / "demo.fasta")
    size = path.stat().st_size
    assert 2_000_000 < size < 6_000_000
    assert sum(1 for line in path.open() if line.startswith(">")) == 3000


@pytest.mark.timeout(10)
def test_different_seeds_give_different_files(tmp_path):
    a = ff.write_demo_fasta(tmp_path / "a.fasta", sequences=5, seed=1).read_text()
    b = ff.write_demo_fasta(tmp_path / "b.fasta", sequences=5, seed=2).read_text()
    assert a != b


@pytest.mark.timeout(10)
def test_generator_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="sequences"):
        ff.write_demo_fasta(tmp_path / "x", sequences=-1)
    with pytest.raises(ValueError, match="min_length"):
        ff.write_demo_fasta(tmp_path / "x", min_length=10, max_length=5)


@pytest.mark.timeout(10)
def test_parser_joins_lines_and_takes_first_word():
    text = ">one first record\nacgt\nAC\n\n>two\nGGG\n>empty\n"
    assert list(ff.parse_fasta(io.StringIO(text))) == [
        ("one", "ACGTAC"),
        ("two", "GGG"),
        ("empty", ""),
    ]


@pytest.mark.timeout(10)
def test_parser_refuses_text_that_is_not_fasta():
    with pytest.raises(ValueError, match="line 1 .*FASTA"):
        list(ff.parse_fasta(io.StringIO("hello world\n>x\nACGT\n")))


@given(
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z0-9_]{1,12}", fullmatch=True),
            st.text("ACGTN", max_size=200),
        ),
        max_size=20,
    )
)
@pytest.mark.timeout(30)
def test_parser_round_trips_written_records(records):
    text = "".join(
        f">{name}\n" + "".join(seq[i : i + 7] + "\n" for i in range(0, len(seq), 7))
        for name, seq in records
    )
    assert list(ff.parse_fasta(io.StringIO(text))) == records


@pytest.mark.timeout(10)
def test_sequence_stats_counts_gc_of_known_bases():
    stats = ff.sequence_stats((("r1", "GGCCATNN"),))
    assert stats == {"id": "r1", "length": 8, "gc_content": 4 / 6, "n_count": 2}


@pytest.mark.timeout(10)
def test_sequence_stats_refuses_records_without_bases():
    with pytest.raises(ValueError, match="'r2' has no A/C/G/T"):
        ff.sequence_stats((("r2", "NNNN"),))


@given(st.text("ACGTN", max_size=300))
@pytest.mark.timeout(30)
def test_kmer_counts_match_a_direct_count(sequence):
    counts = ff.kmer_counts((("r", sequence),))
    assert counts.pop("id") == "r"
    assert set(counts) == set(ff.KMERS)
    for kmer in ("AAA", "ACG", "TTT", "GCG"):
        direct = sum(1 for i in range(len(sequence) - 2) if sequence[i : i + 3] == kmer)
        assert counts[kmer] == direct
    windows = sum(1 for i in range(len(sequence) - 2) if "N" not in sequence[i : i + 3])
    assert sum(counts.values()) == windows


@pytest.mark.timeout(10)
def test_merge_row_ignores_upstream_order_and_checks_ids():
    stats = ff.sequence_stats((("r", "ACGTACGT"),))
    kmers = ff.kmer_counts((("r", "ACGTACGT"),))
    row = ff.merge_row((stats, kmers))
    assert row == ff.merge_row((kmers, stats))
    cells = row.split("\t")
    assert len(cells) == len(ff.COLUMNS)
    assert cells[:4] == ["r", "8", "0.500000", "0"]
    assert cells[ff.COLUMNS.index("ACG")] == "2"
    with pytest.raises(ValueError, match="out of step"):
        ff.merge_row((stats, ff.kmer_counts((("other", "ACGT"),))))


@pytest.mark.timeout(10)
def test_tsv_sink_writes_header_then_rows(tmp_path):
    sink = ff.TsvSink(["a", "b"])
    with pytest.raises(RuntimeError, match="before TsvSink.open"):
        sink.write(("1\t2",))
    sink.open(tmp_path / "sub" / "out.tsv")
    assert sink.write(("1\t2",)) == "1\t2"
    sink.close()
    assert (tmp_path / "sub" / "out.tsv").read_text() == "a\tb\n1\t2\n"
    assert sink.rows == 1


@pytest.mark.timeout(10)
def test_stats_row_has_the_stat_columns_only():
    row = ff.stats_row((ff.sequence_stats((("r", "ACGTN"),)),))
    assert row == "r\t5\t0.500000\t1"


@pytest.mark.timeout(10)
def test_check_record_refuses_protein():
    assert ff.check_record((("d", "ACGTN"),)) == ("d", "ACGTN")
    with pytest.raises(ValueError, match="'p' is not DNA: letters 'EKLM'"):
        ff.check_record((("p", "MKLEACG"),))
