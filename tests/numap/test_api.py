"""NuMap's public API: arguments, defaults, tasks, stages, imports."""

import contextlib
import os
import sys
import threading

import numap
import pytest
from numap import NuMap, NuMapError, imports


def identity(x):
    return x


def add(x, a, b=0):
    return x + a + b


@pytest.mark.timeout(10)
def test_public_api_surface():
    assert sorted(numap.__all__) == [
        "HostLostError",
        "HostUnreachableError",
        "NuMap",
        "NuMapError",
        "RemoteError",
        "SerializationError",
        "WorkerLostError",
        "imports",
    ]


@pytest.mark.timeout(10)
def test_defaults():
    nm = NuMap()
    assert nm.worker_type == "process"
    assert nm.worker_num == max(1, os.cpu_count() or 1)
    assert nm.worker_remote is None
    assert nm.stride == nm.worker_num
    assert nm.buffer is None  # computed at start, when the tasks are known
    assert nm.ordered is True and nm.skip is False
    assert nm.name == f"imap_{id(nm)}"
    assert not nm._started.is_set()
    assert nm._tasks == [] and nm._tasks_tracked == {}


@pytest.mark.timeout(20)
def test_buffer_defaults_to_stride_times_tasks_at_start():
    nm = NuMap(worker_type="thread", worker_num=3)
    for _ in range(4):
        nm.add_task(identity, [])
    nm.start()
    try:
        assert nm.stride == 3
        assert nm.buffer == 12
    finally:
        nm.stop()


@pytest.mark.parametrize(
    ("options", "error", "words"),
    [
        ({"worker_type": "fork"}, ValueError, "worker_type"),
        ({"worker_num": 0}, ValueError, "worker_num"),
        ({"worker_num": -1}, ValueError, "worker_num"),
        ({"worker_num": 1.5}, TypeError, "worker_num"),
        ({"stride": 0}, ValueError, "stride"),
        ({"stride": 2, "buffer": 1}, ValueError, "buffer"),
        ({"buffer": 0}, ValueError, "buffer"),
        ({"worker_remote": "localhost"}, TypeError, "worker_remote"),
        ({"worker_remote": [("localhost",)]}, TypeError, "worker_remote"),
        ({"worker_remote": [("localhost", 0)]}, ValueError, "worker_remote"),
        (
            {"worker_remote": ("h1", 2)},
            TypeError,
            r"single pair \('h1', 2\); wrap it in a list",
        ),
        (
            {"worker_remote": [("localhost", 1)], "worker_remote_ssl": "x"},
            TypeError,
            "worker_remote_ssl",
        ),
        (
            {"worker_remote": [("localhost", 1)], "worker_type": "thread"},
            ValueError,
            "worker_type='process'",
        ),
        ({"func": identity}, ValueError, "iterable"),
        ({"iterable": [1, 2]}, ValueError, "only with func"),
        ({"worker_num": 0}, ValueError, "worker_remote"),
    ],
)
@pytest.mark.timeout(10)
def test_invalid_arguments_are_refused_naming_the_argument(options, error, words):
    with pytest.raises(error, match=words):
        NuMap(**options)


@pytest.mark.timeout(10)
def test_arguments_keep_the_settings_as_given():
    nm = NuMap(worker_type="thread", stride=3)
    assert nm.arguments["worker_num"] is None and nm.worker_num >= 1
    assert nm.arguments["stride"] == 3 and nm.arguments["buffer"] is None
    assert nm.arguments["name"] is None and nm.name.startswith("imap_")
    assert nm.arguments["worker_type"] == "thread"


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda nm: nm.add_task(add, [1], args=5), TypeError, r"add_task\(args=5\)"),
        (lambda nm: nm.add_task(add, [1], kwargs=[1]), TypeError, r"kwargs=\[1\]"),
        (lambda nm: nm.add_task(add, [1], timeout="x"), TypeError, "timeout='x'"),
        (lambda nm: nm.add_task(add, [1], timeout=-1), ValueError, "timeout=-1"),
        (lambda nm: nm.next(timeout="x"), TypeError, r"next\(timeout='x'\)"),
        (lambda nm: nm.get_task(0, timeout=-1), ValueError, r"get_task\(timeout=-1\)"),
        (lambda nm: nm.stop(ends=5), TypeError, r"stop\(ends=5\)"),
        (lambda nm: nm.start(stages=(3,)), ValueError, "stages are 1"),
        (lambda nm: nm.start(stages=2), TypeError, r"start\(stages=2\)"),
        (lambda nm: nm.add_task(add, [1], block="no"), TypeError, "block='no'"),
        (lambda nm: nm.add_task(add, [1], track="no"), TypeError, "track='no'"),
        (lambda nm: nm.get_task(0.0), TypeError, "a task id is an int"),
        (lambda nm: nm.next(task=0.0), TypeError, "a task id is an int"),
        # A bool is an int, but task=True meaning task 1 is a mistake.
        (lambda nm: nm.next(task=True), TypeError, "not True"),
    ],
)
@pytest.mark.timeout(10)
def test_invalid_method_arguments_are_refused_naming_them(call, error, words):
    nm = NuMap(identity, [1, 2], worker_type="thread")
    with pytest.raises(error, match=words):
        call(nm)
    assert not nm._started.is_set()  # refused before anything started


