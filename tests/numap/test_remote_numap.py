"""NuMap with remote workers on real rpyc_classic servers on 127.0.0.1.

Functions run remotely come from remote_functions (importable on the test
servers, as a user's modules are on their hosts) or are made in a module
the host cannot import, so that they travel by value.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from typing import Any

import psutil
import pytest
import remote_functions as rf
import rpyc
from capped_threads import CAP_THREADS, capped_address_space, run_capped
from hypothesis import given, settings
from hypothesis import strategies as st
from numap import (
    HostLostError,
    HostUnreachableError,
    NuMap,
    NuMapError,
    SerializationError,
    imports,
)
from numap_outcomes import collect, run
from remote_servers import (
    REMOTE_ONLY_MODULE,
    certificates,
    client_ssl,
    env_with_path,
    free_port,
    remote_only_rpyc_server,
    rpyc_server,
    second_rpyc_server,
    shared_rpyc_server,
    ssl_rpyc_server,
    wait_until,
)

# Fixtures from remote_servers, named here so that pytest finds them.
FIXTURES = (
    certificates,
    remote_only_rpyc_server,
    rpyc_server,
    second_rpyc_server,
    shared_rpyc_server,
    ssl_rpyc_server,
)


def made_elsewhere(source: str, name: str) -> Any:
    """A function defined in a module the host cannot import (nor can we)."""
    namespace: dict[str, Any] = {"__name__": "made_in_a_test"}
    exec(source, namespace)
    return namespace[name]


def local_children() -> set[int]:
    """Pids of this process's children that are not rpyc servers."""
    return {
        child.pid
        for child in psutil.Process().children()
        if "rpyc_classic" not in " ".join(child.cmdline())
    }


# ----------------------------------------------------------------------------
# Results


@pytest.mark.timeout(30)
def test_purely_remote_ordered_results_and_no_worker_left(rpyc_server):
    numap = NuMap(
        rf.square, range(60), worker_num=0, worker_remote=[(rpyc_server.spec, 2)]
    )
    numap.start()
    assert len(rpyc_server.worker_pids()) == 2
    assert list(numap) == [x * x for x in range(60)]
    numap.stop()
    assert rpyc_server.worker_pids() == []


@pytest.mark.timeout(30)
def test_unordered_results_from_two_hosts(rpyc_server, second_rpyc_server):
    numap = NuMap(
        rf.slow_value_and_pid,
        range(40),
        worker_num=0,
        worker_remote=[(rpyc_server.spec, 1), (second_rpyc_server.spec, 1)],
        ordered=False,
        stride=4,
    )
    numap.start()
    try:
        first, second = rpyc_server.worker_pids(), second_rpyc_server.worker_pids()
        outcomes = list(numap)
    finally:
        numap.stop()
    assert sorted(value for value, _ in outcomes) == list(range(40))
    # each host's one worker process ran items
    assert {pid for _, pid in outcomes} == {*first, *second}
    assert len(first) == len(second) == 1


@pytest.mark.timeout(30)
def test_local_and_remote_workers_share_one_pool(shared_rpyc_server):
    before = set(shared_rpyc_server.worker_pids())
    numap = NuMap(
        rf.slow_value_and_pid,
        range(40),
        worker_num=1,
        worker_remote=[(shared_rpyc_server.spec, 1)],
        stride=4,
    )
    numap.start()
    try:
        remote = set(shared_rpyc_server.worker_pids()) - before
        local = local_children()
        outcomes = list(numap)
    finally:
        numap.stop()
    assert [value for value, _ in outcomes] == list(range(40))
    pids = {pid for _, pid in outcomes}
    assert pids & remote, "the remote worker ran items"
    assert pids & local, "the local worker ran items"


@pytest.mark.timeout(30)
def test_tasks_chained_across_local_and_remote_numaps(shared_rpyc_server):
    local = NuMap(worker_num=1)
    remote = NuMap(worker_num=0, worker_remote=[(shared_rpyc_server.spec, 2)])
    squares = local.add_task(rf.square, range(30))
    increments = remote.add_task(rf.increment, squares)
    remote.add_task(rf.add, increments, args=(1000,))
    local.start()
    remote.start()
    try:
        assert list(remote.get_task(1)) == [x * x + 1 + 1000 for x in range(30)]
    finally:
        remote.stop(ends=[1])
        local.stop(ends=[0])


