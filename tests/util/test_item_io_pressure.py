"""FIFO items under descriptor pressure and with prefixes that mimic the
pid part of a FIFO's name (papy.util._item_io)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from papy.util import _item_io
from papy.util.func import dump_item, load_item

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")


@pytest.mark.timeout(60)
def test_waiting_fifos_survive_a_moment_without_free_descriptors(tmp_path):
    # In a subprocess, as it lowers its own descriptor limit: items wait
    # for readers while every descriptor is taken for 0.1 s; they must all
    # still arrive afterwards.
    script = textwrap.dedent(
        f"""
        import os, resource, time
        from papy.util.func import dump_item, load_item

        refs = [dump_item([b"z" * 10], type="fifo", dir={str(tmp_path)!r},
                          timeout=60) for _ in range(20)]
        time.sleep(0.1)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        held = []
        try:
            while True:
                held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError:
            pass
        time.sleep(0.1)
        for fd in held:
            os.close(fd)
        print(sum(load_item([ref], timeout=10) == b"z" * 10 for ref in refs))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=50
    )
    assert done.stdout.strip() == "20", done.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.timeout(10)
def test_a_prefix_like_a_random_part_and_pid_gives_no_pid():
    # The prefix "0123456789abcdef_p" and a random part of digits only.
    here = _item_io._pid_namespace_tag()
    name = f"0123456789abcdef_p2624492600527834_p22097{here}_"
    assert _item_io._trusted_writer_pid(name) is None
    unique = f"tmp_papy_fifo0123456789abcdef_p22097{here}_"
    assert _item_io._trusted_writer_pid(unique) == 22097
    assert _item_io._process_exists(2624492600527834)  # no such pid: unknown


@pytest.mark.timeout(20)
def test_an_item_whose_prefix_mimics_the_pid_part_still_arrives(tmp_path):
    ref = dump_item(
        [b"payload"], type="fifo", prefix="0123456789abcdef_p", dir=str(tmp_path)
    )
    assert load_item([ref]) == b"payload"
