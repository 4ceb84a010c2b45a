"""Signals that come while the main thread starts a worker process.

Each test runs a small program in its own interpreter: signal handlers,
fork hooks and the logging module's lock are process-wide state.
"""

import pytest
from python_runs import run_python as run_program

# A Ctrl-C sent by the fork's own hook lands inside the fork, every time:
# the handler runs at the next bytecode of the main thread, which is the
# rest of the fork's Python code.
CTRL_C_DURING_THE_FORK = """
    import logging, os, signal, threading
    import multiprocess
    from numap import NuMap

    forks = []

    def interrupt_the_first_fork():
        if not forks:
            forks.append(1)
            os.kill(os.getpid(), signal.SIGINT)

    os.register_at_fork(before=interrupt_the_first_fork)
    numap = NuMap(abs, range(-20, 0), worker_num=2)
    try:
        numap.start()
    except KeyboardInterrupt:
        print("interrupted")
    else:
        print("not interrupted")
    print("children", len(multiprocess.active_children()))
    default = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    print("default handler", default)

    def lock_is_free(answer=[]):
        answer.append(logging._lock.acquire(timeout=2))
        if answer[-1]:
            logging._lock.release()
        return answer

    other = threading.Thread(target=lock_is_free)
    other.start()
    other.join()
    print("logging lock free", lock_is_free.__defaults__[0][0])
    numap = NuMap(abs, range(-20, 0), worker_num=2)
    print("results", list(numap) == list(range(20, 0, -1)))
    numap.stop()
"""


@pytest.mark.timeout(90)
def test_a_ctrl_c_during_a_workers_fork_is_raised_by_start_and_ends_its_workers():
    done = run_program(CTRL_C_DURING_THE_FORK)
    assert done.stdout.split("\n")[:5] == [
        "interrupted",
        "children 0",
        "default handler True",  # no started map is left
        "logging lock free True",
        "results True",
    ], done.stderr
    # Raised inside the fork's hooks it was printed and dropped instead.
    assert "Exception ignored" not in done.stderr, done.stderr


@pytest.mark.timeout(90)
def test_a_programs_sigterm_handler_is_not_run_by_its_workers():
    # A worker sent SIGTERM ends (killed by SIGTERM), as terminate() and
    # the items' errors assume; with the parent's handler inherited over
    # fork, the user's function raised the handler's exception instead.
    done = run_program(
        """
        import os, signal, time
        from numap import NuMap, WorkerLostError

        class Terminated(Exception):
            pass

        def raise_terminated(signum, frame):
            raise Terminated

        def terminate_myself(x):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
            return x

        signal.signal(signal.SIGTERM, raise_terminated)
        numap = NuMap(terminate_myself, [1], worker_num=1)
        try:
            next(numap)
        except WorkerLostError as error:
            print("lost:", error)
        except Terminated:
            print("the function got the parent's Terminated")
        numap.stop()
        """
    )
    assert "was killed by SIGTERM" in done.stdout, (done.stdout, done.stderr)


@pytest.mark.timeout(60)
def test_a_terminated_worker_unwinds_and_runs_its_exit_cleanups(tmp_path):
    # Leaving a with block by an exception terminates busy workers. Each
    # unwinds its function (finally blocks run) and runs multiprocess's
    # exit finalizers (papy removes FIFOs nobody read there), then dies of
    # SIGTERM; killed at once it left the finalizers' files behind.
    done = run_program(
        f"""
        import os, time
        import multiprocess.util
        from numap import NuMap

        DIRECTORY = {str(tmp_path)!r}

        def leave_a_file(x):
            path = os.path.join(DIRECTORY, f"left-{{x}}")
            open(path, "w").close()
            multiprocess.util.Finalize(None, os.unlink, args=(path,), exitpriority=0)
            try:
                time.sleep(30)
            finally:
                open(os.path.join(DIRECTORY, f"unwound-{{x}}"), "w").close()

        try:
            with NuMap(leave_a_file, range(2), worker_num=2):
                while len(os.listdir(DIRECTORY)) < 2:
                    time.sleep(0.01)
                raise RuntimeError("leave the with block")
        except RuntimeError:
            pass
        print(sorted(os.listdir(DIRECTORY)))
        """
    )
    assert done.stdout.strip() == "['unwound-0', 'unwound-1']", done.stderr


@pytest.mark.timeout(90)
def test_workers_terminated_while_they_set_up_end_quietly():
    # An undone start terminates workers just forked; one still closing
    # the parent's pipe ends printed a Terminated traceback (in 2 of 20
    # starts before).
    done = run_program(
        """
        import signal

        from numap import NuMap

        # Not an Exception: an __iter__ raising it fails the start (an
        # Exception is the task's one error item, and the map starts).
        class NoInput(BaseException):
            pass

        class Unavailable:
            def __iter__(self):
                raise NoInput("no input")

        for _ in range(100):
            numap = NuMap(abs, Unavailable(), worker_type="process", worker_num=2)
            try:
                numap.start()
            except NoInput:
                pass
            numap.stop()
        numap = NuMap(abs, Unavailable(), worker_type="thread", worker_num=1)
        try:
            numap.start()
        except NoInput:
            pass
        # As after stop(): no started map is left.
        print("done", signal.getsignal(signal.SIGINT) is signal.default_int_handler)
        """
    )
    assert done.stdout.strip() == "done True", done.stderr
    assert "Traceback" not in done.stderr, done.stderr


@pytest.mark.timeout(90)
def test_an_abort_during_an_undone_start_leaves_no_section_open():
    # A Ctrl-C held back while the workers start undoes the start; a
    # second one after ABORT_SECONDS raises at once, inside the undo (here
    # slow: the workers ignore SIGTERM for a while). The section's depth
    # stayed at 1, and every later single Ctrl-C was swallowed.
    done = run_program(
        """
        import os, signal, threading, time
        from numap import NuMap, _interrupts

        _interrupts.ABORT_SECONDS = 0.2
        fired = []

        def interrupt_twice():
            if not fired:
                fired.append(1)
                os.kill(os.getpid(), signal.SIGINT)
                threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()

        def slow_to_end():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(3)

        os.register_at_fork(before=interrupt_twice, after_in_child=slow_to_end)
        numap = NuMap(abs, range(-5, 0), worker_num=1)
        try:
            numap.start()
        except KeyboardInterrupt:
            print("interrupted")
        print("depth", _interrupts.STATE.depth)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)
            print("a Ctrl-C was swallowed")
        except KeyboardInterrupt:
            print("a later Ctrl-C is raised")
        numap.stop()
        """
    )
    assert done.stdout.split("\n")[:3] == [
        "interrupted",
        "depth 0",
        "a later Ctrl-C is raised",
    ], done.stderr