@pytest.mark.timeout(30)
def test_chain_inside_one_mixed_numap(shared_rpyc_server):
    numap = NuMap(worker_num=1, worker_remote=[(shared_rpyc_server.spec, 1)])
    first = numap.add_task(rf.square, range(25))
    numap.add_task(rf.increment, first)
    numap.start()
    try:
        assert list(numap.get_task(1)) == [x * x + 1 for x in range(25)]
    finally:
        numap.stop(ends=[1])


@pytest.mark.timeout(30)
def test_several_numaps_share_the_same_hosts(rpyc_server, second_rpyc_server):
    hosts = [(rpyc_server.spec, 1), (second_rpyc_server.spec, 1)]
    one = NuMap(rf.square, range(30), worker_num=0, worker_remote=hosts)
    two = NuMap(rf.increment, range(30), worker_num=0, worker_remote=hosts)
    one.start()
    two.start()
    try:
        assert len(rpyc_server.worker_pids()) == 2
        interleaved = [(next(one), next(two)) for _ in range(30)]
    finally:
        one.stop()
        two.stop()
    assert interleaved == [(x * x, x + 1) for x in range(30)]


@pytest.mark.timeout(30)
def test_closures_and_imports_travel_to_the_host(remote_only_rpyc_server):
    # The module exists only on the host: imports(forgive=True) skips it
    # here, and the function can only work if the host applied the import.
    call = made_elsewhere(
        "def make(offset):\n"
        f"    def call(x):\n"
        f"        return {REMOTE_ONLY_MODULE}.triple(x) + offset\n"
        "    return call\n",
        "make",
    )(100)
    call = imports([REMOTE_ONLY_MODULE], forgive=True)(call)
    numap = NuMap(
        call, range(5), worker_num=0, worker_remote=[(remote_only_rpyc_server.spec, 1)]
    )
    numap.start()
    try:
        assert list(numap) == [3 * x + 100 for x in range(5)]
    finally:
        numap.stop()


def run_user_script(folder, source):
    """Write ``source`` as a script in ``folder``, run it there (so its
    __main__ is nowhere on the host), and return what it printed."""
    script = folder / "user_script.py"
    script.write_text(textwrap.dedent(source))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=50,
        cwd=folder, env=env_with_path(),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.timeout(60)
def test_lambdas_of_a_script_run_remotely(shared_rpyc_server, tmp_path):
    # The user's case: a script (its __main__ is nowhere on the host)
    # maps a lambda and a closure on remote workers.
    printed = run_user_script(
        tmp_path,
        f"""
            from numap import NuMap

            def make_scaler(factor):
                def scale(x):
                    return x * factor
                return scale

            hosts = [({shared_rpyc_server.spec!r}, 2)]
            numap = NuMap(worker_num=0, worker_remote=hosts)
            numap.add_task(lambda x: x + 1, range(10))
            numap.add_task(make_scaler(3), range(10))
            numap.start()
            # taken in step: the tasks share the buffer
            print(list(zip(numap.get_task(0), numap.get_task(1))))
            numap.stop(ends=[0, 1])
            """,
    )
    assert printed == str([(x + 1, 3 * x) for x in range(10)])


@pytest.mark.timeout(60)
def test_script_functions_take_the_scripts_globals_to_the_host(
    shared_rpyc_server, tmp_path
):
    # A script's function that uses a module the script imported, another
    # of its functions and a constant: on the host those were looked up in
    # the worker's own __main__ (NameError for every item). A global that
    # does not pickle (a lock) still works for local workers.
    printed = run_user_script(
        tmp_path,
        f"""
            import math
            import threading
            from numap import NuMap

            OFFSET = 10
            LOCK = threading.Lock()

            def helper(x):
                return math.sqrt(x) + OFFSET

            def uses_globals(x):
                return helper(x * x)

            def uses_the_lock(x):
                with LOCK:
                    return x

            hosts = [({shared_rpyc_server.spec!r}, 2)]
            remote = NuMap(uses_globals, range(4), worker_num=0, worker_remote=hosts)
            print(list(remote))
            remote.stop()
            local = NuMap(uses_the_lock, range(4), worker_num=2)
            print(list(local))
            local.stop()
            """,
    )
    assert printed.splitlines() == ["[10.0, 11.0, 12.0, 13.0]", "[0, 1, 2, 3]"]


