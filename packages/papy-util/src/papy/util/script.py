"""Run Python or bash scripts as PaPy Worker functions.

``script(inbox, cfg)`` runs one script per item in a child process:

    inbox[0] ──(stdin, or the last command-line argument)──> script
    result   <──(stdout)─────────────────────────────────── script
    ScriptError(returncode, stderr) <── non-zero exit status

A configuration is a plain dict (see `get_config`), so it pickles and can be
given to a Worker as an argument::

    cfg = get_config("bash")
    cfg["source"] = "tr a-z A-Z"
    Worker(script, (cfg,))          # each item: "abc" -> "ABC"

Python scripts run with the current interpreter (``sys.executable``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from papy.util._names import type_name
from papy.util._waits import WAKE_INTERVAL

__all__ = [
    "BASH_TEMPLATE",
    "LANGUAGES",
    "PYTHON_TEMPLATE",
    "ScriptDecodeError",
    "ScriptError",
    "ScriptTimeoutError",
    "get_config",
    "script",
    "write_template",
]

LANGUAGES = ("python", "bash")
INPUT_MODES = ("stdin", "argv")

PYTHON_TEMPLATE = '''\
#!/usr/bin/env python3
"""A PaPy script worker.

papy.util.script.script() sends one item on standard input (or as the last
command-line argument, with cfg["input"] = "argv") and takes what this
script writes to standard output as the result. Exit with a non-zero status
(an uncaught exception does) to report an error: the Piper then gets a
ScriptError carrying the status and what was written to standard error.
"""

import sys


def process(item: str) -> str:
    """Turn one input item into one result. Edit me."""
    return item


def main() -> None:
    item = sys.stdin.read()
    sys.stdout.write(process(item))


if __name__ == "__main__":
    main()
'''

BASH_TEMPLATE = """\
#!/usr/bin/env bash
# A PaPy script worker.
#
# papy.util.script.script() sends one item on standard input (or as the last
# command-line argument, with cfg["input"] = "argv") and takes what this
# script writes to standard output as the result. Exit with a non-zero status
# to report an error: the Piper then gets a ScriptError carrying the status
# and what was written to standard error.
set -euo pipefail

