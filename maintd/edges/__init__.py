"""The edges: the only modules that import an outside library or run an outside program."""