@pytest.mark.timeout(60)
def test_script_functions_inside_a_task_run_remotely(shared_rpyc_server, tmp_path):
    # A function of the script that travels inside the task (an argument, a
    # partial of an importable function) must go by value too: by name,
    # the host's __main__ does not have it.
    printed = run_user_script(
        tmp_path,
        f"""
            import functools
            import remote_functions
            from numap import NuMap

            def cube(x):
                return x ** 3

            hosts = [({shared_rpyc_server.spec!r}, 2)]
            numap = NuMap(worker_num=0, worker_remote=hosts)
            numap.add_task(remote_functions.call_with, range(6), args=(cube,))
            numap.add_task(
                functools.partial(remote_functions.call_with, func=cube), range(6)
            )
            numap.start()
            print(list(zip(numap.get_task(0), numap.get_task(1))))
            numap.stop(ends=[0, 1])
            """,
    )
    assert printed == str([(x**3, x**3) for x in range(6)])


@pytest.mark.timeout(60)
@settings(max_examples=8)
@given(
    items=st.lists(st.integers(-1000, 1000), max_size=60),
    remote_workers=st.integers(1, 2),
    local_workers=st.integers(0, 1),
    stride=st.integers(1, 8),
    extra_buffer=st.integers(0, 10),
    ordered=st.booleans(),
)
def test_property_remote_results_are_the_map(
    shared_rpyc_server, items, remote_workers, local_workers, stride, extra_buffer,
    ordered,
):  # fmt: skip
    numap = NuMap(
        rf.square,
        items,
        worker_num=local_workers,
        worker_remote=[(shared_rpyc_server.spec, remote_workers)],
        stride=stride,
        buffer=stride + extra_buffer,
        ordered=ordered,
    )
    numap.start()
    try:
        results = list(numap)
    finally:
        numap.stop()
    expected = [x * x for x in items]
    assert results == expected if ordered else sorted(results) == sorted(expected)


# ----------------------------------------------------------------------------
# Errors


@pytest.mark.timeout(30)
def test_remote_exception_is_raised_by_next_with_remote_traceback(
    shared_rpyc_server,
):
    outcomes = run(
        rf.fail_on_three,
        range(6),
        worker_num=0,
        worker_remote=[(shared_rpyc_server.spec, 1)],
    )
    assert [value for kind, value in outcomes if kind == "ok"] == [0, 1, 2, 4, 5]
    kind, error = outcomes[3]
    assert kind == "error" and isinstance(error, ValueError)
    assert "item 3 is not welcome here" in str(error)
    notes = "\n".join(error.__notes__)
    assert "Traceback" in notes
    assert "remote_functions.py" in notes and "fail_on_three" in notes
    assert "worker pid" in notes


