"""The README's Python examples run as written (in order, in a scratch folder)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

README = Path(__file__).parents[2] / "README.md"


@pytest.mark.slow
def test_the_readmes_python_blocks_run(tmp_path, monkeypatch):
    fences = re.findall(r"^( *)```python\n(.*?)^\1```", README.read_text(), flags=re.S | re.M)
    blocks = [textwrap.dedent(code) for _, code in fences]  # blocks inside lists are indented
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the examples write ./headgraph-db
    scope: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), scope)  # noqa: S102 - our own README
    rows = scope["store"].query("MATCH (r:Run) RETURN r.key AS run")
    assert rows == [{"run": "tiny-ioi-ioi-256"}]