@pytest.mark.timeout(10)
def test_worker_num_zero_is_fine_with_remote_workers():
    nm = NuMap(worker_num=0, worker_remote=[("127.0.0.1:1", 2)])
    assert nm.stride == 2


@pytest.mark.timeout(20)
def test_empty_iterable_is_a_valid_empty_map():
    nm = NuMap(identity, [], worker_type="thread")
    assert len(nm._tasks) == 1
    assert list(nm) == []
    nm.stop()


@pytest.mark.timeout(20)
def test_iteration_starts_the_map_and_is_task_zero():
    nm = NuMap(add, range(5), args=(10,), kwargs={"b": 100}, worker_type="thread")
    assert list(nm) == [110 + x for x in range(5)]
    nm.stop()


@pytest.mark.timeout(20)
def test_add_task_returns_task_iterator_with_its_id():
    nm = NuMap(worker_type="thread", worker_num=2)
    first = nm.add_task(identity, range(3))
    second = nm.add_task(add, range(3), args=(1,))
    assert (first.task, second.task) == (0, 1)
    nm.start()
    try:
        assert [nm.next(task=1), nm.next(task=0)] == [1, 0]
        assert list(zip(nm.get_task(0), nm.get_task(task=1), strict=False)) == [
            (1, 2),
            (2, 3),
        ]
    finally:
        nm.stop()


@pytest.mark.timeout(20)
def test_get_task_takes_task_id_as_in_the_contracts_examples():
    nm = NuMap(worker_type="thread", worker_num=2)
    nm.add_task(identity, range(3))
    nm.add_task(add, range(3), args=(10,))
    with pytest.raises(TypeError, match="task_id"):
        nm.get_task(1, task_id=0)
    with pytest.raises(IndexError, match="no task 2"):
        nm.get_task(task_id=2)
    nm.start()
    try:
        pairs = zip(nm.get_task(task_id=0), nm.get_task(task_id=1), strict=True)
        assert list(pairs) == [(0, 10), (1, 11), (2, 12)]
    finally:
        nm.stop()


@pytest.mark.timeout(20)
def test_add_task_validates_its_arguments():
    nm = NuMap(worker_type="thread")
    with pytest.raises(TypeError, match="func"):
        nm.add_task(42, [])
    with pytest.raises(TypeError, match="iterable"):
        nm.add_task(identity, None)
    with pytest.raises(TypeError):
        nm.add_task(identity, 42)
    with pytest.raises(IndexError, match="no task 3"):
        nm.get_task(3)


@pytest.mark.timeout(20)
@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"func": 42, "iterable": []}, r"^NuMap\(func=42\)"),
        ({"func": identity, "iterable": 5}, r"^NuMap\(iterable=5\)"),
        ({"func": identity, "iterable": [], "args": 3}, r"^NuMap\(args=3\)"),
        ({"func": identity, "iterable": [], "kwargs": 3}, r"^NuMap\(kwargs=3\)"),
    ],
)
def test_constructor_errors_name_the_constructor(arguments, message):
    # The constructor makes its first task with add_task's checks; a user
    # who never called add_task must not be told about it.
    with pytest.raises(TypeError, match=message):
        NuMap(worker_type="thread", **arguments)


@pytest.mark.timeout(20)
def test_next_refuses_task_ids_that_do_not_exist_before_starting():
    nm = NuMap(identity, range(3), worker_type="thread")
    for task in (-1, 1):
        with pytest.raises(IndexError, match=f"no task {task}"):
            nm.next(task=task)
    assert not nm._started.is_set()
    assert list(nm) == [0, 1, 2]
    nm.stop()


@pytest.mark.timeout(20)
def test_a_task_feeds_one_task_of_the_same_numap_only():
    nm = NuMap(worker_type="thread")
    first = nm.add_task(identity, range(20))
    nm.add_task(identity, first)
    with pytest.raises(ValueError, match="task 1 of this NuMap already reads task 0"):
        nm.add_task(identity, first)
    assert len(nm._tasks) == 2
    other = NuMap(worker_type="thread")  # another NuMap may read it too
    copy = other.add_task(identity, nm.get_task(0))
    assert copy.numap is other