item="$(cat)"          # the input item (trailing newlines are dropped)
printf '%s' "$item"    # the result: edit me
"""

_TEMPLATES = {"python": PYTHON_TEMPLATE, "bash": BASH_TEMPLATE}


# The three exceptions are dataclasses: each declares only its own fields,
# and the generated __init__ takes the inherited ones first, in order
# (command, returncode, stderr, stdout=None, then the subclass's). eq=False
# keeps exceptions hashable and compared by identity; repr=False keeps the
# exception repr of the message. __post_init__ turns the fields into the
# message, and ScriptError.__reduce__ rebuilds any of them from its fields.


@dataclasses.dataclass(eq=False, repr=False)
class ScriptError(RuntimeError):
    """A script exited with a non-zero status.

    Attributes: ``command`` (the argument list run), ``returncode`` (exit
    status; negative -N when killed by signal N), ``stderr`` (its standard
    error, decoded as text) and ``stdout`` (its standard output, as raw
    bytes whatever ``cfg["text"]`` says: a failed script's output need not
    be text).
    """

    command: Sequence[str]
    returncode: int | None
    stderr: str
    stdout: Any = None

    def __post_init__(self) -> None:
        self.command = list(self.command)
        super().__init__(self._describe())

    def _describe(self) -> str:
        if self.returncode is not None and self.returncode < 0:
            try:
                status = f"was killed by {signal.Signals(-self.returncode).name}"
            except ValueError:
                status = f"was killed by signal {-self.returncode}"
        else:
            status = f"exited with status {self.returncode}"
        return self._with_stderr(f"script {status}: {self._where()}")

    def _where(self) -> str:
        return " ".join(self.command)[:200]

    def _with_stderr(self, message: str) -> str:
        tail = self.stderr.strip()[-2000:]
        return f"{message}\nstderr:\n{tail}" if tail else message

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields, so it survives pickling between worker
        # processes (the default would call __init__ with the message only).
        fields = dataclasses.fields(self)
        return (type(self), tuple(getattr(self, field.name) for field in fields))


@dataclasses.dataclass(eq=False, repr=False)
class ScriptTimeoutError(ScriptError, TimeoutError):
    """A script ran longer than cfg["timeout"] and was killed.

    Every process in the script's process group (those it started, unless
    they left the group) was killed with it. Besides the ScriptError
    attributes: ``timeout`` (the limit, in seconds).
    """

    timeout: float | None = None

    def _describe(self) -> str:
        return self._with_stderr(
            f"script ran longer than timeout={self.timeout} s and was killed: "
            f"{self._where()}"
        )


@dataclasses.dataclass(eq=False, repr=False)
class ScriptDecodeError(ScriptError, ValueError):
    """A script's standard output is not text in cfg["encoding"].

    Raised only with cfg["text"] True; the script exited with status 0.
    Besides the ScriptError attributes (``stdout`` holds the raw bytes):
    ``encoding`` and ``reason`` (what the decoder said).
    """

    encoding: str = "utf-8"
    reason: str = ""

    def _describe(self) -> str:
        return self._with_stderr(
            f"script output is not valid {self.encoding} text ({self.reason}); "
            "set cfg['text'] = False to get it as bytes, or cfg['encoding'] to "
            f"the encoding the script writes: {self._where()}"
        )


def _check_lang(function: str, lang: Any) -> str:
    if lang not in LANGUAGES:
        raise ValueError(f"{function}: lang must be one of {LANGUAGES}, got {lang!r}")
    return str(lang)


def get_config(lang: str = "python") -> dict[str, Any]:
    """Return a new default configuration dict for scripts in ``lang``.

    lang: 'python' (default) or 'bash'. Keys (set the script, the rest is
    optional):
      lang        'python' or 'bash'
      executable  interpreter: ``sys.executable`` for Python, the ``bash``
                  found on PATH (or "bash") for bash
      script      path of a script file to run, or None (paths here, in
                  executable and in cwd: str, bytes or os.PathLike)
      source      the script's code as a string (used when script is None)
      args        list of extra command-line arguments (default [])
      input       'stdin' (default): inbox[0] is written to the script's
                  standard input; 'argv': inbox[0] (a str) is passed as the
                  last command-line argument and stdin is empty
      text        True (default): the result is stdout decoded as str;
                  False: the result is stdout as bytes
      encoding    text encoding for str items, stdout and stderr ('utf-8')
      timeout     seconds before the script and every process it started
                  are killed (None: no limit)
      env         dict of environment variables (str to str) added to
                  os.environ, or None
      cwd         working directory of the script, or None (inherited)
    """
    lang = _check_lang("get_config", lang)
    executable = sys.executable if lang == "python" else shutil.which("bash") or "bash"
    return {
        "lang": lang,
        "executable": executable,
        "script": None,
        "source": None,
        "args": [],
        "input": "stdin",
        "text": True,
        "encoding": "utf-8",
        "timeout": None,
        "env": None,
        "cwd": None,
    }


def _complete_config(cfg: Any) -> dict[str, Any]:
    if not isinstance(cfg, Mapping):
        raise TypeError(
            f"script: cfg must be a dict (see get_config), got {type_name(cfg)}"
        )
    merged = get_config(_check_lang("script", cfg.get("lang", "python")))
    unknown = set(cfg) - set(merged)
    if unknown:
        raise ValueError(
            f"script: cfg has unknown keys {sorted(unknown)}; known keys: "
            f"{sorted(merged)}"
        )
    merged.update(cfg)
    if (merged["script"] is None) == (merged["source"] is None):
        raise ValueError(
            "script: set exactly one of cfg['script'] (a file path) and "
            "cfg['source'] (code as a string)"
        )
    if merged["input"] not in INPUT_MODES:
        raise ValueError(
            f"script: cfg['input'] must be one of {INPUT_MODES}, "
            f"got {merged['input']!r}"
        )
    _check_path("executable", merged["executable"])
    if merged["script"] is not None:
        _check_path("script", merged["script"])
    if merged["source"] is not None and not isinstance(merged["source"], str):
        raise TypeError(
            "script: cfg['source'] must be the script's code as a str, got "
            f"{type_name(merged['source'])}"
        )
    if merged["cwd"] is not None:
        _check_path("cwd", merged["cwd"])
    args = merged["args"]
    if isinstance(args, str | bytes) or not isinstance(args, Sequence):
        raise TypeError("script: cfg['args'] must be a list of strings")
    _check_encoding(merged["encoding"])
    if merged["env"] is not None:
        _check_env(merged["env"])
    timeout = merged["timeout"]
    if timeout is not None and (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or timeout <= 0
    ):
        raise ValueError(
            f"script: cfg['timeout'] must be None or a positive number, got {timeout!r}"
        )
    return merged


def _check_path(key: str, value: Any) -> None:
    # The path types subprocess takes for a program, an argument or cwd.
    if not isinstance(value, str | bytes | os.PathLike):
        raise TypeError(
            f"script: cfg[{key!r}] must be a path (str, bytes or os.PathLike), "
            f"got {type_name(value)}"
        )


def _check_encoding(encoding: Any) -> None:
    """Raise unless ``encoding`` names a codec between str and bytes (not,
    say, 'base64', which codecs knows but str.encode refuses)."""
    if not isinstance(encoding, str):
        raise TypeError(
            "script: cfg['encoding'] must be the name of a text encoding (a "
            f"str such as 'utf-8'), got {type_name(encoding)}"
        )
    try:
        "".encode(encoding)
        b"".decode(encoding)
    except LookupError:
        raise ValueError(
            f"script: cfg['encoding'] {encoding!r} is not a text encoding "
            "Python knows; use e.g. 'utf-8' or 'latin-1'"
        ) from None


def _check_env(env: Any) -> None:
    if not isinstance(env, Mapping):
        raise TypeError(
            "script: cfg['env'] must be None or a dict of str to str, got "
            f"{type_name(env)}"
        )
    for name, value in env.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(
                "script: cfg['env'] must map str names to str values, got "
                f"{name!r}: {value!r}; convert values with str()"
            )


def _command(cfg: Mapping[str, Any], item: Any) -> list[str]:
    # Paths as str, so that ScriptError can show the command; subprocess
    # encodes them back to the same bytes (os.fsdecode is lossless).
    executable = os.fsdecode(cfg["executable"])
    if cfg["script"] is not None:
        command = [executable, os.fsdecode(cfg["script"])]
    elif cfg["lang"] == "python":
        command = [executable, "-c", cfg["source"]]
    else:
        # bash -c CODE NAME ARGS...: NAME becomes $0, ARGS $1...
        command = [executable, "-c", cfg["source"], "papy-script"]
    command.extend(str(arg) for arg in cfg["args"])
    if cfg["input"] == "argv":
        if not isinstance(item, str):
            raise TypeError(
                "script: with cfg['input'] = 'argv' the item (inbox[0]) must be a "
                f"str, got {type_name(item)}"
            )
        command.append(item)
    return command


def _stdin_bytes(cfg: Mapping[str, Any], item: Any) -> bytes:
    if cfg["input"] == "argv" or item is None:
        return b""
    if isinstance(item, str):
        try:
            return item.encode(cfg["encoding"])
        except UnicodeEncodeError as error:
            raise UnicodeError(
                f"script: the item (inbox[0]) cannot be encoded as "
                f"cfg['encoding'] = {cfg['encoding']!r} ({error}); pass bytes, "
                "or set cfg['encoding'] to one that can"
            ) from error
    if isinstance(item, bytes | bytearray | memoryview):
        return bytes(item)
    raise TypeError(
        f"script: the item (inbox[0]) must be str, bytes or None, got "
        f"{type_name(item)}; serialize it first, e.g. with json_dumps"
    )


def _decode(data: bytes | None, encoding: str) -> str:
    return (data or b"").decode(encoding, errors="replace")


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    """Kill the script's process group (the script and all it started), reap it."""
    with contextlib.suppress(ProcessLookupError):  # the whole group has exited
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()


