"""The install provides one import namespace, ``headgraph``, and a notebook API from it."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

import headgraph


def _run(code: str) -> subprocess.CompletedProcess:
    """Python in a fresh process, from / (so the checkout itself is not on the path)."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd="/", capture_output=True, text=True, check=False
    )


def test_the_install_provides_headgraph_and_no_top_level_ingest_queries_or_explorer():
    probe = _run(
        "import importlib.util as u, headgraph.ingest, headgraph.queries, headgraph.explorer\n"
        "print([u.find_spec(n) is None for n in ('ingest', 'queries', 'explorer')])"
    )
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.strip() == "[True, True, True]"


def test_a_users_own_ingest_module_does_not_shadow_ours(tmp_path):
    (tmp_path / "ingest.py").write_text("raise SystemExit('the user module was imported')\n")
    (tmp_path / "queries.py").write_text("raise SystemExit('the user module was imported')\n")
    probe = subprocess.run(
        [sys.executable, "-c", "import headgraph.ingest.core.trace, headgraph.queries.paths"],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr + probe.stdout


def _heavy_modules_after(imports: str) -> list[str]:
    """Which of torch and TransformerLens a fresh process holds after ``imports``."""
    probe = _run(f"import json, sys\n{imports}\nprint(json.dumps([m for m in "
                 "('torch', 'transformer_lens') if m in sys.modules]))")  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout)


def test_importing_headgraph_loads_neither_torch_nor_transformer_lens():
    imports = "import headgraph\nfrom headgraph import paths, open_store, Head, HeadgraphError"
    assert _heavy_modules_after(imports) == []


def test_the_command_line_loads_neither_torch_nor_transformer_lens_to_answer():
    """``headgraph --help`` and a bad argument answer in well under a second."""
    assert _heavy_modules_after("from headgraph.explorer.cli.main import main") == []


def test_every_public_name_resolves():
    for name in headgraph.__all__:
        assert getattr(headgraph, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        headgraph.nope  # noqa: B018


def test_ingest_is_the_subpackage_and_the_function():
    ingest = headgraph.ingest
    assert callable(ingest)
    assert importlib.util.find_spec("headgraph.ingest.core.trace") is not None
    import headgraph.ingest.core.trace as trace_module  # binding the subpackage changes nothing

    assert headgraph.ingest is ingest and trace_module.SIDES[:2] == ("query", "key")


def test_every_error_a_user_can_fix_is_a_headgraph_error():
    from headgraph import HeadgraphError, InputError, ModelError, QueryError, StoreError

    for error in (InputError, ModelError, QueryError, StoreError):
        assert issubclass(error, HeadgraphError)
    assert issubclass(InputError, ValueError) and issubclass(StoreError, RuntimeError)


@pytest.mark.slow
def test_the_wheel_holds_headgraph_alone_with_its_data(tmp_path):
    import zipfile
    from pathlib import Path

    root = Path(__file__).parents[2]
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(root)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    (wheel,) = tmp_path.glob("headgraph-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {n.split("/")[0] for n in names} == {
        "headgraph",
        wheel.name.split("-py")[0] + ".dist-info",
    }
    for data in ("ingest/tiny_ioi/models/tiny-ioi.pt", "explorer/web/static/app.js",
                 "queries/references/tiny-ioi.json"):  # fmt: skip
        assert f"headgraph/{data}" in names
