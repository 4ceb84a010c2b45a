"""Start and stop a stock ``rpyc_classic`` server on 127.0.0.1 for the
remote-workers example.

The server listens on loopback only and never registers with a registry
(no ``--register``). A classic server runs any code sent to it: on a real
network, run it only on trusted hosts or with SSL (see numap's README).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

# The server's program: rpyc_classic's own main, after asking Linux to send
# the server SIGTERM when the process that started it dies
# (PR_SET_PDEATHSIG), so that a killed `papy run` leaves no server behind.
# The first argument is that process's id: if it died before the request
# took effect, the server ends at once.
START_CODE = """
import ctypes, os, signal, sys
parent = int(sys.argv.pop(1))
try:
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)
except Exception:
    pass
if os.getppid() != parent:
    sys.exit(0)
from rpyc.cli.rpyc_classic import main
main()
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ClassicServer:
    """``rpyc_classic --host 127.0.0.1 --port PORT`` in a child process.

    ``python_path`` folders are put on the server's PYTHONPATH, so its worker
    processes can import the pipeline's function modules - as a real remote
    host needs them installed.
    """

    def __init__(self, port: int, python_path: list[Path]) -> None:
        self.port = port
        self.python_path = python_path
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        """Start the server and wait until it accepts connections."""
        env = dict(os.environ)
        folders = [str(folder) for folder in self.python_path]
        if env.get("PYTHONPATH"):
            folders.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(folders)
        command = [sys.executable, "-c", START_CODE, str(os.getpid())]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--quiet"]
        # A session of its own: Ctrl-C in the terminal reaches papy, which
        # stops the pipeline and then this server (finish), not the server
        # while items are still in flight on it.
        self._process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"rpyc_classic exited with status {self._process.returncode}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"rpyc_classic did not listen on port {self.port}")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)
        self._process = None
