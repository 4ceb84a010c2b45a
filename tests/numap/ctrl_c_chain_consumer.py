"""A program that catches Ctrl-C while it reads a tracked chain read back
by its own map, and reads on.

Run by test_tracked_chains_across_maps.py. The map's feeder waits in a
generator over a task chained to a tracked task, so the main thread,
waiting for results, moves that chained task itself (in slices of the
feed role's wait). A thread of this process sends SIGINTs 0-20 ms apart
while the main thread reads 400 results, restarting after each
KeyboardInterrupt. Every result must still come, once, in order.

argv: worker_type trials
Prints one line per trial: "ok" or what went wrong.
"""

import os
import random
import signal
import sys
import threading
import time

from numap import NuMap

N = 400


def plus_one(x):
    return x + 1


def through(iterator):
    yield from iterator


def fire(stop: threading.Event) -> None:
    while not stop.is_set():
        time.sleep(random.random() * 0.02)
        os.kill(os.getpid(), signal.SIGINT)


def shielded(call) -> None:
    """Call ``call`` until a Ctrl-C sent before the firer stopped misses it."""
    while True:
        try:
            call()
            return
        except KeyboardInterrupt:
            pass


def trial(worker_type: str) -> str:
    numap = NuMap(worker_type=worker_type, worker_num=2)
    first = numap.add_task(plus_one, range(N), track=True)
    second = numap.add_task(plus_one, first)
    third = numap.add_task(plus_one, through(second))
    stop = threading.Event()
    firer = threading.Thread(target=fire, args=(stop,), daemon=True)
    firer.start()
    results = []
    interrupts = 0
    iterator = iter(third)
    while len(results) < N:
        try:
            results.append(next(iterator))
        except KeyboardInterrupt:
            interrupts += 1
        except StopIteration:
            break
    stop.set()
    shielded(firer.join)
    shielded(numap.stop)
    if results != [x + 3 for x in range(N)]:
        return f"wrong: {len(results)} results"
    return f"ok (interrupts {interrupts})"


if __name__ == "__main__":
    for _ in range(int(sys.argv[2])):
        print(trial(sys.argv[1]), flush=True)
