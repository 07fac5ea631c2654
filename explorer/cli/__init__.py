"""The ``headgraph`` command line: one click group, commands grouped by what they do."""

from headgraph.explorer.cli.main import main

__all__ = ["main"]
