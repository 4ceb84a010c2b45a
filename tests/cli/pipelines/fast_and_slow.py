"""A fan-out from one input Piper to a fast and a slow output (used by the
CLI tests of bounded fan-outs). finish() says the most input items that
were read and not yet through the slow output (on a thread NuMap, so its
function sees the counters of this module)."""

import threading
import time

from numap import NuMap
from papy.core import Piper, Plumber, Worker

ITEMS = 1500
read = 0
done = 0
largest_lag = 0
lock = threading.Lock()


def reads():
    global read
    for item in range(ITEMS):
        read += 1
        yield item


def keep(inbox):
    return inbox[0]


def slow(inbox):
    global done, largest_lag
    time.sleep(0.002)
    with lock:
        done += 1
        largest_lag = max(largest_lag, read - done)
    return inbox[0]


source = Piper(Worker(keep), name="source")
numap = NuMap(worker_type="thread", worker_num=2)
pipeline = Plumber()
pipeline.add_pipe((source, Piper(Worker(keep), name="fast")))
pipeline.add_pipe((source, Piper(Worker(slow), parallel=numap, name="slow")))


def make_inputs(paths):
    return [reads()]


def finish():
    return [f"largest lag {largest_lag}"]
