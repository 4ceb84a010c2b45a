"""Regression tests for defects found in review of dump_item / load_item.

Real FIFOs, sockets on 127.0.0.1 and real processes; the `private_tmp`
fixture fails a test that leaves a file or FIFO behind.
"""

import os
import select
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from papy.util.func import ItemNotFoundError, ItemTruncatedError, dump_item, load_item

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
    try:
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
    finally:
        writer.kill()
        writer.communicate()
    assert not os.path.exists(reference)


# --- 2. FIFOs of worker processes are removed when the worker ends ---------


def _dump_fifo_to_queue(queue, directory):
    queue.put(dump_item((b"from the worker",), type="fifo", dir=directory, timeout=30))


def _dump_and_load_parent_item(queue, directory, parent_reference):
    own = dump_item((b"child's own",), type="fifo", dir=directory, timeout=30)
    queue.put((own, os.path.exists(parent_reference)))


def _fork_contexts():
    # Worker processes that end with os._exit (fork); spawned ones end with
    # sys.exit, where atexit already removes the FIFOs.
    import multiprocessing

    contexts = [("multiprocessing", multiprocessing)]
    try:
        import multiprocess
    except ImportError:  # papy-util does not depend on it
        pass
    else:
        contexts.append(("multiprocess", multiprocess))
    if "fork" not in multiprocessing.get_all_start_methods():
        return []
    return [pytest.param(module, id=name) for name, module in contexts]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("module", _fork_contexts())
def test_fifo_of_a_forked_worker_that_ended_is_removed(private_tmp, module):
    context = module.get_context("fork")
    queue = context.Queue()
    worker = context.Process(target=_dump_fifo_to_queue, args=(queue, private_tmp))
    worker.start()
    reference = queue.get(timeout=20)
    worker.join(timeout=20)
    assert worker.exitcode == 0
    assert not os.path.exists(reference), "the worker's exit left its FIFO"
    with pytest.raises(ItemNotFoundError):
        load_item((reference,), timeout=5)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("module", _fork_contexts())
def test_forked_worker_never_removes_its_parents_fifos(private_tmp, module):
    # The parent's pending FIFO, then a forked worker that leaves a FIFO of
    # its own pending and ends: its exit hooks remove its FIFO, not ours.
    reference = dump_item((b"the parent's",), type="fifo", timeout=30)
    context = module.get_context("fork")
    queue = context.Queue()
    worker = context.Process(
        target=_dump_and_load_parent_item, args=(queue, private_tmp, reference)
    )
    worker.start()
    own, parent_fifo_seen = queue.get(timeout=20)
    worker.join(timeout=20)
    assert worker.exitcode == 0
    assert parent_fifo_seen
    assert not os.path.exists(own)
    assert load_item((reference,), timeout=10) == b"the parent's"


def _exit_cleanups():
    """{process module: how many exit finalizers removing pending FIFOs it
    holds} for the process modules imported here (white-box: the module's
    finalizer registry)."""
    from papy.util import _item_io

    counts = {}
    for name in _item_io._PROCESS_MODULES:
        module = sys.modules.get(name)
        if module is not None:
            callbacks = [
                getattr(finalizer, "_callback", None)
                for finalizer in list(module._finalizer_registry.values())
            ]
            counts[name] = callbacks.count(_item_io._remove_pending_fifos)
    return counts


def _dump_many_fifos_and_count(directory, number=40):
    """Cleanup counts after one FIFO dump and after ``number`` of them (all
    loaded again, so none is left)."""
    references = [dump_item((b"0",), type="fifo", dir=directory, timeout=30)]
    after_one = _exit_cleanups()
    for count in range(1, number):
        item = str(count).encode()
        references.append(dump_item((item,), type="fifo", dir=directory, timeout=30))
    after_many = _exit_cleanups()
    loaded = [load_item((reference,), timeout=10) for reference in references]
    assert loaded == [str(count).encode() for count in range(number)]
    return after_one, after_many


def _count_in_worker(queue, directory):
    queue.put(_dump_many_fifos_and_count(directory))


@pytest.mark.timeout(30)
@pytest.mark.parametrize("module", _fork_contexts())
def test_many_fifo_dumps_register_one_exit_cleanup_per_process(private_tmp, module):
    context = module.get_context("fork")
    queue = context.Queue()  # imports the module's util: a cleanup is due
    after_one, after_many = _dump_many_fifos_and_count(private_tmp)
    assert after_one == after_many
    assert after_one[module.__name__ + ".util"] == 1
    assert set(after_one.values()) == {1}
    # A forked worker starts with its module's registry cleared: it gets
    # one registration of its own, however many FIFOs it dumps.
    worker = context.Process(target=_count_in_worker, args=(queue, private_tmp))
    worker.start()
    worker_after_one, worker_after_many = queue.get(timeout=20)
    worker.join(timeout=20)
    assert worker.exitcode == 0
    assert worker_after_one == worker_after_many
    assert worker_after_one[module.__name__ + ".util"] == 1
    assert set(worker_after_one.values()) == {1}