def _exchange(
    child: subprocess.Popen[bytes], data: bytes, timeout: float | None
) -> tuple[bytes, bytes]:
    """``child.communicate(data, timeout)``, in slices of WAKE_INTERVAL s
    (see papy.util._waits: a Ctrl-C another thread received must still
    interrupt a main thread waiting for the script).

    Raises subprocess.TimeoutExpired (with the output so far) once
    ``timeout`` seconds (None: no limit) have passed. A communicate cut by
    its timeout can be called again without losing output; only the first
    call passes ``data`` (the rest of it is still written by the later ones).
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    given: bytes | None = data
    while True:
        pause = WAKE_INTERVAL
        if deadline is not None:
            pause = max(0.0, min(pause, deadline - time.monotonic()))
        try:
            return child.communicate(given, timeout=pause)
        except subprocess.TimeoutExpired:
            if deadline is not None and time.monotonic() >= deadline:
                raise
        given = None


def _communicate(
    child: subprocess.Popen[bytes],
    command: list[str],
    data: bytes,
    cfg: Mapping[str, Any],
) -> subprocess.CompletedProcess[bytes]:
    """Feed ``data`` to the script, collect its output, kill it on timeout.

    On timeout the child has not been reaped yet, so its pid (also its
    group id) cannot have been reused when the group is killed.
    """
    with child:
        try:
            stdout, stderr = _exchange(child, data, cfg["timeout"])
        except subprocess.TimeoutExpired as expired:
            _kill_group(child)
            raise ScriptTimeoutError(
                command,
                None,
                _decode(expired.stderr, cfg["encoding"]),
                expired.output,
                timeout=cfg["timeout"],
            ) from None
        except BaseException:
            # KeyboardInterrupt and the like: leave no script processes behind.
            _kill_group(child)
            raise
    return subprocess.CompletedProcess(command, child.returncode, stdout, stderr)


def script(inbox: Sequence[Any], cfg: Mapping[str, Any]) -> Any:
    """Run the script described by ``cfg`` on the first input; return its output.

    inbox[0] (str, bytes or None) reaches the script as cfg["input"] says
    (standard input by default); the script's standard output is the result,
    as str (cfg["text"] True, the default) or bytes, unchanged (a trailing
    newline is kept). ``cfg`` may be partial: missing keys come from
    ``get_config(cfg.get("lang", "python"))``.

    Raises ScriptError (with returncode and stderr) when the script exits
    with a non-zero status or is killed, ScriptTimeoutError when it runs
    longer than cfg["timeout"] (it and every process it started are
    killed first), ScriptDecodeError when cfg["text"] is True and the
    output is not text in cfg["encoding"], FileNotFoundError when
    the interpreter, script file or cfg["cwd"] directory does not exist,
    and TypeError/ValueError naming the bad input or cfg key.
    """
    if isinstance(inbox, str | bytes) or not isinstance(inbox, Sequence):
        raise TypeError(
            "script: inbox must be a sequence of inputs (e.g. a tuple), got "
            f"{type_name(inbox)}"
        )
    if not inbox:
        raise ValueError("script: inbox is empty, it needs at least one input")
    cfg = _complete_config(cfg)
    item = inbox[0]
    command = _command(cfg, item)
    data = _stdin_bytes(cfg, item)
    if cfg["script"] is not None and not os.path.isfile(cfg["script"]):
        raise FileNotFoundError(f"script: cfg['script'] {cfg['script']!r} not found")
    # Checked here: subprocess reports a missing cwd as a FileNotFoundError
    # too, which the handler below would blame on the executable.
    if cfg["cwd"] is not None and not os.path.isdir(cfg["cwd"]):
        raise FileNotFoundError(
            f"script: cfg['cwd'] {cfg['cwd']!r} is not an existing directory"
        )
    env = None if cfg["env"] is None else {**os.environ, **cfg["env"]}
    try:
        child = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=cfg["cwd"],
            # Its own session and process group, so that a timeout or an
            # interrupt can kill every process the script started, not
            # only the script itself.
            start_new_session=True,
        )
    except FileNotFoundError:
        raise FileNotFoundError(
            f"script: cfg['executable'] {cfg['executable']!r} not found"
        ) from None
    done = _communicate(child, command, data, cfg)
    if done.returncode != 0:
        raise ScriptError(
            command,
            done.returncode,
            _decode(done.stderr, cfg["encoding"]),
            done.stdout,
        )
    if not cfg["text"]:
        return done.stdout
    try:
        return done.stdout.decode(cfg["encoding"])
    except UnicodeDecodeError as error:
        raise ScriptDecodeError(
            command,
            done.returncode,
            _decode(done.stderr, cfg["encoding"]),
            done.stdout,
            encoding=cfg["encoding"],
            reason=str(error),
        ) from error


def write_template(fn: str | os.PathLike[str], lang: str = "python") -> str:
    """Write a script template for ``lang`` ('python' or 'bash') to ``fn``.

    The template reads the item from standard input and writes it back
    unchanged: edit its marked part. The file is overwritten if it exists
    and made executable. Returns the path written.
    """
    lang = _check_lang("write_template", lang)
    if not isinstance(fn, str | os.PathLike):
        raise TypeError(f"write_template: fn must be a path, got {type_name(fn)}")
    path = os.fspath(fn)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(_TEMPLATES[lang])
    os.chmod(path, 0o755)
    return path
