"""Regression tests for defects found in review of dump_item / load_item.

Real FIFOs, sockets on 127.0.0.1 and real processes; the `private_tmp`
fixture fails a test that leaves a file or FIFO behind.
"""

import os
import select
import subprocess
import sys
import textwrap

import pytest
from papy.util.func import ItemTruncatedError, load_item

pytestmark = [
    pytest.mark.usefixtures("private_tmp"),
    pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs"),
]


def start_python(code, **kwargs):
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        **kwargs,
    )


# --- 1. a FIFO item cut short is an error, not a shorter item ---------------

# Dumps 1 MiB (more than a pipe holds) to a FIFO, and once told to, ends its
# process at once, half-way through the transfer.
WRITER_THAT_LEAVES = """
    import os, sys
    from papy.util.func import dump_item
    print(dump_item((b"x" * (1 << 20),), type="fifo", timeout=30), flush=True)
    sys.stdin.readline()
    os._exit(0)
"""


@pytest.mark.timeout(20)
def test_fifo_writer_that_ends_half_way_gives_truncated_error_not_short_item():
    writer = start_python(WRITER_THAT_LEAVES)
    reference = writer.stdout.readline().strip()
    # A second read end lets the writer connect and fill the pipe before
    # load_item runs, so the item is certainly incomplete when it ends.
    bystander = os.open(reference, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(bystander, select.POLLIN)
        assert poller.poll(10_000), "the writer never wrote"
        writer.stdin.write("go\n")
        writer.stdin.flush()
        assert writer.wait(timeout=10) == 0
        with pytest.raises(ItemTruncatedError, match="incomplete") as caught:
            load_item((reference,), timeout=5)
        assert reference in str(caught.value)
    finally:
        os.close(bystander)
    assert not os.path.exists(reference)
