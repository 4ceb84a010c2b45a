"""Download files over HTTP on a pool of threads and checksum them.

Run it with the ``papy`` command::

    papy run examples/http_checksums.py            # 200 generated files
    papy run examples/http_checksums.py a.bin b/   # files, or every file in a folder

The example starts its own HTTP server on 127.0.0.1 (a free port), which
answers each request after 20 ms, like a distant server. Fetching is
I/O-bound, so the ``fetch`` Piper runs on a NuMap of 8 threads: while one
thread waits for an answer the others send their requests. The result is
``http_checksums.tsv`` in the current directory (environment variable
HTTP_CHECKSUMS_OUTPUT to change it): url, size in bytes and SHA-256.

The pipeline::

    fetch (thread NuMap) ──> checksum ──> write_tsv
"""

import hashlib
import os
import random
import urllib.request
from pathlib import Path

from local_http import FileServer
from numap import NuMap
from papy.core import Piper, Plumber, Worker

OUTPUT = Path(os.environ.get("HTTP_CHECKSUMS_OUTPUT", "http_checksums.tsv"))
DEMO_FOLDER = Path("http_checksums_demo")


def fetch(inbox, timeout=30.0):
    """Download one URL; returns (url, body bytes)."""
    url = inbox[0]
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return url, response.read()


def checksum(inbox):
    """(url, body) -> a TSV line: url, size, sha256."""
    url, body = inbox[0]
    return f"{url}\t{len(body)}\t{hashlib.sha256(body).hexdigest()}"


class Output:
    """The TSV file; written by a linear Piper in this process."""

    def __init__(self):
        self.path = None
        self.rows = 0
        self.handle = None

    def open(self, path):
        self.path = Path(path).resolve()
        self.handle = self.path.open("w", encoding="utf-8")
        self.handle.write("url\tsize\tsha256\n")
        self.rows = 0

    def write(self, inbox):
        self.handle.write(inbox[0] + "\n")
        self.rows += 1
        return inbox[0]

    def close(self):
        if self.handle is not None:
            self.handle.close()
            self.handle = None


def write_demo_files(folder, count=200, seed=7):
    """``count`` files of 4 to 64 KiB of reproducible random bytes."""
    folder.mkdir(exist_ok=True)
    rng = random.Random(seed)
    paths = []
    for number in range(count):
        path = folder / f"blob{number:04d}.bin"
        path.write_bytes(rng.randbytes(rng.randint(4096, 65536)))
        paths.append(path)
    return paths


def files_of(paths):
    """The INPUT files, with folders replaced by the files in them (sorted)."""
    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(child for child in path.iterdir() if child.is_file())
        else:
            files.append(path)
    return files


io_threads = NuMap(worker_type="thread", worker_num=8, name="io")
output = Output()

fetcher = Piper(Worker(fetch), parallel=io_threads, name="fetch")
summer = Piper(Worker(checksum), name="checksum")
writer = Piper(Worker(output.write), name="write_tsv")

pipeline = Plumber()
pipeline.add_pipe((fetcher, summer, writer))

server = None


def make_inputs(paths):
    """Serve the files on 127.0.0.1 and return their URLs as the one input."""
    global server
    files = files_of(paths) if paths else write_demo_files(DEMO_FOLDER)
    server = FileServer(files)
    urls = server.start()
    output.open(OUTPUT)
    return [urls]


def finish():
    """Stop the server, close the TSV and say where it is."""
    if server is not None:
        server.stop()
    output.close()
    if output.path is None:
        return []
    return [f"{output.rows} checksums written to {output.path}"]
