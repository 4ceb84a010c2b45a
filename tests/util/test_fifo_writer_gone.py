"""How a FIFO reader decides that the writer process is gone.

The FIFO's name carries the writer's pid and PID namespace. A reader in
another PID namespace (a container sharing the directory) must not judge
the writer by a pid that means another process, or none, there: before the
fix it failed a live item and removed its FIFO. A writer that was killed
but not yet reaped by its parent (a zombie) is gone: before the fix the
reader waited out its whole timeout. Real writer processes, real FIFOs,
real signals and a real PID namespace (where unshare is allowed).
"""

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from papy.util.func import ItemNotFoundError, load_item

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")

# Dumps an item to a FIFO in argv[1], prints the reference, then idles.
WRITER = textwrap.dedent(
    """
    import sys, time
    from papy.util.func import dump_item
    print(dump_item((b"live item",), type="fifo", dir=sys.argv[1], timeout=40),
          flush=True)
    time.sleep(60)
    """
)

READER = textwrap.dedent(
    """
    import sys
    from papy.util.func import load_item
    print(load_item((sys.argv[1],), timeout=30).decode())
    """
)

# A reader in a PID namespace of its own (as in a container), as an
# unprivileged user may make one.
IN_NEW_PID_NAMESPACE = [
    "unshare",
    "--user",
    "--map-root-user",
    "--pid",
    "--fork",
    "--mount-proc",
]


def start_writer(directory):
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(directory)],
        stdout=subprocess.PIPE,
        text=True,
    )
    reference = writer.stdout.readline().strip()
    assert reference, "the writer printed no reference"
    return writer, reference


def stop_writer(writer):
    writer.kill()
    writer.wait()
    writer.stdout.close()


def skip_unless_pid_namespaces_can_be_made():
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1)")
    try:
        probe = subprocess.run(
            [*IN_NEW_PID_NAMESPACE, "true"], capture_output=True, timeout=20
        )
    except subprocess.TimeoutExpired:
        pytest.skip("unshare did not finish")
    if probe.returncode != 0:
        pytest.skip(f"cannot make a PID namespace here: {probe.stderr!r}")


@pytest.mark.timeout(60)
def test_a_reader_in_another_pid_namespace_waits_for_a_slow_writer(tmp_path):
    skip_unless_pid_namespaces_can_be_made()
    writer, reference = start_writer(tmp_path)
    try:
        # Stopped, the writer cannot connect: the reader meanwhile checks
        # every 0.1 s whether the writer is gone. Its pid names no process
        # in the reader's namespace, yet the writer lives.
        os.kill(writer.pid, signal.SIGSTOP)
        reader = subprocess.Popen(
            [*IN_NEW_PID_NAMESPACE, sys.executable, "-c", READER, reference],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2)
        os.kill(writer.pid, signal.SIGCONT)
        out, err = reader.communicate(timeout=40)
    finally:
        stop_writer(writer)
    assert out.strip() == "live item", err
    assert os.listdir(tmp_path) == []


@pytest.mark.timeout(60)
def test_a_killed_writer_that_is_not_reaped_yet_counts_as_gone(tmp_path):
    writer, reference = start_writer(tmp_path)
    try:
        writer.send_signal(signal.SIGKILL)
        # Wait until it has exited, without reaping it: a zombie.
        os.waitid(os.P_PID, writer.pid, os.WEXITED | os.WNOWAIT)
        started = time.monotonic()
        with pytest.raises(ItemNotFoundError, match="gone"):
            load_item((reference,), timeout=20)
        assert time.monotonic() - started < 5  # failed at once, no timeout
    finally:
        stop_writer(writer)
    assert os.listdir(tmp_path) == []
