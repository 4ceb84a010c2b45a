"""A pipeline file that forgets to define `pipeline` (used by the CLI tests)."""

from papy.core import Piper, Plumber, Worker

plumber = Plumber()
plumber.add_piper(Piper(Worker(abs)))
