"""Script workers: real Python and bash child processes."""

import concurrent.futures
import multiprocessing
import os
import pathlib
import pickle
import shutil
import signal
import stat
import subprocess
import sys
import time

import psutil
import pytest
from papy.util.script import (
    ScriptDecodeError,
    ScriptError,
    ScriptTimeoutError,
    get_config,
    script,
    write_template,
)

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def python_cfg(source, **changes):
    cfg = get_config("python")
    cfg["source"] = source
    cfg.update(changes)
    return cfg


def bash_cfg(source, **changes):
    cfg = get_config("bash")
    cfg["source"] = source
    cfg.update(changes)
    return cfg


@pytest.mark.timeout(10)
def test_get_config_defaults():
    python = get_config()
    assert python["lang"] == "python"
    assert python["executable"] == sys.executable
    assert python["input"] == "stdin" and python["text"] is True
    assert python["script"] is None and python["source"] is None
    assert get_config("bash")["lang"] == "bash"
    assert get_config() is not get_config()
    with pytest.raises(ValueError, match="lang"):
        get_config("perl")


@pytest.mark.timeout(20)
def test_python_source_reads_stdin_and_returns_stdout():
    cfg = python_cfg("import sys; sys.stdout.write(sys.stdin.read()[::-1])")
    assert script(("abc é",), cfg) == "é cba"
    assert script((b"xyz", "other input"), cfg) == "zyx"
    assert script((None,), cfg) == ""


@pytest.mark.timeout(20)
def test_python_scripts_use_the_current_interpreter():
    cfg = python_cfg("import sys; print(sys.executable, sys.version_info[0])")
    assert script(("",), cfg) == f"{sys.executable} 3\n"


@needs_bash
@pytest.mark.timeout(20)
def test_bash_source_with_args_env_cwd_and_bytes_output(tmp_path):
    cfg = bash_cfg(
        'printf "%s|%s|%s|%s|" "$1" "$2" "$GREETING" "$(pwd)"; tr a-z A-Z',
        args=["one", 2],
        env={"GREETING": "hello"},
        cwd=str(tmp_path),
        text=False,
    )
    assert script(("abc",), cfg) == f"one|2|hello|{tmp_path}|ABC".encode()


@pytest.mark.timeout(20)
def test_item_as_last_argument():
    cfg = python_cfg("import sys; print(sys.argv[1:])", input="argv", args=["-x"])
    assert script(("the item",), cfg) == "['-x', 'the item']\n"
    with pytest.raises(TypeError, match="argv"):
        script((b"bytes",), cfg)


@pytest.mark.timeout(20)
def test_partial_config_is_completed_from_defaults():
    assert script(("q",), {"source": "print(input() * 2)"}) == "qq\n"


@pytest.mark.timeout(20)
def test_failing_python_script_carries_status_and_stderr():
    cfg = python_cfg("import sys; print('partial'); sys.exit('bad input: ' + input())")
    with pytest.raises(ScriptError) as caught:
        script(("x1",), cfg)
    error = caught.value
    assert error.returncode == 1
    assert "bad input: x1" in error.stderr
    assert error.stdout == b"partial\n"
    assert "status 1" in str(error) and "bad input: x1" in str(error)

    with pytest.raises(ScriptError) as caught:
        script(("",), python_cfg("raise KeyError('missing')"))
    assert "Traceback" in caught.value.stderr
    assert "KeyError: 'missing'" in caught.value.stderr


@needs_bash
@pytest.mark.timeout(20)
def test_failing_bash_script_and_killed_script():
    with pytest.raises(ScriptError) as caught:
        script(("",), bash_cfg("echo 'no such thing' >&2; exit 7"))
    assert caught.value.returncode == 7
    assert caught.value.stderr == "no such thing\n"

    with pytest.raises(ScriptError, match="SIGKILL") as caught:
        script(("",), bash_cfg("kill -9 $$"))
    assert caught.value.returncode == -signal.SIGKILL


@pytest.mark.timeout(20)
def test_script_running_too_long_is_killed():
    cfg = python_cfg(
        "import sys, time; print('started', file=sys.stderr, flush=True); "
        "time.sleep(30)",
        timeout=0.5,
    )
    with pytest.raises(ScriptTimeoutError) as caught:
        script(("",), cfg)
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, ScriptError)
    assert caught.value.timeout == 0.5
    assert "timeout=0.5" in str(caught.value)