@pytest.mark.timeout(20)
def test_no_tasks_after_start_and_no_pop_while_started():
    nm = NuMap(identity, range(2), worker_type="thread")
    nm.start()
    try:
        with pytest.raises(NuMapError, match="stop\\(\\) the NuMap first, then add"):
            nm.add_task(identity, [])
        with pytest.raises(NuMapError, match="stop\\(\\) the NuMap first, then pop"):
            nm.pop_task(1)
        with pytest.raises(NuMapError, match="already started"):
            nm.start()
    finally:
        nm.stop()


@pytest.mark.timeout(10)
def test_pop_task_removes_the_last_tasks():
    nm = NuMap(worker_type="thread")
    for _ in range(4):
        nm.add_task(identity, [], track=True)
    nm.pop_task(1)
    assert len(nm._tasks) == 3 and sorted(nm._tasks_tracked) == [0, 1, 2]
    nm.pop_task(True)
    assert nm._tasks == [] and nm._tasks_tracked == {}
    with pytest.raises(ValueError, match="number"):
        nm.pop_task(0)


@pytest.mark.timeout(20)
def test_start_in_two_stages():
    nm = NuMap(worker_type="process", worker_num=2)
    results = nm.add_task(identity, range(4))
    with pytest.raises(NuMapError, match="stage 1"):
        nm.start(stages=(2,))
    nm.start(stages=(1,))
    assert nm._started.is_set()
    with pytest.raises(TimeoutError):
        nm.next(timeout=0.05)  # no feeder yet: next blocks
    nm.start(stages=(2,))
    try:
        assert list(results) == [0, 1, 2, 3]
    finally:
        nm.stop()


@pytest.mark.timeout(20)
def test_all_worker_threads_run_at_once():
    # Every one of the 32 items waits until all 32 have begun: this passes
    # only if worker_num threads really run side by side (the pool starts
    # most of them from a starter thread).
    everyone = threading.Barrier(32, timeout=10)
    nm = NuMap(
        lambda x: everyone.wait() >= 0, range(32), worker_type="thread", worker_num=32
    )
    try:
        assert list(nm) == [True] * 32
    finally:
        nm.stop()
    assert not [t for t in threading.enumerate() if t.name.startswith("numap")]


def fail_on_two(x):
    if x == 2:
        raise KeyError(x)
    return x


@pytest.mark.timeout(20)
@pytest.mark.parametrize("worker_type", ["thread", "process"])
def test_tracked_results_by_index(worker_type):
    nm = NuMap(worker_type=worker_type, worker_num=2)
    results = nm.add_task(fail_on_two, range(4), track=True)
    nm.start()
    try:
        for _ in range(4):
            with contextlib.suppress(KeyError):
                next(results)
    finally:
        nm.stop()
    tracked = nm._tasks_tracked[0]
    assert sorted(tracked) == [0, 1, 2, 3]
    assert tracked[3] == 3
    assert isinstance(tracked[2], KeyError)


@pytest.mark.timeout(30)
def test_chain_across_two_numaps():
    upstream = NuMap(identity, range(6), worker_type="thread", worker_num=2)
    downstream = NuMap(worker_type="process", worker_num=2)
    results = downstream.add_task(add, upstream, args=(100,))
    upstream.start()
    downstream.start()
    try:
        assert list(results) == [100 + x for x in range(6)]
    finally:
        downstream.stop()
        upstream.stop()


@pytest.mark.timeout(10)
def test_worker_remote_is_opened_at_start_not_in_init():
    # Nothing listens on port 1: construction succeeds, start reports it.
    nm = NuMap(identity, [1], worker_num=0, worker_remote=[("127.0.0.1:1", 1)])
    with pytest.raises(numap.HostUnreachableError):
        nm.start()
    assert not nm._started.is_set()


# -- imports ----------------------------------------------------------------


@imports(["colorsys"])
def uses_colorsys(x):
    return colorsys.rgb_to_hsv(x, 0, 0)[2]  # noqa: F821 - bound by imports


@imports(["os.path"])
def uses_dotted(x):
    return path.basename(x)  # noqa: F821 - bound by imports


@imports(["no_such_module_numap, json"])
def uses_alternative(x):
    return json.dumps(x)  # noqa: F821 - bound by imports


@imports(["no_such_module_numap.sub, xml.sax.saxutils"])
def uses_dotted_alternative(x):
    return sub.escape(x)  # noqa: F821 - bound by imports


