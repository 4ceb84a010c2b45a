"""PaPy utilities."""