@pytest.mark.timeout(10)
def test_script_errors_survive_pickling():
    error = ScriptError(["bash", "-c", "exit 2"], 2, "oops\n", b"")
    again = pickle.loads(pickle.dumps(error))
    assert again.command == error.command
    assert (again.returncode, again.stderr, again.stdout) == (2, "oops\n", b"")
    assert str(again) == str(error)
    timeout = pickle.loads(pickle.dumps(ScriptTimeoutError(["x"], None, "", None, 3)))
    assert timeout.timeout == 3 and isinstance(timeout, TimeoutError)


@pytest.mark.timeout(30)
def test_script_error_comes_back_from_a_worker_process():
    cfg = python_cfg("import sys; sys.stderr.write('from child'); sys.exit(4)")
    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        error = pool.submit(script, ("item",), cfg).exception(timeout=20)
        good = pool.submit(script, ("ok",), python_cfg("print(input())")).result(20)
    assert isinstance(error, ScriptError)
    assert error.returncode == 4 and error.stderr == "from child"
    assert good == "ok\n"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("lang", ["python", pytest.param("bash", marks=needs_bash)])
def test_written_templates_run_as_identity_scripts(tmp_path, lang):
    path = tmp_path / f"worker.{lang}"
    path.write_text("old content")
    assert write_template(path, lang) == str(path)
    assert os.stat(path).st_mode & stat.S_IXUSR
    assert "old content" not in path.read_text()
    cfg = get_config(lang)
    cfg["script"] = str(path)
    assert script(("item text",), cfg) == "item text"


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("inbox", "cfg", "error", "match"),
    [
        (("x",), "print(1)", TypeError, "cfg must be a dict"),
        (("x",), {"source": "1", "sorce": "2"}, ValueError, "unknown keys.*sorce"),
        (("x",), {}, ValueError, "exactly one"),
        (("x",), {"source": "1", "script": "f.py"}, ValueError, "exactly one"),
        (("x",), {"lang": "ruby", "source": "1"}, ValueError, "lang"),
        (("x",), {"source": "1", "input": "file"}, ValueError, "input"),
        (("x",), {"source": "1", "timeout": 0}, ValueError, "timeout"),
        (("x",), {"source": "1", "args": "-v"}, TypeError, "args"),
        (({"a": 1},), {"source": "1"}, TypeError, "json_dumps"),
        (("x",), {"source": "1", "env": {"A": 1}}, TypeError, r"cfg\['env'\]"),
        (("x",), {"source": "1", "env": ["A=1"]}, TypeError, r"cfg\['env'\]"),
        (("x",), {"source": "1", "encoding": "nope"}, ValueError, "cfg.'encoding'."),
        (("x",), {"source": "1", "encoding": "base64"}, ValueError, "encoding"),
        (("x",), {"source": "1", "encoding": 8}, TypeError, r"cfg\['encoding'\]"),
        (("x",), {"source": 123}, TypeError, r"cfg\['source'\]"),
        (("x",), {"source": "1", "executable": None}, TypeError, "executable"),
        (("x",), {"script": 5}, TypeError, r"cfg\['script'\]"),
        (("x",), {"source": "1", "cwd": 3}, TypeError, r"cfg\['cwd'\]"),
        (("\ud800",), {"source": "1"}, UnicodeError, r"script: the item \(inbox"),
        (("é",), {"source": "1", "encoding": "ascii"}, UnicodeError, "item.*'ascii'"),
        ((), {"source": "1"}, ValueError, "empty"),
        ("x", {"source": "1"}, TypeError, "inbox"),
        (("x",), {"script": "/no/such/script.py"}, FileNotFoundError, "script"),
        (
            ("x",),
            {"source": "1", "executable": "/no/such/python"},
            FileNotFoundError,
            "executable",
        ),
    ],
)
def test_bad_input_and_config_name_the_problem(inbox, cfg, error, match):
    with pytest.raises(error, match=match):
        script(inbox, cfg)


@pytest.mark.timeout(10)
def test_write_template_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="lang"):
        write_template(tmp_path / "t", "perl")
    with pytest.raises(TypeError, match="fn"):
        write_template(5)


@pytest.mark.timeout(20)
def test_env_is_added_to_the_environment_and_cwd_is_the_working_directory(tmp_path):
    source = (
        "import os; "
        "print(os.environ['PAPY_TEST_VALUE'], os.getcwd(), 'PATH' in os.environ, "
        "sep='\\n')"
    )
    cfg = python_cfg(source, env={"PAPY_TEST_VALUE": "v1"}, cwd=str(tmp_path))
    value, cwd, has_path = script((None,), cfg).splitlines()
    assert value == "v1"
    assert os.path.samefile(cwd, tmp_path)
    assert has_path == "True"  # added to os.environ, not replacing it


