"""``python -m headgraph``: the command line."""

from headgraph.explorer.cli import main

main()
