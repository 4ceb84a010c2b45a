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

import signal
import subprocess
import sys

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
        [sys.executable, "-c", FIRER, str(__import__("os").getpid())],
        stdin=subprocess.PIPE,
        text=True,
    )
    got = []
    interrupts = 0
    outcome = "ok"
    fired = False
    while True:
        try:
            if not fired:
                firer.stdin.write("go\n")
                firer.stdin.flush()
                fired = True
            consume(numap, mode, got)
            break
        except KeyboardInterrupt:
            interrupts += 1
        except TimeoutError:
            outcome = f"hang: no result within 10 s after {len(got)} results"
            break
    while True:  # signals may still be on their way
        try:
            firer.wait()
            firer.stdin.close()
            break
        except KeyboardInterrupt:
            interrupts += 1
    try:
        __import__("time").sleep(0.05)
    except KeyboardInterrupt:
        interrupts += 1
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
