"""A pipeline file with a module-level argument parser (used by the CLI
tests): it rejects papy's own command line, which ends in sys.exit(2)."""

import argparse

parser = argparse.ArgumentParser()
parser.add_argument("--size", type=int, default=3)
options = parser.parse_args()