def _waits_for_writer(thread_id):
    """Whether that thread is in load_item's wait for a FIFO's writer."""
    frame = sys._current_frames().get(thread_id)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "_wait" and code.co_filename.endswith("_item_io.py"):
            return True
        frame = frame.f_back
    return False


@pytest.mark.timeout(20)
@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
def test_reader_waiting_for_a_writer_fails_once_the_fifo_is_removed(private_tmp):
    path = str(private_tmp / "tmp_papy_fifo_writer_never_comes")
    os.mkfifo(path)

    reader = threading.get_ident()

    def remove_once_the_reader_holds_it():
        # The writer's side removes its FIFO when its process ends; here a
        # thread does it once load_item has the FIFO open and waits for the
        # writer. (Removed between its open and its check that the path
        # still names the FIFO it locked, the FIFO looks already loaded by
        # another reader: a different error, so wait for the wait.)
        while path not in _open_paths() or not _waits_for_writer(reader):
            time.sleep(0.01)
        os.unlink(path)

    remover = threading.Thread(target=remove_once_the_reader_holds_it, daemon=True)
    remover.start()
    with pytest.raises(ItemNotFoundError, match="removed before its writer"):
        load_item((path,), timeout=15)
    remover.join(timeout=5)
    assert not os.path.exists(path)


def _open_paths():
    paths = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            paths.add(os.readlink(f"/proc/self/fd/{name}"))
        except OSError:
            continue  # closed in the meantime
    return paths


# --- 3. timeouts beyond what poll() takes are refused up front --------------

MAX_TIMEOUT = 2_147_483


@pytest.mark.timeout(10)
@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 1e7, MAX_TIMEOUT + 1])
@pytest.mark.parametrize("kind", ["file", "fifo", "socket"])
def test_dump_item_refuses_timeouts_poll_cannot_take(kind, timeout):
    with pytest.raises(ValueError, match=r"dump_item: timeout .*2147483"):
        dump_item((b"x",), type=kind, timeout=timeout)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), 1e7, MAX_TIMEOUT + 1])
def test_load_item_refuses_timeouts_poll_cannot_take(private_tmp, timeout):
    reference = dump_item((b"x",), type="file")
    with pytest.raises(ValueError, match=r"load_item: timeout .*2147483"):
        load_item((reference,), timeout=timeout)
    assert load_item((reference,)) == b"x"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_the_longest_timeout_still_delivers_the_item(kind):
    failures = []
    previous_hook = threading.excepthook
    threading.excepthook = failures.append
    try:
        reference = dump_item((b"long wait",), type=kind, timeout=MAX_TIMEOUT)
        assert load_item((reference,), timeout=MAX_TIMEOUT) == b"long wait"
        for thread in threading.enumerate():
            if thread.name.startswith("papy-"):
                thread.join(10)
    finally:
        threading.excepthook = previous_hook
    assert not failures, [failure.exc_value for failure in failures]


# --- 4. references are absolute paths, whatever dir was ---------------------

READ_IN_OTHER_CWD = """
    import sys
    from papy.util.func import load_item
    sys.stdout.write(load_item((sys.argv[1],), timeout=10).decode())
"""


@pytest.mark.timeout(20)
@pytest.mark.parametrize("kind", ["file", "fifo"])
def test_relative_dir_gives_an_absolute_reference(private_tmp, monkeypatch, kind):
    (private_tmp / "items").mkdir()
    monkeypatch.chdir(private_tmp)
    reference = dump_item((b"found",), type=kind, dir="items", timeout=10)
    assert os.path.isabs(reference)
    assert os.path.dirname(reference) == str(private_tmp / "items")
    reader = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(READ_IN_OTHER_CWD), reference],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert reader.stdout == "found", reader.stderr
    os.rmdir(private_tmp / "items")


# --- 6. waiting FIFO writers share one thread ------------------------------


def papy_fifo_threads():
    return [t for t in threading.enumerate() if t.name.startswith("papy-fifo-")]


def join_papy_threads(limit=10.0):
    for thread in threading.enumerate():
        if thread.name.startswith("papy-"):
            thread.join(limit)
            assert not thread.is_alive(), f"{thread.name} still running"


