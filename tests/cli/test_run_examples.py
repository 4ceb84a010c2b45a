"""`papy run` on the example pipelines, end to end: outputs checked against
a direct computation, exit statuses, summaries, logs, worker overrides."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys

import pytest
from cli_helpers import EXAMPLES, PIPELINES

sys.path.insert(0, str(EXAMPLES))

import fasta_functions as ff  # noqa: E402

ITEMS_FAILED = 3


def read_fasta(path):
    """An independent reader: '>' lines start records, the rest is sequence."""
    records, name = [], None
    for line in path.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            records.append([name, ""])
        elif line.strip():
            records[-1][1] += line.strip().upper()
    return records


def expected_row(name, sequence):
    known = sum(sequence.count(base) for base in "ACGT")
    gc = (sequence.count("G") + sequence.count("C")) / known
    cells = [name, str(len(sequence)), f"{gc:.6f}", str(sequence.count("N"))]
    windows = [sequence[i : i + 3] for i in range(len(sequence) - 2)]
    cells += [str(windows.count(kmer)) for kmer in ff.KMERS]
    return cells


def read_tsv(path):
    lines = path.read_text().splitlines()
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:]]


def log_events(stdout, event):
    """key=value fields of the log lines for ``event`` (non-terminal output)."""
    found = []
    for line in stdout.splitlines():
        if re.search(rf"\] {event}\b", line):
            found.append(dict(re.findall(r"(\w+)=('[^']*'|\S+)", line)))
    return found


@pytest.mark.timeout(90)
def test_fasta_stats_on_a_given_file(papy, tmp_path):
    fasta = ff.write_demo_fasta(tmp_path / "small.fasta", sequences=150, seed=11)
    result = papy("run", str(EXAMPLES / "fasta_stats.py"), "small.fasta")
    assert result.status == 0, result.output
    header, rows = read_tsv(tmp_path / "fasta_stats.tsv")
    assert header == ff.COLUMNS
    records = read_fasta(fasta)
    assert len(rows) == len(records) == 150
    for row, (name, sequence) in zip(rows, records, strict=True):
        assert row == expected_row(name, sequence)
    summary = {
        event["piper"]: event for event in log_events(result.stdout, "piper summary")
    }
    assert set(summary) == {"records", "stats", "kmers", "tsv_row", "write_tsv"}
    assert summary["stats"]["items_in"] == "150"
    assert summary["write_tsv"]["items_out"] == "150"
    assert summary["stats"]["runs_on"].startswith("'process x")
    total = log_events(result.stdout, "pipeline summary")[0]
    assert (total["items_in"], total["items_out"], total["errors"]) == (
        "150",
        "150",
        "0",
    )
    assert (
        f"150 rows of statistics for {fasta} written to {tmp_path / 'fasta_stats.tsv'}"
        in result.stdout
    )


@pytest.mark.timeout(90)
def test_fasta_stats_quick_start_generates_its_input(papy, tmp_path):
    # The README's quick start without INPUT; a smaller demo file keeps the
    # suite fast (the default size is checked in test_fasta_functions).
    result = papy(
        "run",
        str(EXAMPLES / "fasta_stats.py"),
        env={"FASTA_STATS_DEMO_SEQUENCES": "400"},
        timeout=80,
    )
    assert result.status == 0, result.output
    demo = tmp_path / "fasta_stats_demo.fasta"
    again = ff.write_demo_fasta(tmp_path / "again.fasta", sequences=400)
    assert demo.read_bytes() == again.read_bytes()
    header, rows = read_tsv(tmp_path / "fasta_stats.tsv")
    assert len(rows) == 400
    for row, (name, sequence) in list(zip(rows, read_fasta(demo), strict=True))[::7]:
        assert row == expected_row(name, sequence)
    assert f"written to {tmp_path / 'fasta_stats.tsv'}" in result.stdout


@pytest.mark.timeout(60)
def test_worker_overrides_and_log_file(papy, tmp_path):
    ff.write_demo_fasta(tmp_path / "small.fasta", sequences=60)
    result = papy(
        "run",
        str(EXAMPLES / "fasta_stats.py"),
        "small.fasta",
        "--workers",
        "3",
        "--worker-type",
        "thread",
        "--log-file",
        "run.log",
    )
    assert result.status == 0, result.output
    summary = {
        event["piper"]: event for event in log_events(result.stdout, "piper summary")
    }
    assert summary["kmers"]["runs_on"] == "'thread x3'"
    events = [
        json.loads(line) for line in (tmp_path / "run.log").read_text().splitlines()
    ]
    totals = [event for event in events if event["event"] == "pipeline summary"]
    assert totals and totals[0]["items_out"] == 60
    assert len(read_tsv(tmp_path / "fasta_stats.tsv")[1]) == 60


@pytest.mark.timeout(40)
def test_more_workers_keep_the_stride_within_an_explicit_buffer(papy, tmp_path):
    out = tmp_path / "capped.json"
    result = papy(
        "run",
        str(PIPELINES / "capped_buffer.py"),
        "--workers",
        "4",
        env={"CAPPED_BUFFER_OUTPUT": str(out)},
        timeout=30,
    )
    assert result.status == 0, result.output
    written = json.loads(out.read_text())
    assert written["results"] == [n * n for n in range(30)]
    settings = written["settings"]
    assert settings["worker_num"] == 4
    assert settings["buffer"] == 2
    assert settings["stride"] <= settings["buffer"]


@pytest.mark.timeout(60)
def test_records_that_fail_do_not_stop_the_others(papy, tmp_path):
    ff.write_demo_fasta(tmp_path / "dna.fasta", sequences=20)
    text = (tmp_path / "dna.fasta").read_text()
    text += ">protein1\nMKVLAAGIVG\n>empty1\nNNNN\n"
    (tmp_path / "mixed.fasta").write_text(text)
    result = papy("run", str(EXAMPLES / "fasta_stats.py"), "mixed.fasta")
    assert result.status == ITEMS_FAILED, result.output
    _, rows = read_tsv(tmp_path / "fasta_stats.tsv")
    assert [row[0] for row in rows] == [f"seq{n:06d}" for n in range(1, 21)]
    assert "'protein1' is not DNA" in result.output
    assert "'empty1' has no A/C/G/T bases" in result.output
    assert "Traceback" not in result.output


@pytest.mark.timeout(60)
def test_failing_items_give_status_3_and_the_first_errors(papy, tmp_path):
    out = tmp_path / "kept.tsv"
    result = papy(
        "run",
        str(PIPELINES / "some_items_fail.py"),
        env={"SOME_ITEMS_FAIL_OUTPUT": str(out)},
    )
    assert result.status == ITEMS_FAILED, result.output
    kept = [int(line.split("\t")[0]) for line in out.read_text().splitlines()]
    assert kept == [n for n in range(50) if n % 7]
    assert result.output.count("ZeroDivisionError") >= 5
    assert "Traceback" not in result.output
    total = log_events(result.stdout, "pipeline summary")[0]
    assert (total["items_in"], total["items_out"], total["errors"]) == ("50", "50", "8")
    debug = papy(
        "run",
        str(PIPELINES / "some_items_fail.py"),
        "--debug",
        "--show-errors",
        "1",
        env={"SOME_ITEMS_FAIL_OUTPUT": str(out)},
    )
    assert debug.status == ITEMS_FAILED
    assert "Traceback" in debug.output
    assert "return value, 1 / (value % 7)" in debug.output


@pytest.mark.timeout(60)
def test_paths_as_items(papy, tmp_path):
    (tmp_path / "a.txt").write_text("1\n2\n3\n")
    (tmp_path / "b.txt").write_text("x\n")
    result = papy(
        "run",
        str(PIPELINES / "line_counts.py"),
        "a.txt",
        "b.txt",
        env={"LINE_COUNTS_OUTPUT": str(tmp_path / "counts.tsv")},
    )
    assert result.status == 0, result.output
    assert (tmp_path / "counts.tsv").read_text() == "a.txt\t3\nb.txt\t1\n"


@pytest.mark.timeout(60)
def test_http_checksums_on_threads(papy, tmp_path):
    result = papy("run", str(EXAMPLES / "http_checksums.py"))
    assert result.status == 0, result.output
    header, rows = read_tsv(tmp_path / "http_checksums.tsv")
    assert header == ["url", "size", "sha256"]
    files = sorted((tmp_path / "http_checksums_demo").iterdir())
    assert len(rows) == len(files) == 200
    for (url, size, digest), file in zip(rows, files, strict=True):
        data = file.read_bytes()
        assert url.startswith("http://127.0.0.1:") and url.endswith(file.name)
        assert (int(size), digest) == (len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.timeout(90)
def test_remote_workers_on_a_local_rpyc_classic_server(papy, tmp_path):
    fasta = ff.write_demo_fasta(tmp_path / "r.fasta", sequences=120, seed=5)
    result = papy("run", str(EXAMPLES / "remote_fasta_stats.py"), "r.fasta", timeout=80)
    assert result.status == 0, result.output
    header, rows = read_tsv(tmp_path / "remote_fasta_stats.tsv")
    assert header == ff.STAT_COLUMNS
    expected = [
        expected_row(name, sequence)[:4] for name, sequence in read_fasta(fasta)
    ]
    assert rows == expected
    port = int(re.search(r"by workers on 127\.0\.0\.1:(\d+)", result.stdout).group(1))
    summary = {
        event["piper"]: event for event in log_events(result.stdout, "piper summary")
    }
    assert summary["stats"]["runs_on"] == f"'remote 127.0.0.1:{port} x2'"
    # finish() stopped the server: nothing listens on its port any more.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@pytest.mark.timeout(60)
def test_functions_defined_in_the_pipeline_file_run_on_processes(papy, tmp_path):
    out = tmp_path / "squares.txt"
    result = papy(
        "run",
        str(PIPELINES / "inline_process.py"),
        env={"INLINE_PROCESS_OUTPUT": str(out)},
    )
    assert result.status == 0, result.output
    assert out.read_text().split() == [str(n * n + 1000) for n in range(40)]


@pytest.mark.timeout(60)
def test_errors_that_do_not_reach_an_output_still_give_status_3(papy):
    result = papy("run", str(PIPELINES / "errors_left_behind.py"))
    assert result.status == ITEMS_FAILED, result.output
    assert "papy: errors in piper(s) 'left' did not reach the outputs" in (
        result.stderr
    )
    total = log_events(result.stdout, "pipeline summary")[0]
    assert (total["items_in"], total["items_out"], total["errors"]) == ("5", "2", "0")
