"""A program that catches Ctrl-C while it reads a NuMap, and reads on.

Run by test_ctrl_c_resume.py. A thread sends this process five SIGINTs,
0.5-5 ms apart, while the main thread reads 5,000 results (with
``numap.next(timeout=10)`` or a ``for`` loop, restarted after each
KeyboardInterrupt). Every result must still come, once, in order.

argv: stride buffer trials mode(next|for) worker_type
Prints one line per trial: "ok" or what went wrong, then whether
Python's default SIGINT handler is back after stop().
"""

import os
import random
import signal
import sys
import threading
import time

from numap import NuMap

N = 5000


def inc(x):
    return x + 1


def fire(go, done):
    go.wait()
    for _ in range(5):
        time.sleep(random.uniform(0.0005, 0.005))
        if done.is_set():
            return
        os.kill(os.getpid(), signal.SIGINT)


def consume(numap, mode, got):
    if mode == "next":
        while True:
            try:
                got.append(numap.next(timeout=10))
            except StopIteration:
                return
    for value in numap:
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
    got = []
    go, done = threading.Event(), threading.Event()
    firing = threading.Thread(target=fire, args=(go, done))
    firing.start()
    interrupts = 0
    outcome = "ok"
    while True:
        try:
            go.set()
            consume(numap, mode, got)
            break
        except KeyboardInterrupt:
            interrupts += 1
        except TimeoutError:
            outcome = f"hang: no result within 10 s after {len(got)} results"
            break
    done.set()
    while firing.is_alive():
        try:
            firing.join()
        except KeyboardInterrupt:
            interrupts += 1
    try:
        time.sleep(0.05)  # a last signal still on its way
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
    print(
        "default handler back:",
        signal.getsignal(signal.SIGINT) is signal.default_int_handler,
    )
