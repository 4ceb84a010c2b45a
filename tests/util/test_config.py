"""start_logger: structlog and logging into the same file and stream."""

import io
import json
import logging
import logging.handlers
import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest
import structlog
from papy.util.config import get_defaults, start_logger

pytestmark = pytest.mark.usefixtures("clean_logging")


def _file_events(path):
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


@pytest.mark.timeout(10)
def test_structlog_and_logging_reach_one_file_and_one_stream(tmp_path):
    stream = io.StringIO()
    log_path = tmp_path / "pipeline.log"
    start_logger(log_to_file=True, log_filename=str(log_path), log_to_stream=stream)

    structlog.get_logger("papy.piper").info("item done", piper="p1", item=3)
    logging.getLogger("numap.pool").info("worker %d started", 7)

    events = _file_events(log_path)
    assert [e["event"] for e in events] == ["item done", "worker 7 started"]
    assert events[0]["piper"] == "p1" and events[0]["item"] == 3
    assert events[0]["logger"] == "papy.piper"
    assert events[1]["logger"] == "numap.pool"
    assert {e["level"] for e in events} == {"info"}
    assert all("timestamp" in e for e in events)

    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "item done" in lines[0] and "piper=p1" in lines[0]
    assert "worker 7 started" in lines[1] and "[numap.pool]" in lines[1]


@pytest.mark.timeout(10)
def test_levels_are_per_handler(tmp_path):
    stream = io.StringIO()
    log_path = tmp_path / "levels.log"
    start_logger(
        log_to_file=True,
        log_filename=log_path,
        log_to_file_level="WARNING",
        log_to_stream=stream,
        log_to_stream_level=logging.DEBUG,
    )
    log = structlog.get_logger("papy")
    log.debug("debug event")
    logging.getLogger("other").info("info record")
    log.error("error event")

    assert [e["event"] for e in _file_events(log_path)] == ["error event"]
    text = stream.getvalue()
    for event in ("debug event", "info record", "error event"):
        assert event in text
    assert logging.getLogger().level == logging.DEBUG


@pytest.mark.timeout(10)
def test_calling_twice_replaces_its_handlers_and_keeps_foreign_ones(tmp_path):
    root = logging.getLogger()
    foreign = logging.StreamHandler(io.StringIO())
    root.addHandler(foreign)
    first, second = io.StringIO(), io.StringIO()
    start_logger(log_to_stream=first)
    start_logger(log_to_stream=second, log_to_file=True, log_filename=tmp_path / "f")
    start_logger(log_to_stream=second, log_to_file=True, log_filename=tmp_path / "f")

    structlog.get_logger("papy").warning("once")
    assert first.getvalue() == ""
    assert second.getvalue().count("once") == 1
    assert len(_file_events(tmp_path / "f")) == 1
    assert foreign in root.handlers
    root.removeHandler(foreign)


@pytest.mark.timeout(10)
def test_rotation_by_size_and_count(tmp_path):
    log_path = tmp_path / "rot.log"
    start_logger(log_to_file=True, log_filename=log_path, log_size=300, log_number=2)
    log = structlog.get_logger("papy")
    for number in range(60):
        log.info("filler event", number=number)
    names = sorted(os.listdir(tmp_path))
    assert names == ["rot.log", "rot.log.1", "rot.log.2"]
    for name in names:
        assert os.path.getsize(tmp_path / name) <= 300
    # The newest events are in the current file, the older in .1 then .2.
    newest = _file_events(log_path)[-1]
    assert newest["number"] == 59
    assert _file_events(tmp_path / "rot.log.1")[-1]["number"] < newest["number"]


@pytest.mark.timeout(10)
def test_default_file_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    start_logger(log_to_file=True)
    structlog.get_logger("papy").info("rotating default")
    assert os.listdir(tmp_path) == ["PaPy_log"]
    (handler,) = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.handlers.RotatingFileHandler)
    ]
    assert handler.maxBytes == 524288 and handler.backupCount == 3

    start_logger(log_to_file=True, log_rotate=False)
    structlog.get_logger("papy").info("timestamped default")
    timestamped = [n for n in os.listdir(tmp_path) if n.startswith("PaPy_log_")]
    assert len(timestamped) == 1
    assert [e["event"] for e in _file_events(tmp_path / timestamped[0])] == [
        "timestamped default"
    ]


