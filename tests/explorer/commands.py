"""Running ``headgraph`` commands in the tests, and a store ingested through the CLI."""

from click.testing import CliRunner

from headgraph.explorer.cli.main import main


def run(*args):
    """The result of ``headgraph ARGS...`` (exit code and output)."""
    return CliRunner().invoke(main, list(args))


def ingested(tmp_path_factory, *args) -> str:
    """A new store folder holding ``headgraph ingest ARGS...`` (tiny-ioi by default)."""
    folder = tmp_path_factory.mktemp("cli") / "db"
    result = run("ingest", "--store", str(folder), *args)
    assert result.exit_code == 0, result.output
    return str(folder)
