"""A Ctrl-C that Linux delivers to a thread other than the main one still
interrupts a main thread inside load_item.

CPython runs the Python signal handler (KeyboardInterrupt) only in the main
thread, and only when that thread runs Python code; a main thread blocked in
a long wait does not, so load_item waits in slices (papy.util._waits). Each
case runs in its own process, so a hang fails the test (communicate's
timeout) without wedging pytest. The signal is sent with
``signal.pthread_kill`` to a helper thread, which is what Linux may do with a
Ctrl-C sent to the process.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

# argv[1]: the reference to load. A helper thread waits until the main
# thread is inside load_item's reading code (papy.util._item_io), gives it
# time to block there, then sends SIGINT to itself.
LOADER = """
import signal, sys, threading, time
from papy.util.func import load_item

def main_thread_sleeps_in_load_item():
    frame = sys._current_frames().get(threading.main_thread().ident)
    top = frame
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return "load_item" in names and top.f_code.co_filename.endswith("_item_io.py")

def helper():
    while not main_thread_sleeps_in_load_item():
        time.sleep(0.01)
    time.sleep(0.3)  # not needed for the outcome: lets the main thread block
    signal.pthread_kill(threading.get_ident(), signal.SIGINT)

threading.Thread(target=helper, daemon=True).start()
try:
    load_item((sys.argv[1],), timeout=300)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def run_loader(reference):
    process = subprocess.Popen(
        [sys.executable, "-c", LOADER, reference],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        return process.communicate(timeout=10)
    finally:
        process.kill()
        process.wait()


@pytest.mark.timeout(20)
def test_ctrl_c_received_by_another_thread_interrupts_a_socket_load():
    # A peer that takes the connection (the kernel's backlog does) and
    # never answers: the loader waits for the item's header.
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        out, err = run_loader(f"tcp://127.0.0.1:{port}/{'ab' * 16}")
    finally:
        silent.close()
    assert out == "interrupted\n", err


@pytest.mark.timeout(20)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs")
def test_ctrl_c_received_by_another_thread_interrupts_a_fifo_load(tmp_path):
    # A FIFO whose writer never comes (its name carries no writer pid, so
    # the loader cannot tell it is gone and waits for it). This wait already
    # woke every 0.5 s before; the test keeps it waking.
    fifo = tmp_path / "never_written"
    os.mkfifo(fifo)
    out, err = run_loader(str(fifo))
    assert out == "interrupted\n", err