@pytest.mark.timeout(10)
def test_stream_true_means_stderr_or_log_stream(capsys):
    start_logger(log_to_stream=True)
    logging.getLogger("papy").error("to stderr")
    assert "to stderr" in capsys.readouterr().err

    chosen = io.StringIO()
    start_logger(log_to_stream=True, log_stream=chosen)
    logging.getLogger("papy").error("to chosen")
    assert "to chosen" in chosen.getvalue()
    assert "to chosen" not in capsys.readouterr().err


@pytest.mark.timeout(10)
def test_log_to_screen_level_is_the_stream_level_by_its_1x_name():
    stream = io.StringIO()
    start_logger(log_to_stream=stream, log_to_screen_level="ERROR")
    logging.getLogger("papy").warning("filtered")
    logging.getLogger("papy").error("shown")
    assert "shown" in stream.getvalue() and "filtered" not in stream.getvalue()
    with pytest.raises(TypeError, match="same argument"):
        start_logger(log_to_stream_level=30, log_to_screen_level=40)


@pytest.mark.timeout(10)
def test_log_to_screen_level_wins_over_a_stream_level_given_as_its_default():
    # 20 is log_to_stream_level's default: given or not, it looks the same.
    stream = io.StringIO()
    start_logger(
        log_to_stream=stream, log_to_stream_level=20, log_to_screen_level="ERROR"
    )
    logging.getLogger("papy").warning("filtered")
    logging.getLogger("papy").error("shown")
    assert "shown" in stream.getvalue() and "filtered" not in stream.getvalue()


@pytest.mark.timeout(10)
def test_no_output_by_default(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    log = start_logger()
    log.error("nowhere")
    assert os.listdir(tmp_path) == []
    assert "nowhere" not in capsys.readouterr().err


@pytest.mark.timeout(10)
def test_returns_a_bindable_structlog_logger():
    stream = io.StringIO()
    log = start_logger(log_to_stream=stream)
    log.bind(pipeline="demo").info("bound")
    assert "pipeline=demo" in stream.getvalue()
    assert "[papy]" in stream.getvalue()


@pytest.mark.timeout(10)
def test_exceptions_are_logged_with_traceback(tmp_path):
    log_path = tmp_path / "exc.log"
    log = start_logger(log_to_file=True, log_filename=log_path)
    try:
        raise ZeroDivisionError("zero")
    except ZeroDivisionError:
        log.exception("failed")
    (event,) = _file_events(log_path)
    assert event["level"] == "error"
    assert "ZeroDivisionError: zero" in event["exception"]


def _child_logs(message):
    structlog.get_logger("papy.child").info(message, pid=os.getpid())
    logging.getLogger("child.std").info("std %s", message)


@pytest.mark.timeout(20)
@pytest.mark.skipif(sys.platform == "win32", reason="needs fork")
def test_forked_worker_process_logs_into_the_same_file(tmp_path):
    log_path = tmp_path / "proc.log"
    start_logger(log_to_file=True, log_filename=log_path, log_rotate=False)
    process = multiprocessing.get_context("fork").Process(
        target=_child_logs, args=("from child",)
    )
    process.start()
    process.join(15)
    assert process.exitcode == 0
    events = _file_events(log_path)
    assert [e["event"] for e in events] == ["from child", "std from child"]
    assert events[0]["pid"] == process.pid


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"log_to_file_level": True}, TypeError, "log_to_file_level"),
        ({"log_to_stream_level": "LOUD"}, ValueError, "log_to_stream_level"),
        ({"log_to_stream_level": -1}, TypeError, "log_to_stream_level"),
        ({"log_to_file": True, "log_size": 0}, ValueError, "log_size"),
        ({"log_to_file": True, "log_number": "3"}, ValueError, "log_number"),
        ({"log_to_stream": 5}, TypeError, "log_to_stream"),
        ({"log_to_file": True, "log_filename": 5}, TypeError, "log_filename"),
    ],
)
def test_bad_arguments_name_the_argument(kwargs, error, argument):
    root = logging.getLogger()
    before = list(root.handlers)
    with pytest.raises(error, match=argument):
        start_logger(**kwargs)
    assert root.handlers == before


