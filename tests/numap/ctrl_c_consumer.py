"""A program that catches Ctrl-C while it reads a NuMap, and reads on.

Run by test_ctrl_c_resume.py. Another process sends this one five SIGINTs,
0.2-3 ms apart, while the main thread reads 5,000 results (with
``numap.next(timeout=10)``, a ``for`` loop, or a task's iterator in a
``for`` loop, restarted after each KeyboardInterrupt). Sent from another
process, the signals land anywhere in the main thread's work; a thread
of this process would need the GIL to send them, so they would come
mostly while the main thread waits. Every result must still come, once,
in order.

argv: stride buffer trials mode(next|for|task) worker_type
Prints one line per trial: "ok" or what went wrong, then whether
Python's default SIGINT handler is back after stop().
"""

import os
import signal
import subprocess
import sys
import time

from numap import NuMap

N = 5000

FIRER = """
import os, random, signal, sys, time
parent = int(sys.argv[1])
sys.stdin.readline()
for _ in range(5):
    time.sleep(random.uniform(0.0002, 0.003))
    os.kill(parent, signal.SIGINT)
"""


def inc(x):
    return x + 1


def consume(numap, mode, got):
    if mode == "next":
        while True:
            try:
                got.append(numap.next(timeout=10))
            except StopIteration:
                return
    results = numap.get_task(0) if mode == "task" else numap
    for value in results:
        got.append(value)


def go_through(*steps):
    """Run the steps in turn, going on with the current one after each
    KeyboardInterrupt (every step may run again). Returns how many came.

    The signals come 0.2-3 ms apart, so one can land in the inner except
    clause or on the loop's jump back, outside the inner try: the outer
    try catches that one. Python raises there, in this program's own code,
    whatever numap does.
    """
    done = 0
    interrupts = 0
    while done < len(steps):
        try:
            while done < len(steps):
                try:
                    steps[done]()
                    done += 1
                except KeyboardInterrupt:
                    interrupts += 1
        except KeyboardInterrupt:
            interrupts += 1
    return interrupts


def trial(stride, buffer, mode, worker_type):
    numap = NuMap(
        inc,
        range(N),
        worker_type=worker_type,
        worker_num=2,
        stride=stride,
        buffer=buffer,
    )
    firer = subprocess.Popen(
        [sys.executable, "-c", FIRER, str(os.getpid())],
        stdin=subprocess.PIPE,
        text=True,
    )
    got = []
    outcome = "ok"

    def fire():
        if not firer.stdin.closed:
            firer.stdin.write("go\n")
            firer.stdin.close()

    def read():
        nonlocal outcome
        try:
            consume(numap, mode, got)
        except TimeoutError:
            outcome = f"hang: no result within 10 s after {len(got)} results"

    def let_the_last_signals_land():
        firer.wait()
        time.sleep(0.05)

    interrupts = go_through(fire, read, let_the_last_signals_land)
    try:
        numap.stop()
    except KeyboardInterrupt:
        numap.stop()
    if outcome == "ok" and got != [x + 1 for x in range(N)]:
        missing = N - len(set(got))
        outcome = f"wrong: {len(got)} results, {missing} missing"
    return f"{outcome} (interrupts {interrupts})"


if __name__ == "__main__":
    stride, buffer, trials = map(int, sys.argv[1:4])
    mode, worker_type = sys.argv[4], sys.argv[5]
    for _ in range(trials):
        print(trial(stride, buffer, mode, worker_type), flush=True)
    default = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    print("default handler back:", default)
