"""Bad input, a full disk or a read-only folder: one line that says what is wrong, exit status
1 or 2, no traceback, and no store created or changed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.explorer.commands import run


def one_line_error(result) -> str:
    assert result.exit_code in (1, 2), result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def _config_folder(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text(text)
    return folder


CASES = {
    "a config that is a list": (
        lambda d: ["--model", str(_config_folder(d, "m", "[1, 2]"))], "expected a JSON object"
    ),
    "a corrupt config": (
        lambda d: ["--model", str(_config_folder(d, "m", '{"model_type": "gpt2",\n'))],
        "not valid JSON (line 2",
    ),
    "no heads": (
        lambda d: ["--model", str(_config_folder(d, "m", json.dumps(
            {"model_type": "gpt2", "n_head": 0, "n_embd": 64})))],
        "n_head (heads) must be a positive integer, got 0",
    ),
    "a truncated checkpoint": (
        lambda d: ["--model", str(_truncated(d))], "not a readable tiny-ioi checkpoint"
    ),
    "deeply nested JSON": (
        lambda d: ["--prompts-file", str(_file(d, '{"id": "a", "roles": ' + "[" * 5000
                                               + "]" * 5000 + "}\n"))],
        "line 1: JSON nested too deeply",
    ),
    "a prompts file that is not UTF-8": (
        lambda d: ["--prompts-file", str(_file(d, b"\n\xff\xfe{}\n"))],
        "line 2: not UTF-8 text",
    ),
    "a seed role the prompts lack": (
        lambda d: ["--seeds", "1.0", "--seed-roles", "END:XX"], "has no role 'XX'"
    ),
    "an empty run name": (lambda d: ["--run", " "], "--run: give a non-empty name"),
}  # fmt: skip


def _file(folder: Path, content) -> Path:
    path = folder / "prompts.jsonl"
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def _truncated(folder: Path) -> Path:
    from headgraph.ingest.tiny_ioi import CHECKPOINT

    path = folder / "cut.pt"
    path.write_bytes(CHECKPOINT.read_bytes()[:100_000])
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_ingest_refuses_in_one_line_and_creates_no_store(case, tmp_path):
    arguments, message = CASES[case]
    store = tmp_path / "db"
    result = run("ingest", "--prompts", "4", "--store", str(store), *arguments(tmp_path))
    assert message in one_line_error(result)
    assert not store.exists()


def test_a_store_address_that_is_a_file_is_refused(tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    for command in (["ingest", "--prompts", "4"], ["runs"], ["paths", "--to", "1.0"]):
        assert "is a file" in one_line_error(run(*command, "--store", str(file)))
    assert file.read_text() == "mine"


@pytest.fixture
def small_disk(tmp_path):
    """A 48 MB tmpfs (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({made.stderr.strip()}): run the tests as root")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_the_finished_run_stays(small_disk):
    store = small_disk / "db"
    assert run("ingest", "--prompts", "16", "--store", str(store), "--run", "small").exit_code == 0
    df = ["df", "-k", "--output=avail", str(small_disk)]
    free = int(subprocess.run(df, capture_output=True, text=True, check=True).stdout.split()[-1])
    filler = small_disk / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1k", f"count={max(free - 300, 0)}"],
                   capture_output=True, check=False)  # fmt: skip
    big = (
        "ingest",
        "--prompts",
        "512",
        "--store",
        str(store),
        "--run",
        "big",
        "--seed-from",
        "heads",
    )
    full = run(*big)  # the disk is sized for the paper's seeds, not the prediction's
    assert "the disk is full; free some space, then rerun" in one_line_error(full)
    filler.unlink()
    routes = run("paths", "--to", "1.0", "--run", "small", "--store", str(store))
    assert routes.exit_code == 0 and "routes into 1.0, run small" in routes.output
    again = run(*big)
    assert again.exit_code == 0, again.output  # space freed: the same command resumes


def test_a_read_only_folder_is_one_line(small_disk):
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    result = run("ingest", "--prompts", "4", "--store", str(small_disk / "db"))
    assert "Read-only file system" in one_line_error(result)