@pytest.mark.timeout(20)
def test_encoding_decodes_stdout_and_encodes_str_items():
    cfg = python_cfg(
        "import sys; data = sys.stdin.buffer.read(); sys.stdout.buffer.write(data)",
        encoding="latin-1",
    )
    assert script(("é",), cfg) == "é"
    assert script((b"\xe9",), cfg) == "é"


@pytest.mark.timeout(10)
def test_missing_cwd_is_named_as_the_cwd_not_the_executable(tmp_path):
    cfg = python_cfg("print(1)", cwd=str(tmp_path / "absent"))
    with pytest.raises(FileNotFoundError, match=r"cfg\['cwd'\]"):
        script((None,), cfg)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("as_path", [os.fsencode, pathlib.Path], ids=["bytes", "Path"])
def test_paths_may_be_bytes_or_path_like_as_subprocess_takes_them(tmp_path, as_path):
    # Bytes paths worked before the config was checked, and were then
    # refused; a failing script's command is shown with str paths.
    program = tmp_path / "upper.py"
    program.write_text("import sys; print(sys.stdin.read().upper())")
    cfg = {
        "script": as_path(str(program)),
        "executable": as_path(sys.executable),
        "cwd": as_path(str(tmp_path)),
    }
    assert script(("abc",), cfg) == "ABC\n"
    program.write_text("import sys; sys.exit(3)")
    with pytest.raises(ScriptError) as failed:
        script(("abc",), cfg)
    assert failed.value.command == [sys.executable, str(program)]
    assert str(program) in str(failed.value)


# A bash script that starts a grandchild (a sleep of an unusual length, so it
# can be told apart from other processes), writes "<its pid> <sleep's pid>"
# to the file named by its first argument, and waits.
GRANDCHILD_SECONDS = "31.4159"
STARTS_A_GRANDCHILD = (
    f'sleep {GRANDCHILD_SECONDS} & echo "$$ $!" > "$1.part"; mv "$1.part" "$1"; wait'
)


def _is_running(pid, cmdline):
    """True when ``pid`` is a live (not zombie) process running ``cmdline``."""
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and (
            process.cmdline() == cmdline
        )
    except psutil.NoSuchProcess:
        return False


def _assert_gone(pid, cmdline):
    """Poll (bounded) until ``pid`` no longer runs ``cmdline``; kill it if not."""
    for _ in range(500):
        if not _is_running(pid, cmdline):
            return
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)
    pytest.fail(f"process {pid} {cmdline} was left running")


def _read_pids(path):
    for _ in range(1000):
        if path.exists():
            script_pid, grandchild_pid = path.read_text().split()
            return int(script_pid), int(grandchild_pid)
        time.sleep(0.01)
    pytest.fail(f"the script did not write {path}")


@needs_bash
@pytest.mark.timeout(20)
def test_timeout_kills_the_processes_the_script_started(tmp_path):
    pid_file = tmp_path / "pids"
    cfg = bash_cfg(STARTS_A_GRANDCHILD, args=[str(pid_file)], timeout=1.5)
    with pytest.raises(ScriptTimeoutError):
        script(("",), cfg)
    _, grandchild = _read_pids(pid_file)
    _assert_gone(grandchild, ["sleep", GRANDCHILD_SECONDS])


@needs_bash
@pytest.mark.timeout(20)
def test_interrupt_kills_the_script_and_the_processes_it_started(tmp_path):
    pid_file = tmp_path / "pids"
    caller = (
        "import sys\n"
        "from papy.util.script import get_config, script\n"
        "cfg = get_config('bash')\n"
        f"cfg['source'] = {STARTS_A_GRANDCHILD!r}\n"
        "cfg['args'] = [sys.argv[1]]\n"
        "try:\n"
        "    script(('',), cfg)\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(3)\n"
    )
    process = subprocess.Popen([sys.executable, "-c", caller, str(pid_file)])
    try:
        script_pid, grandchild = _read_pids(pid_file)
        script_cmdline = psutil.Process(script_pid).cmdline()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 3
    finally:
        process.kill()
        process.wait()
    _assert_gone(grandchild, ["sleep", GRANDCHILD_SECONDS])
    _assert_gone(script_pid, script_cmdline)


