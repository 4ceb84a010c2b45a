"""Where NuMap's time goes on small items: `python bench/run.py --diagnose`.

Measures, in fresh processes, the parent-side cost of handing out one
result that is already waiting in the map (NuMap with a buffer that holds
the whole input, against Pool.imap with a chunksize), so that the cost of
`next` is seen apart from the workers and the pipes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

N = 100_000
SETTLE_SECONDS = 3.0

_NUMAP = f"""
import time, _workloads as w
from numap import NuMap
numap = NuMap(worker_type="process", worker_num=2, stride=2048, buffer={N})
results = numap.add_task(w.double, range({N}))
numap.start()
time.sleep({SETTLE_SECONDS})
start = time.perf_counter()
count = sum(1 for _ in results)
elapsed = time.perf_counter() - start
numap.stop(ends=[0])
print(f"NuMap.next, stride 2048: {{elapsed / count * 1e6:.2f}} us/result")
"""

_POOL = f"""
import time, multiprocessing, _workloads as w
pool = multiprocessing.Pool(2)
results = pool.imap(w.double, range({N}), 1024)
time.sleep({SETTLE_SECONDS})
start = time.perf_counter()
count = sum(1 for _ in results)
elapsed = time.perf_counter() - start
pool.terminate()
print(f"Pool.imap, chunksize 1024: {{elapsed / count * 1e6:.2f}} us/result")
"""


def main() -> None:
    here = __file__.rsplit("/", 1)[0]
    for source in (_NUMAP, _POOL):
        out = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(source)],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=120,
        )
        print(out.stdout.strip() or out.stderr.strip().splitlines()[-1])