@pytest.mark.timeout(30)
def test_function_the_host_cannot_import_fails_each_item_clearly(
    shared_rpyc_server, tmp_path, monkeypatch
):
    # A function from a module that exists here but not on the host goes by
    # name: every item yields an error that says what the host lacks.
    (tmp_path / "only_here_module.py").write_text("def f(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import only_here_module

    outcomes = run(
        only_here_module.f,
        range(3),
        worker_num=0,
        worker_remote=[(shared_rpyc_server.spec, 1)],
    )
    assert [kind for kind, _ in outcomes] == ["error"] * 3
    for _, error in outcomes:
        assert isinstance(error, SerializationError)
        assert "only_here_module" in str(error)


@pytest.mark.timeout(20)
def test_unreachable_host_fails_start_naming_host_and_port():
    port = free_port()
    before = local_children()
    numap = NuMap(
        rf.square, range(5), worker_num=1, worker_remote=[(f"127.0.0.1:{port}", 2)]
    )
    with pytest.raises(HostUnreachableError, match=f"127.0.0.1:{port}"):
        numap.start()
    assert wait_until(lambda: local_children() <= before, 5), "local worker left"


@pytest.mark.timeout(60)
def test_host_killed_mid_stream_loses_its_items_only(rpyc_server, second_rpyc_server):
    numap = NuMap(
        rf.slow_identity,
        range(150),
        args=(0.02,),
        worker_num=0,
        worker_remote=[(rpyc_server.spec, 1), (second_rpyc_server.spec, 1)],
        stride=2,
        buffer=12,
    )
    numap.start()
    outcomes = [("ok", next(numap)) for _ in range(20)]
    rpyc_server.kill()
    outcomes += collect(numap)
    stopper = threading.Thread(target=numap.stop)
    stopper.start()
    stopper.join(20)
    assert not stopper.is_alive(), "stop returned"
    assert len(outcomes) == 150
    lost = []
    for index, (kind, value) in enumerate(outcomes):
        if kind == "ok":
            assert value == index
        else:
            assert isinstance(value, HostLostError), value
            assert rpyc_server.spec in str(value)
            lost.append(index)
    assert lost, "the killed host held items"
    assert outcomes[-1] == ("ok", 149), "the other host went on to the end"
    assert second_rpyc_server.worker_pids() == []


@pytest.mark.timeout(60)
def test_all_hosts_gone_every_remaining_item_errors(rpyc_server):
    numap = NuMap(
        rf.slow_identity,
        range(100),
        args=(0.02,),
        worker_num=0,
        worker_remote=[(rpyc_server.spec, 2)],
        stride=2,
        buffer=8,
    )
    numap.start()
    taken = [next(numap) for _ in range(10)]
    rpyc_server.kill()
    rest = collect(numap)
    stopper = threading.Thread(target=numap.stop)
    stopper.start()
    stopper.join(20)
    assert not stopper.is_alive(), "stop returned"
    assert taken == list(range(10))
    assert len(taken) + len(rest) == 100
    errors = [value for kind, value in rest if kind == "error"]
    assert errors, "items after the loss are errors"
    first_error = next(i for i, (kind, _) in enumerate(rest) if kind == "error")
    assert all(kind == "error" for kind, _ in rest[first_error:])
    assert all(isinstance(error, NuMapError) for error in errors)
    assert any(isinstance(error, HostLostError) for error in errors)
    assert all(value == 10 + i for i, (kind, value) in enumerate(rest[:first_error]))


@pytest.mark.timeout(30)
def test_parent_that_exits_without_stop_leaves_no_remote_worker(rpyc_server):
    script = textwrap.dedent(
        f"""
        import os
        import remote_functions
        from numap import NuMap
        numap = NuMap(remote_functions.square, range(1000), worker_num=0,
                      worker_remote=[({rpyc_server.spec!r}, 2)])
        numap.start()
        print(next(numap), next(numap), flush=True)
        os._exit(0)  # no stop, no clean-up at all
        """
    )
    env = env_with_path()
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env,
        timeout=20,
    )  # fmt: skip
    assert done.stdout.split() == ["0", "1"], done.stderr
    assert wait_until(lambda: rpyc_server.worker_pids() == [], 10)


@pytest.mark.timeout(30)
def test_ctrl_c_while_iterating_leaves_no_remote_worker(rpyc_server):
    script = textwrap.dedent(
        f"""
        import remote_functions
        from numap import NuMap
        numap = NuMap(remote_functions.slow_identity, range(1000), worker_num=0,
                      worker_remote=[({rpyc_server.spec!r}, 2)])
        numap.start()
        for x in numap:
            if x == 3:
                print("iterating", flush=True)
        """
    )
    env = env_with_path()
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert parent.stdout.readline().strip() == "iterating"
        parent.send_signal(signal.SIGINT)
        _, err = parent.communicate(timeout=20)
        assert "KeyboardInterrupt" in err
        assert wait_until(lambda: rpyc_server.worker_pids() == [], 10)
    finally:
        parent.kill()
        parent.wait()


