"""A pipeline file whose `pipeline` is not a Plumber (used by the CLI tests)."""

pipeline = ["step one", "step two"]
