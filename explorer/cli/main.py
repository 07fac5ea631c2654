"""The ``headgraph`` group: every command, registered from its module."""

from __future__ import annotations

import click

from headgraph.explorer.cli import (
    ingest_commands,
    note_commands,
    query_commands,
    run_commands,
    verify_commands,
    view_commands,
)
from headgraph.explorer.cli.common import SETTINGS, Group


@click.group(cls=Group, context_settings=SETTINGS)
@click.version_option(package_name="headgraph")
def main() -> None:
    """headgraph: circuits of transformer attention heads by sparse attention decomposition."""


for _module in (
    ingest_commands,
    query_commands,
    run_commands,
    note_commands,
    view_commands,
    verify_commands,
):
    for _command in _module.COMMANDS:
        main.add_command(_command)

if __name__ == "__main__":
    main()