@pytest.mark.timeout(30)
def test_many_waiting_fifos_share_one_connector_thread_and_all_arrive():
    join_papy_threads()
    references = [
        dump_item((b"item %d" % number,), type="fifo", timeout=20)
        for number in range(60)
    ]
    # One thread waits for the readers of all 60 (not one thread each).
    assert len(papy_fifo_threads()) <= 1
    # Loaded in reverse, the first ones have waited longest (their writer
    # polls least often by then); each still arrives.
    for number, reference in reversed(list(enumerate(references))):
        assert load_item((reference,), timeout=10) == b"item %d" % number
    join_papy_threads()
    assert papy_fifo_threads() == []


@pytest.mark.timeout(20)
def test_waiting_fifos_still_time_out_with_a_shared_connector(private_tmp):
    join_papy_threads()
    short = dump_item((b"short",), type="fifo", timeout=0.2)
    long = dump_item((b"long",), type="fifo", timeout=15)
    # The short one's writer gives up and removes its FIFO, while the long
    # one keeps waiting for its reader.
    while os.path.exists(short):
        time.sleep(0.02)
    with pytest.raises(ItemNotFoundError):
        load_item((short,), timeout=5)
    assert load_item((long,), timeout=10) == b"long"
    join_papy_threads()


# --- 7. names stay inside dir; ports stay in range --------------------------


@pytest.mark.timeout(10)
@pytest.mark.parametrize("kind", ["file", "fifo"])
@pytest.mark.parametrize(
    ("argument", "value"),
    [("prefix", "../escape_"), ("prefix", "sub/name"), ("suffix", "/../x")],
)
def test_prefix_or_suffix_with_a_separator_is_refused(
    private_tmp, kind, argument, value
):
    (private_tmp / "items").mkdir()
    (private_tmp / "items" / "sub").mkdir()
    with pytest.raises(ValueError, match=f"dump_item: {argument} must be part of"):
        directory = str(private_tmp / "items")
        dump_item((b"x",), type=kind, dir=directory, **{argument: value})
    assert sorted(os.listdir(private_tmp)) == ["items"]
    assert os.listdir(private_tmp / "items") == ["sub"]
    assert os.listdir(private_tmp / "items" / "sub") == []
    os.rmdir(private_tmp / "items" / "sub")
    os.rmdir(private_tmp / "items")


@pytest.mark.timeout(10)
@pytest.mark.parametrize("port", ["0", "65536", "99999"])
def test_socket_reference_with_a_port_out_of_range_is_refused(port):
    reference = f"tcp://127.0.0.1:{port}/" + "0" * 32
    with pytest.raises(ValueError, match="outside 1..65535") as caught:
        load_item((reference,), timeout=1)
    assert reference in str(caught.value)


# --- 8. a malformed token is a clear ValueError, not a UnicodeEncodeError ---


@pytest.mark.timeout(10)
@pytest.mark.parametrize("token", ["\u00e9" * 32, "\udcff" * 32, "g" * 32])
def test_socket_reference_with_a_token_that_is_not_hex_is_refused(token):
    reference = f"tcp://127.0.0.1:80/{token}"
    with pytest.raises(ValueError, match="malformed socket reference"):
        load_item((reference,), timeout=1)


# --- the connector: every item arrives exactly once, whatever the order -----


# Sizes and a load order, all drawn before the test body runs (a draw
# inside it could end the example after the dumps, leaving items unloaded).
sizes_and_orders = st.lists(st.integers(0, 200_000), min_size=1, max_size=12).flatmap(
    lambda sizes: st.tuples(st.just(sizes), st.permutations(range(len(sizes))))
)


@pytest.mark.timeout(60)
@settings(max_examples=15)
@given(sizes_and_order=sizes_and_orders)
def test_fifo_items_arrive_exactly_once_in_any_load_order(sizes_and_order):
    sizes, order = sizes_and_order
    items = [bytes([number % 256]) * size for number, size in enumerate(sizes)]
    references = [dump_item((item,), type="fifo", timeout=30) for item in items]
    for position in order:
        assert load_item((references[position],), timeout=20) == items[position]
        with pytest.raises(ItemNotFoundError):
            load_item((references[position],), timeout=1)
    join_papy_threads()
    assert papy_fifo_threads() == []
    assert not any(os.path.exists(reference) for reference in references)


# --- a FIFO's name tells the reader which process writes it -----------------


@pytest.mark.timeout(10)
def test_fifo_name_carries_the_writer_pid_and_ambiguous_names_carry_none():
    from papy.util._item_io import _pid_namespace_tag, _trusted_writer_pid

    reference = dump_item((b"x",), type="fifo", prefix="in_", suffix=".bin")
    assert _trusted_writer_pid(reference) == os.getpid()
    assert load_item((reference,), timeout=10) == b"x"
    tricky = dump_item(
        (b"y",), type="fifo", suffix=f"0123456789abcdef_p1{_pid_namespace_tag()}_"
    )
    assert _trusted_writer_pid(tricky) is None  # two candidates: no guess
    assert load_item((tricky,), timeout=10) == b"y"
