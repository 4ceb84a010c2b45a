"""A pipeline file that raises while loading (used by the CLI tests)."""

import json

settings = json.loads("{not json")
