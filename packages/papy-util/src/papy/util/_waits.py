"""How long a wait that the main thread may make sleeps at a time.

Linux delivers a signal sent to the process (Ctrl-C, ``kill -INT``) to any
one of its threads that does not block it, not necessarily the main one.
CPython's C handler then only records the signal; the Python handler (the
one raising KeyboardInterrupt) runs in the main thread the next time that
thread executes Python code. A main thread blocked in a long wait (for a
script, a socket, a FIFO) is not woken by a signal another thread
received, so the process would ignore the Ctrl-C until the wait ends.

So such waits sleep at most ``WAKE_INTERVAL`` seconds at a time and go on
waiting afterwards, running any pending signal handler in between.
"""

from __future__ import annotations

# Longest time, in seconds, such a wait sleeps before running Python code.
WAKE_INTERVAL = 0.1