@pytest.mark.timeout(20)
def test_output_that_is_not_text_in_the_encoding_is_a_script_error():
    source = "import sys; sys.stdout.buffer.write(b'\\xff\\xfe ok')"
    with pytest.raises(ScriptDecodeError) as caught:
        script((None,), python_cfg(source))
    error = caught.value
    assert isinstance(error, ScriptError)
    assert isinstance(error.__cause__, UnicodeDecodeError)
    assert error.stdout == b"\xff\xfe ok" and error.returncode == 0
    assert error.encoding == "utf-8"
    message = str(error)
    assert "not valid utf-8 text" in message
    assert "cfg['text'] = False" in message
    assert source in message  # names the script
    again = pickle.loads(pickle.dumps(error))
    assert (again.stdout, again.encoding, str(again)) == (
        error.stdout,
        "utf-8",
        message,
    )
    assert script((None,), python_cfg(source, text=False)) == b"\xff\xfe ok"


SCRIPT_ERRORS = [
    pytest.param(
        ScriptError(("bash", "-c", "exit 2"), -9, "oops\n", b"x"),
        {"returncode": -9, "stderr": "oops\n", "stdout": b"x"},
        "script was killed by SIGKILL: bash -c exit 2\nstderr:\noops",
        id="ScriptError",
    ),
    pytest.param(
        ScriptTimeoutError(["x"], None, "late", None, 3),
        {"returncode": None, "stderr": "late", "stdout": None, "timeout": 3},
        "script ran longer than timeout=3 s and was killed: x\nstderr:\nlate",
        id="ScriptTimeoutError",
    ),
    pytest.param(
        ScriptDecodeError(["x"], 0, "", b"\xff", encoding="latin-1", reason="bad"),
        {
            "returncode": 0,
            "stderr": "",
            "stdout": b"\xff",
            "encoding": "latin-1",
            "reason": "bad",
        },
        "script output is not valid latin-1 text (bad); set cfg['text'] = False "
        "to get it as bytes, or cfg['encoding'] to the encoding the script "
        "writes: x",
        id="ScriptDecodeError",
    ),
]


@pytest.mark.timeout(10)
@pytest.mark.parametrize(("error", "fields", "message"), SCRIPT_ERRORS)
def test_script_errors_keep_fields_message_and_pickling(error, fields, message):
    assert isinstance(error.command, list)
    for name, value in fields.items():
        assert getattr(error, name) == value
    assert str(error) == message
    assert error.args == (message,)
    assert repr(error) == f"{type(error).__name__}({message!r})"
    assert hash(error) == hash(error)  # exceptions stay hashable
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        again = pickle.loads(pickle.dumps(error, protocol))
        assert type(again) is type(error)
        assert again.command == error.command
        for name, value in fields.items():
            assert getattr(again, name) == value
        assert str(again) == message and again.args == (message,)


# Linux may deliver a Ctrl-C sent to the process to any thread; the Python
# handler then runs in the main thread only when that thread next runs
# Python code. script() waits for the script in slices, so a main thread
# waiting for a script without a timeout still sees the KeyboardInterrupt.
HELPER_THREAD_INTERRUPTS = """
import signal, sys, threading, time
from pathlib import Path
from papy.util.script import get_config, script

def main_thread_waits_for_the_script():
    frame = sys._current_frames().get(threading.main_thread().ident)
    names = []
    top = frame
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return "script" in names and top.f_code.co_filename.endswith("selectors.py")

def helper():
    while not (Path(sys.argv[1]).exists() and main_thread_waits_for_the_script()):
        time.sleep(0.01)
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

cfg = get_config("bash")
cfg["source"] = sys.argv[2]
cfg["args"] = [sys.argv[1]]
threading.Thread(target=helper, daemon=True).start()
try:
    script(("",), cfg)
except KeyboardInterrupt:
    sys.exit(3)
"""


@needs_bash
@pytest.mark.timeout(20)
def test_ctrl_c_received_by_another_thread_interrupts_a_script_wait(tmp_path):
    pid_file = tmp_path / "pids"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            HELPER_THREAD_INTERRUPTS,
            str(pid_file),
            STARTS_A_GRANDCHILD,
        ]
    )
    try:
        assert process.wait(timeout=10) == 3
    finally:
        process.kill()
        process.wait()
    _, grandchild = _read_pids(pid_file)
    _assert_gone(grandchild, ["sleep", GRANDCHILD_SECONDS])


@pytest.mark.timeout(20)
def test_a_script_that_writes_and_reads_much_keeps_all_its_output():
    # More than a pipe holds in both directions, so that the exchange spans
    # several of script()'s wait slices.
    source = (
        "import sys, time\n"
        "data = sys.stdin.read()\n"
        "time.sleep(0.3)\n"
        "sys.stdout.write(data)\n"
        "sys.stderr.write('e' * 200000)\n"
    )
    item = "".join(f"{n}\n" for n in range(100_000))
    assert script((item,), python_cfg(source)) == item
