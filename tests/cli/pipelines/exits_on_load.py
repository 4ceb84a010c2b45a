"""A pipeline file that calls sys.exit(0) while loading (used by the CLI
tests): papy must not take that for the end of the command."""

import sys

sys.exit(0)
