"""Real rpyc_classic servers on 127.0.0.1 for the remote-worker tests.

Test modules import the fixtures they need from here (pytest finds fixtures
imported into a test module). Every server:
- listens on 127.0.0.1 and a free port, never any other address;
- never registers with a registry (no --register: its default target is a
  UDP broadcast address);
- runs in its own session (process group), so a test can kill it together
  with the worker processes it started, as a host dying would;
- is killed in fixture teardown.
The servers' PYTHONPATH holds this folder: a user's host has the modules
their functions live in, and these tests' functions live here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from polling import wait_until

HERE = Path(__file__).resolve().parent
# The rpyc_classic script of this environment, or the same server run with
# -c where the script is not installed next to the interpreter.
_SCRIPT = Path(sys.executable).with_name("rpyc_classic")
RPYC_CLASSIC = (
    [str(_SCRIPT)]
    if _SCRIPT.exists()
    else [sys.executable, "-c", "from rpyc.cli.rpyc_classic import main; main()"]
)
LOOPBACK = "127.0.0.1"
START_TIMEOUT = 15.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def env_with_path(*folders: str | Path) -> dict[str, str]:
    """This environment with this folder (remote_functions) and ``folders``
    put in front of its PYTHONPATH, whose entries stay: they may name the
    numap under test."""
    env = dict(os.environ)
    inherited = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), *map(str, folders), *inherited])
    return env


class RpycServer:
    """One rpyc_classic server process on 127.0.0.1, started by a test."""

    def __init__(
        self,
        workdir: Path,
        ssl_files: dict[str, str] | None = None,
        mode: str = "threaded",
        python_path: tuple[Path, ...] = (),
    ) -> None:
        self.port = free_port()
        self.spec = f"{LOOPBACK}:{self.port}"
        command = [
            *RPYC_CLASSIC,
            "--host",
            LOOPBACK,
            "--port",
            str(self.port),
            "--mode",
            mode,
            "--quiet",
        ]
        if ssl_files is not None:
            command += [
                "--ssl-keyfile",
                ssl_files["keyfile"],
                "--ssl-certfile",
                ssl_files["certfile"],
                "--ssl-cafile",
                ssl_files["cafile"],
            ]
        env = env_with_path(*python_path)
        self.log_path = workdir / f"rpyc_classic_{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if not wait_until(self._listening, START_TIMEOUT):
            self.stop()
            raise RuntimeError(
                f"rpyc_classic did not listen on {self.spec} within "
                f"{START_TIMEOUT} s; log: {self.log_path.read_text()}"
            )

    def _listening(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(
                f"rpyc_classic exited with {self.process.returncode}: "
                f"{self.log_path.read_text()}"
            )
        try:
            with socket.create_connection((LOOPBACK, self.port), timeout=1):
                return True
        except OSError:
            return False

    @property
    def pid(self) -> int:
        return self.process.pid

    def worker_pids(self) -> list[int]:
        """Process ids of the server's child processes (the remote workers)."""
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return [child.pid for child in children if _running(child)]

    def kill(self) -> None:
        """Kill the server and its workers at once, as a host that dies."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        """Kill the server's whole process group and close its log."""
        self.kill()
        self._log.close()


def _running(process: psutil.Process) -> bool:
    # A worker may end between the listing and this look at it.
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def rpyc_server(tmp_path: Path) -> Iterator[RpycServer]:
    """A fresh rpyc_classic server on 127.0.0.1; killed after the test."""
    server = RpycServer(tmp_path)
    yield server
    server.stop()


@pytest.fixture
def second_rpyc_server(tmp_path: Path) -> Iterator[RpycServer]:
    """Another server, for tests with two hosts."""
    server = RpycServer(tmp_path)
    yield server
    server.stop()


REMOTE_ONLY_MODULE = "numap_remote_only_module"


@pytest.fixture(scope="module")
def remote_only_rpyc_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RpycServer]:
    """A server whose hosts can import a module the parent cannot.

    The module ``numap_remote_only_module`` (``REMOTE_ONLY_MODULE``) has
    ``def triple(x)``; it lives in a folder only on the server's PYTHONPATH.
    """
    folder = tmp_path_factory.mktemp("remote_only")
    (folder / f"{REMOTE_ONLY_MODULE}.py").write_text(
        "def triple(x):\n    return 3 * x\n"
    )
    server = RpycServer(tmp_path_factory.mktemp("rpyc"), python_path=(folder,))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def shared_rpyc_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RpycServer]:
    """One server for a whole test module, for tests that do not kill it."""
    server = RpycServer(tmp_path_factory.mktemp("rpyc"))
    yield server
    server.stop()


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["openssl", *args],
        cwd=cwd,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=30,
    )


def make_certificates(folder: Path) -> dict[str, str]:
    """A test CA, a server certificate for 127.0.0.1 and a client one.

    Elliptic-curve keys (fast to make), valid for one day. Returns paths by
    role: ca, server_key, server_cert, client_key, client_cert.
    """
    folder.mkdir(parents=True, exist_ok=True)
    curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *curve, "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "1", "-subj", "/CN=numap test CA", cwd=folder,
    )  # fmt: skip
    (folder / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    for role, subject in (("server", "/CN=127.0.0.1"), ("client", "/CN=numap")):
        _openssl(
            "req", *curve, "-keyout", f"{role}.key", "-out", f"{role}.csr",
            "-subj", subject, cwd=folder,
        )  # fmt: skip
        extensions = ["-extfile", "server.ext"] if role == "server" else []
        _openssl(
            "x509", "-req", "-in", f"{role}.csr", "-CA", "ca.crt",
            "-CAkey", "ca.key", "-CAcreateserial", "-out", f"{role}.crt",
            "-days", "1", *extensions, cwd=folder,
        )  # fmt: skip
    return {
        "ca": str(folder / "ca.crt"),
        "server_key": str(folder / "server.key"),
        "server_cert": str(folder / "server.crt"),
        "client_key": str(folder / "client.key"),
        "client_cert": str(folder / "client.crt"),
    }


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Certificates made by openssl for the SSL tests."""
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def ssl_rpyc_server(
    tmp_path_factory: pytest.TempPathFactory, certificates: dict[str, str]
) -> Iterator[RpycServer]:
    """A server that speaks SSL only and requires a client certificate."""
    server = RpycServer(
        tmp_path_factory.mktemp("rpyc_ssl"),
        ssl_files={
            "keyfile": certificates["server_key"],
            "certfile": certificates["server_cert"],
            "cafile": certificates["ca"],
        },
    )
    yield server
    server.stop()


def client_ssl(certificates: dict[str, str]) -> dict[str, str]:
    """The worker_remote_ssl options of a client with the test certificates."""
    return {
        "keyfile": certificates["client_key"],
        "certfile": certificates["client_cert"],
        "ca_certs": certificates["ca"],
    }