@pytest.mark.timeout(30)
def test_remote_workers_ignore_ctrl_c_as_local_ones_do(rpyc_server):
    # Ctrl-C in a terminal reaches the whole foreground process group, which
    # holds a server started from that terminal and its workers: the parent
    # decides when workers end, so SIGINT must not cost the items in flight.
    numap = NuMap(
        rf.slow_identity, range(40), args=(0.02,), worker_num=0,
        worker_remote=[(rpyc_server.spec, 2)],
    )  # fmt: skip
    numap.start()
    try:
        workers = rpyc_server.worker_pids()
        assert len(workers) == 2
        taken = [next(numap) for _ in range(5)]
        for pid in workers:
            os.kill(pid, signal.SIGINT)
        taken += [next(numap) for _ in range(30)]
        assert rpyc_server.worker_pids() == workers
        taken += list(numap)  # to the end, where the map stops itself
        assert taken == list(range(40))
    finally:
        numap.stop()
    assert wait_until(lambda: rpyc_server.worker_pids() == [], 10)


@pytest.mark.timeout(40)
def test_long_remote_call_is_not_cut_by_rpyc_request_timeout(
    shared_rpyc_server, monkeypatch
):
    # rpyc cuts a synchronous request after DEFAULT_CONFIG's 30 s. Lowered
    # to 1 s here, a plain classic connection fails a 2.5 s call, while a
    # NuMap started after the change waits for its 2.5 s item.
    monkeypatch.setitem(rpyc.core.protocol.DEFAULT_CONFIG, "sync_request_timeout", 1)
    address = shared_rpyc_server.spec.split(":")
    plain = rpyc.classic.connect(address[0], int(address[1]))
    try:
        with pytest.raises(rpyc.AsyncResultTimeout):
            plain.modules.time.sleep(2.5)
    finally:
        plain.close()
    numap = NuMap(
        rf.sleep_then_return,
        ["done"],
        args=(2.5,),
        worker_num=0,
        worker_remote=[(shared_rpyc_server.spec, 1)],
    )
    numap.start()
    try:
        assert list(numap) == ["done"]
    finally:
        numap.stop()


# ----------------------------------------------------------------------------
# SSL


@pytest.mark.timeout(30)
def test_ssl_hosts_through_worker_remote_ssl(ssl_rpyc_server, certificates):
    numap = NuMap(
        rf.square,
        range(10),
        worker_num=0,
        worker_remote=[(ssl_rpyc_server.spec, 2)],
        worker_remote_ssl=client_ssl(certificates),
    )
    numap.start()
    try:
        assert list(numap) == [x * x for x in range(10)]
    finally:
        numap.stop()
    plain = NuMap(
        rf.square, range(3), worker_num=0, worker_remote=[(ssl_rpyc_server.spec, 1)]
    )
    with pytest.raises(HostUnreachableError, match=ssl_rpyc_server.spec):
        plain.start()


# ----------------------------------------------------------------------------
# Short of threads

REMOTE_SHORT_OF_THREADS = (
    CAP_THREADS
    + """
import sys
import numap._remote  # imported before the cap

room, host = int(sys.argv[1]), sys.argv[2]
numap = NuMap(abs, range(10), worker_num=0, worker_remote=[(host, 2)])
cap(room_for_stacks=room)
try:
    numap.start()
except NuMapError as error:
    print("refused:", error)
lift()
left = [t.name for t in threading.enumerate() if t.name.startswith("numap")]
print("threads left:", left)
"""
)


@pytest.mark.timeout(60)
@capped_address_space
@pytest.mark.parametrize(
    ("room", "refused"),
    [
        (0, "cannot start a thread to start the remote workers"),
        # Both starts fit, then the receiver and the first reader: the
        # second worker's reader does not.
        (2, "cannot start the reader thread of host"),
    ],
)
def test_remote_start_short_of_threads_leaves_no_worker(rpyc_server, room, refused):
    out = run_capped(REMOTE_SHORT_OF_THREADS, str(room), rpyc_server.spec)
    assert f"refused: {refused}" in out
    assert "threads left: []" in out
    assert wait_until(lambda: rpyc_server.worker_pids() == [], 10)
