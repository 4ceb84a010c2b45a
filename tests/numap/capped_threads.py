"""Run a script in a fresh interpreter whose address space is capped, so
that new threads cannot start (their 64 MB stacks no longer fit): the
tests of what numap does when it is short of threads.

A script starts with CAP_THREADS, which defines ``cap(room_for_stacks)``
(lower the soft limit to what is in use plus that many stacks and a margin)
and ``lift()`` (back to the hard limit).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

# Only the soft limit is lowered, so that the script can lift it again.
CAP_THREADS = """
import resource, threading, time, warnings
from numap import NuMap, NuMapError

STACK = 64 * 2**20
threading.stack_size(STACK)
_, HARD = resource.getrlimit(resource.RLIMIT_AS)

def cap(room_for_stacks):
    with open("/proc/self/statm") as statm:
        in_use = int(statm.read().split()[0]) * resource.getpagesize()
    limit = in_use + room_for_stacks * STACK + 48 * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (limit, HARD))

def lift():
    resource.setrlimit(resource.RLIMIT_AS, (HARD, HARD))
"""

capped_address_space = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm")
    or resource.getrlimit(resource.RLIMIT_AS)[1] != resource.RLIM_INFINITY,
    reason="needs Linux, and no hard limit on the address space to lift to",
)


def run_capped(script: str, *args: str) -> str:
    """Run ``script`` with ``args``; its output, once it ended cleanly."""
    env = {**os.environ, "MALLOC_ARENA_MAX": "1"}  # no 64 MB arena per thread
    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout
