"""dump_item / load_item under concurrency: pools of worker processes.

Invariant: every dumped item is loaded exactly once, intact, whichever
process dumps and whichever loads, and nothing is left in the temp dir.
"""

import os
import threading
import time

import multiprocess
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from papy.util.func import ItemBusyError, ItemError, dump_item, load_item

pytestmark = [
    pytest.mark.usefixtures("private_tmp"),
    pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX FIFOs"),
]


def dump_in_worker(job):
    kind, payload = job
    return dump_item((payload,), type=kind, timeout=20)


def load_in_worker(reference):
    return load_item((reference,), timeout=10)


def join_writer_threads(limit=10.0):
    for thread in threading.enumerate():
        if thread.name.startswith("papy-"):
            thread.join(limit)
            assert not thread.is_alive()


# (kind, payload) pairs to dump: every transport, payloads up to 100 kB.
JOBS = st.lists(
    st.tuples(st.sampled_from(["file", "fifo", "socket"]), st.binary(max_size=100_000)),
    min_size=1,
    max_size=12,
)


@pytest.fixture(scope="module")
def pool():
    # The pool's processes outlive single calls: they are where the FIFO and
    # socket writer threads of items dumped in workers live.
    workers = multiprocess.get_context("fork").Pool(2)
    yield workers
    workers.terminate()
    workers.join()


@pytest.mark.timeout(60)
@settings(max_examples=10)
@given(jobs=JOBS)
def test_items_dumped_by_workers_are_loaded_by_the_parent(pool, jobs):
    references = pool.map(dump_in_worker, jobs, chunksize=1)
    assert len(set(references)) == len(references)
    # Load in reverse order: a reader that comes late still gets its item.
    loaded = [load_item((reference,), timeout=10) for reference in reversed(references)]
    assert loaded[::-1] == [payload for _, payload in jobs]


@pytest.mark.timeout(60)
@settings(max_examples=10)
@given(jobs=JOBS)
def test_items_dumped_by_the_parent_are_loaded_by_workers(pool, jobs):
    references = [
        dump_item((payload,), type=kind, timeout=20) for kind, payload in jobs
    ]
    loaded = pool.map(load_in_worker, references, chunksize=1)
    assert loaded == [payload for _, payload in jobs]
    join_writer_threads()


def _try_load(reference, timeout=10):
    # By default a loser of a race must hear the writer's verdict (gone,
    # busy, refused), not run out of its own time while the winner is served
    # on a loaded machine: the timeout is longer than the writer's (5 s).
    try:
        return load_item((reference,), timeout=timeout)
    except ItemError as error:
        return type(error).__name__


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["file", "fifo", "socket"])
def test_two_readers_race_for_one_item_and_exactly_one_wins(pool, kind):
    for _ in range(30):
        reference = dump_item((b"only once",), type=kind, timeout=5)
        outcomes = pool.map(_try_load, [reference, reference], chunksize=1)
        assert outcomes.count(b"only once") == 1, outcomes
        (loser,) = [outcome for outcome in outcomes if outcome != b"only once"]
        assert loser in {
            "ItemNotFoundError",
            "ItemBusyError",
            "ItemRefusedError",
        }
        join_writer_threads()


@pytest.mark.timeout(10)
@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="reads /proc/locks")
def test_second_reader_of_a_fifo_is_told_it_is_busy(private_tmp):
    path = str(private_tmp / "tmp_papy_fifo_shared")
    os.mkfifo(path)
    outcome = []
    first = threading.Thread(target=lambda: outcome.append(_try_load(path, timeout=1)))
    first.start()
    try:
        deadline = time.monotonic() + 5
        while not _fifo_is_locked(path) and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(ItemBusyError):
            load_item((path,), timeout=5)
    finally:
        first.join(5)
    assert outcome == ["ItemTimeoutError"]  # no writer ever came
    assert not os.path.exists(path)  # and the first reader removed the FIFO


def _fifo_is_locked(path):
    # Read from /proc/locks: probing with flock ourselves could make the
    # first reader's own flock fail.
    inode = os.stat(path).st_ino
    with open("/proc/locks") as locks:
        return any(
            line.split()[5].rsplit(":", 1)[-1] == str(inode)
            for line in locks
            if "FLOCK" in line
        )
