"""Readers that survive writers: an open reader (the explorer, a notebook) keeps answering while
another process ingests into its store, fresh read-only opens succeed during an ingest, and a
killed writer's unfinished log does not lock readers out."""

from __future__ import annotations

import subprocess
import sys

import pytest

import headgraph as hg
from headgraph.explorer.web.server import Explorer
from headgraph.queries.store import open_store


@pytest.fixture
def store_folder(tmp_path):
    folder = tmp_path / "db"
    hg.ingest("tiny-ioi", n_prompts=16, store=folder, run="first")
    return folder


@pytest.mark.slow
def test_an_open_reader_keeps_answering_while_another_process_ingests(store_folder):
    reader = open_store(store_folder, read_only=True)
    app = Explorer(reader, "first")
    writer = subprocess.Popen(
        [sys.executable, "-m", "headgraph", "ingest", "--store", str(store_folder),
         "--prompts", "48", "--batch-size", "4", "--run", "second"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    answers = opens = 0
    while writer.poll() is None:
        assert {r["run"] for r in reader.runs()} >= {"first"}
        assert hg.paths(reader, to="1.0", run="first", top=2).routes
        assert app.answer("/api/runs", {})["run"] == "first"
        with open_store(store_folder, read_only=True) as fresh:  # a new reader, mid-ingest
            fresh.runs()
        answers, opens = answers + 3, opens + 1
    assert writer.returncode == 0, writer.stderr.read()
    assert answers >= 6 and opens >= 2  # the reads really overlapped the ingest
    assert {r["run"] for r in reader.runs()} == {"first", "second"}  # and see its result
    assert hg.open_run(reader, "second").to_pandas().shape[0] > 0
    reader.close()


CHECKPOINTING = """
import os, sys, ladybug, pandas as pd
conn = ladybug.Connection(ladybug.Database(sys.argv[1], read_only=False))
conn.execute("CREATE NODE TABLE IF NOT EXISTS Filler(k STRING PRIMARY KEY, v STRING)")
for r in range(200):
    keys = [f"{os.getpid()}-{r}-{i}" for i in range(20000)]
    frame = pd.DataFrame({"k": keys, "v": ["x" * 50] * 20000})
    conn.execute("COPY Filler FROM frame")
    conn.execute("CHECKPOINT")
    print(r, flush=True)
"""


def _read_only_open_fails(database) -> bool:
    import ladybug

    try:
        ladybug.Database(str(database), read_only=True).close()
    except RuntimeError as error:
        return "recovery" in str(error)
    return False


@pytest.mark.slow
def test_a_writer_killed_mid_checkpoint_does_not_lock_readers_out(store_folder):
    import time

    database = store_folder / "graph.lbug"
    for attempt in range(40):  # kill it at different moments until one lands in a checkpoint
        writer = subprocess.Popen(
            [sys.executable, "-c", CHECKPOINTING, str(database)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        writer.stdout.readline()
        time.sleep(0.03 * (attempt % 12))
        writer.kill()
        writer.wait()
        if _read_only_open_fails(database):
            break
    else:
        pytest.skip("no kill landed inside a checkpoint in 40 tries")
    with open_store(store_folder, read_only=True) as reader:  # recovers, then reads
        assert {r["run"] for r in reader.runs()} == {"first"}


LEAVE_A_LOG = """
import os, sys, ladybug
db = ladybug.Database(sys.argv[1], read_only=False)
conn = ladybug.Connection(db)
conn.execute("CREATE (:Run {key: 'left-by-a-crash', status: 'running'})")
os._exit(0)  # killed: no checkpoint, no close
"""


def test_a_killed_writers_log_is_recovered_by_the_next_reader(store_folder):
    database = store_folder / "graph.lbug"
    subprocess.run([sys.executable, "-c", LEAVE_A_LOG, str(database)], check=True)
    log = database.with_name("graph.lbug.wal")
    assert log.exists() and log.stat().st_size > 0  # the unfinished write is there
    with open_store(store_folder, read_only=True) as reader:
        runs = {r["run"] for r in reader.runs()}
    assert runs == {"first", "left-by-a-crash"}