@pytest.mark.timeout(10)
def test_imports_binds_the_documented_names():
    module = sys.modules[__name__]
    assert module.colorsys.__name__ == "colorsys"
    assert module.path is os.path
    assert module.json.__name__ == "json"
    assert module.sub.__name__ == "xml.sax.saxutils"
    assert uses_colorsys.__numap_imports__ == (("colorsys",), False)


@pytest.mark.timeout(10)
def test_imports_raises_unless_forgiven():
    with pytest.raises(ImportError, match="no_such_module_numap"):
        imports(["no_such_module_numap"])(identity)
    assert imports(["no_such_module_numap"], forgive=True)(identity) is identity
    with pytest.raises(TypeError, match="list"):
        imports("json")


@pytest.mark.timeout(30)
def test_imports_are_applied_in_worker_processes():
    # Remove the module the decorator bound; workers started afterwards
    # must bind it again themselves before the first call.
    module = sys.modules[__name__]
    del module.colorsys
    try:
        nm = NuMap(worker_num=2)
        results = nm.add_task(uses_colorsys, [0.5, 1.0])
        other = nm.add_task(uses_alternative, [[1]])
        nm.start()
        try:
            assert list(results) == [0.5, 1.0]
            assert list(other) == ["[1]"]
        finally:
            nm.stop()
    finally:
        import colorsys

        module.colorsys = colorsys


@pytest.mark.timeout(10)
def test_constructor_checks_flags_name_and_remote_ports_at_once():
    with pytest.raises(TypeError, match="ordered='no'"):
        NuMap(worker_type="thread", ordered="no")
    with pytest.raises(TypeError, match="skip"):
        NuMap(worker_type="thread", skip=b"")
    with pytest.raises(TypeError, match="name=5"):
        NuMap(worker_type="thread", name=5)
    with pytest.raises(ValueError, match="99999"):
        NuMap(worker_remote=[("127.0.0.1:99999", 1)], worker_num=0)
    with pytest.raises(ValueError, match="no host name"):
        NuMap(worker_remote=[(":18812", 1)], worker_num=0)
    assert NuMap(worker_type="thread", ordered=0, skip=1).ordered is False


@pytest.mark.timeout(10)
def test_pop_task_refuses_more_tasks_than_there_are_and_task_ids_of_an_empty_map():
    nm = NuMap(worker_type="thread")
    with pytest.raises(IndexError, match="has no tasks"):
        nm.get_task(0)
    nm.add_task(identity, range(3))
    with pytest.raises(IndexError, match="only 1 task"):
        nm.pop_task(2)
    assert len(nm._tasks) == 1
    nm.pop_task(1)
    assert nm._tasks == []


def count_results(task, start_together, counts, key):
    start_together.wait()
    try:
        counts[key] = sum(1 for _ in task)
    except Exception as error:
        counts[key] = repr(error)


@pytest.mark.timeout(60)
def test_two_consumers_first_next_at_once_start_the_map_once():
    # Each thread's first next() starts a never-started map. Checking and
    # starting were two steps: both threads could see it unstarted, one
    # then got "already started" and the other waited forever for the
    # partner task nobody read. Frequent thread switches widen the window
    # (on the old code about 1 trial in 15 to 200 failed).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        for trial in range(1000):
            numap = NuMap(worker_type="thread", worker_num=2)
            tasks = [numap.add_task(identity, range(20)) for _ in range(2)]
            start_together = threading.Barrier(2)
            counts: dict[int, object] = {}
            threads = [
                threading.Thread(
                    target=count_results, args=(tasks[key], start_together, counts, key)
                )
                for key in (0, 1)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(5)
            numap.stop()
            assert counts == {0: 20, 1: 20}, f"trial {trial}: {counts}"
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.timeout(10)
def test_a_task_iterator_given_as_a_task_id_is_refused_clearly():
    nm = NuMap(worker_type="thread")
    first = nm.add_task(identity, range(3))
    with pytest.raises(TypeError, match=r"a task id is an int .* not <_NuMapTask 0"):
        nm.get_task(first)
    with pytest.raises(TypeError, match="a task id is an int"):
        nm.next(task="0")


@pytest.mark.timeout(30)
def test_an_iterator_of_a_popped_task_raises_numap_error_naming_the_task():
    nm = NuMap(worker_type="thread", worker_num=2)
    nm.add_task(identity, range(3))
    second = nm.add_task(identity, range(3))
    assert list(nm) == [0, 1, 2] and list(second) == [0, 1, 2]
    nm.stop()
    nm.pop_task(True)
    first = nm.add_task(identity, range(3))
    nm.start()
    with pytest.raises(NuMapError, match="task 1 of this iterator was popped"):
        next(second)
    assert list(first) == [0, 1, 2]
    nm.stop()