@pytest.mark.timeout(10)
def test_get_defaults_documents_os_dependent_values():
    defaults = get_defaults()
    assert defaults["PYTHON"] == sys.executable
    assert defaults["SOCKET_HOST"] == "127.0.0.1"
    assert defaults["CPU_COUNT"] >= 1
    assert os.path.isdir(defaults["TMP_DIR"])
    assert defaults["HAS_FIFO"] == hasattr(os, "mkfifo")
    assert defaults["LOG_FILENAME"] == "PaPy_log"
    assert get_defaults() is not get_defaults()


@pytest.mark.timeout(10)
def test_unwritable_log_file_keeps_the_previous_configuration(tmp_path):
    stream = io.StringIO()
    start_logger(log_to_stream=stream)
    with pytest.raises(OSError):
        start_logger(log_to_file=True, log_filename=tmp_path / "missing" / "log")
    structlog.get_logger("papy").info("still here")
    assert "still here" in stream.getvalue()


def _run_python(code, cwd):
    """Run ``code`` in a fresh interpreter, as a user's script would be run."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=20,
        check=True,
    )
    return done.stdout, done.stderr


@pytest.mark.timeout(30)
def test_defaults_log_nothing_in_a_fresh_process(tmp_path):
    # In pytest its own capture handler hides logging's lastResort, which
    # printed raw event dicts to stderr; a fresh interpreter shows it.
    stdout, stderr = _run_python(
        """
        import logging
        from papy.util.config import start_logger

        log = start_logger()
        log.info("info event", key=1)
        log.warning("warning event", key=2)
        log.error("error event", key=3)
        logging.getLogger("numap").warning("plain warning")
        print("done")
        """,
        tmp_path,
    )
    assert stdout == "done\n"
    assert stderr == ""
    assert os.listdir(tmp_path) == []


@pytest.mark.timeout(30)
def test_a_handler_of_the_application_gets_readable_lines_not_dicts(tmp_path):
    stdout, stderr = _run_python(
        """
        import logging, sys
        from papy.util.config import start_logger

        logging.basicConfig(stream=sys.stdout, format="%(levelname)s|%(message)s")
        log = start_logger()
        log.warning("warning event", key=2)
        try:
            1 / 0
        except ZeroDivisionError:
            log.exception("failed", item=3)
        """,
        tmp_path,
    )
    lines = stdout.splitlines()
    assert lines[0].startswith("WARNING|")
    assert "[warning  ] warning event" in lines[0]
    assert lines[0].endswith("key=2")
    assert lines[1].startswith("ERROR|")
    assert "failed" in lines[1] and lines[1].endswith("item=3")
    assert stdout.count("ZeroDivisionError: division by zero") == 1
    assert "{" not in stdout
    assert stderr == ""


@pytest.mark.timeout(10)
def test_a_record_another_formatter_saw_first_gets_no_duplicate_message(tmp_path):
    # An application handler formats the plain-logging record before ours:
    # logging.Formatter leaves "message" and "asctime" on the record, which
    # are not the caller's extra fields.
    application = logging.StreamHandler(io.StringIO())
    application.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    logging.getLogger().addHandler(application)
    stream = io.StringIO()
    log_path = tmp_path / "foreign.log"
    start_logger(log_to_file=True, log_filename=log_path, log_to_stream=stream)

    logging.getLogger("numap").warning("plain %d", 5, extra={"worker": 2})

    [event] = _file_events(log_path)
    assert event["event"] == "plain 5" and event["worker"] == 2
    assert "message" not in event and "asctime" not in event
    line = stream.getvalue()
    assert "plain 5" in line and "worker=2" in line
    assert "message=" not in line and "asctime=" not in line
