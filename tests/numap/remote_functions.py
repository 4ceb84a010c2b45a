"""Functions the remote-worker tests run on remote hosts.

They live in a module of their own, with only standard-library imports, so
that a test server (whose PYTHONPATH holds this folder, as a user's host
holds the user's modules) imports them cheaply when they travel by name.
Functions that must travel by value (lambdas, closures) are made inside the
tests instead.
"""

import os
import subprocess
import sys
import time


def square(x):
    return x * x


def add(x, y):
    return x + y


def worker_pid(_):
    return os.getpid()


def slow_identity(x, delay=0.05):
    time.sleep(delay)
    return x


def sleep_then_return(x, delay):
    time.sleep(delay)
    return x


def fail_on_three(x):
    if x == 3:
        raise ValueError(f"item {x} is not welcome here")
    return x


def chatty(x):
    # The worker's stdout carries frames: prints must not break them.
    print(f"printing while working on {x}")
    sys.stdout.flush()
    return x + 1


def child_echoes(x):
    # A child process writes to descriptor 1, below sys.stdout.
    subprocess.run(["echo", "a child says", str(x)], check=True)
    return x + 1


def writes_to_descriptor_1(x):
    os.write(1, b"written to descriptor 1\n")
    return x + 1


def child_reads_stdin(x):
    # A child that reads its stdin: it must get none of the frames.
    subprocess.run(["head", "-c", "100"], check=True)
    return x + 1


def double(x):
    return x + x


def slow_value_and_pid(x, delay=0.01):
    time.sleep(delay)
    return x, os.getpid()


def increment(x):
    return x + 1


def announce_then_sleep(x, path, delay):
    # The test host is this machine: the file tells the test the call began.
    with open(path, "w") as marker:
        marker.write(str(os.getpid()))
    time.sleep(delay)
    return x


def call_with(x, func):
    """func(x): the function travels as an argument (inside the task)."""
    return func(x)
