"""PaPy graph: DictGraph and DictNode."""
