"""Sharded ingest on a local Ray cluster: the same graph as one process, through worker and
driver deaths."""

import logging
import os
import signal
import subprocess
import sys
import time

import pytest

from headgraph.errors import InputError, ModelError
from headgraph.ingest.core.records import parse_seeds
from headgraph.ingest.jobs.batches import runs_of
from headgraph.ingest.jobs.ingest_job import ingest
from headgraph.ingest.jobs.shards import plan_shards
from headgraph.ingest.jobs.trace_job import default_seeds, task_prompts
from headgraph.ingest.model import load_model
from headgraph.queries.store import StoreError, open_store
from tests.conftest import small_model
from tests.queries.test_store import signature


def test_shards_are_even_stretches_of_consecutive_batches():
    assert plan_shards(range(5), 2) == [[0, 1, 2], [3, 4]]
    assert plan_shards([7, 2, 3], 5) == [[2], [3], [7]]  # no empty shard
    assert plan_shards([], 3) == []
    plan = plan_shards(range(23), 4)
    assert [len(s) for s in plan] == [6, 6, 6, 5] and sum(plan, []) == list(range(23))


def test_batches_group_into_runs_of_consecutive_ids():
    assert runs_of([4, 0, 1, 6, 5]) == [[0, 1], [4, 5, 6]]
    assert runs_of([]) == []


def same_graph(a: dict, b: dict) -> None:
    """Two runs' signatures agree: every key and count exactly, weights to float32 rounding
    (a worker sums with other threads than the driver)."""
    assert a["firings"] == b["firings"] and a["prompts"] == b["prompts"]
    assert a["carries"] == b["carries"]
    assert len(a["signals"]) == len(b["signals"])
    for x, y in zip(a["signals"], b["signals"], strict=True):
        assert (x["ak"], x["bk"], x["side"]) == (y["ak"], y["bk"], y["side"])
        assert x["w"] == pytest.approx(y["w"], rel=1e-5, abs=1e-6)
    run_a, run_b = dict(a["run"]), dict(b["run"])
    assert sorted(run_a.pop("done_batches")) == sorted(run_b.pop("done_batches"))
    assert run_a == run_b


@pytest.fixture(scope="module")
def tiny():
    model = load_model("tiny-ioi")
    return model, task_prompts(model, 128, seed=3)


@pytest.fixture(scope="module")
def single(tiny, tmp_path_factory):
    """The run ingested by one process, as the reference."""
    model, prompts = tiny
    with open_store(tmp_path_factory.mktemp("single")) as store:
        ingest(model, prompts, store=store, run="r", seeds=default_seeds(model), batch_size=8)
        return signature(store, "r")


@pytest.mark.slow
def test_a_sharded_run_survives_a_killed_worker_and_equals_one_process(
    tiny, single, local_ray, tmp_path, caplog
):
    model, prompts = tiny
    killed = []

    def kill_a_shard_once(n_prompts, edges):  # the driver got a batch: both shards are busy
        if not killed:
            killed.append(kill_worker())

    with caplog.at_level(logging.WARNING, "headgraph.ingest"), open_store(tmp_path) as store:
        result = ingest(model, prompts, store=store, run="r", seeds=default_seeds(model),
                        batch_size=8, shards=2, progress=kill_a_shard_once)  # fmt: skip
        assert killed == [True], "no shard was running to kill"
        assert "lost its worker" in caplog.text  # and was traced again
        assert result.batches == 16 and result.resumed == 0
        same_graph(single, signature(store, "r"))


def kill_worker() -> bool:
    """SIGKILL one Ray worker process that is tracing a shard."""
    import psutil

    for process in psutil.process_iter(["cmdline"]):
        if any("_trace_shard" in part for part in process.info["cmdline"] or ()):
            process.send_signal(signal.SIGKILL)
            return True
    return False


@pytest.mark.slow
def test_a_killed_driver_is_resumed_per_shard_by_the_same_command(single, local_ray, tmp_path):
    """The CLI, on the test's Ray cluster, killed once batches are done; rerun, it ends with
    the run one process writes."""
    store = tmp_path / "store"
    command = [sys.executable, "-m", "headgraph", "ingest", "--prompts", "128", "--prompt-seed",
               "3", "--seed-from", "heads", "--batch-size", "8", "--run", "r", "--shards", "2",
               "--ray-address", "auto",
               "--store", str(store)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, done = time.monotonic() + 600, []  # two batches can take minutes under load
    while time.monotonic() < deadline and len(done) < 2 and process.poll() is None:
        time.sleep(0.1)
        try:
            with open_store(store, read_only=True) as reader:
                done = (reader.run_info("r") or {}).get("done_batches") or []
        except (StoreError, RuntimeError):  # not created yet, or being written
            continue
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 2 <= len(done) < 16, "the kill must land mid-run"

    again = subprocess.run(command, capture_output=True, text=True, check=True)
    assert f"({len(done)} of 16 batches already done)" in again.stdout
    with open_store(store, read_only=True) as reader:
        same_graph(single, signature(reader, "r"))


@pytest.mark.slow
def test_a_model_built_in_python_travels_to_the_workers(local_ray, tmp_path):
    model = small_model()
    assert model.source is None
    prompts = task_prompts(model, 32, seed=1)
    seeds = parse_seeds("2.*", "END:*", n_heads=model.n_heads)
    signatures = []
    for shards in (1, 2):
        with open_store(tmp_path / str(shards)) as store:
            ingest(model, prompts, store=store, run="r", seeds=seeds, batch_size=8, shards=shards)
            signatures.append(signature(store, "r"))
    same_graph(*signatures)


@pytest.mark.slow
def test_a_worker_that_loads_another_model_is_refused(local_ray, tmp_path):
    model = small_model()
    model.source = "tiny-ioi"  # what the workers will load: not these weights
    prompts = task_prompts(model, 16, seed=1)
    seeds = parse_seeds("2.*", "END:*", n_heads=model.n_heads)
    with open_store(tmp_path) as store, pytest.raises(ModelError, match="the same model"):
        ingest(model, prompts, store=store, run="r", seeds=seeds, batch_size=8, shards=2)


def test_bad_shard_counts_are_refused_before_anything_is_written(tiny, tmp_path):
    model, prompts = tiny
    for shards in (0, -1, 1.5):
        with pytest.raises(InputError, match="shards must be"):
            ingest(model, prompts, store=None, run="r", seeds=default_seeds(model),  # type: ignore[arg-type]
                   shards=shards)  # fmt: skip


def test_without_ray_the_cli_says_what_to_install(tmp_path):
    probe = (
        "import sys; sys.modules['ray'] = None\n"  # as if it were not installed
        "from headgraph.explorer.cli import main\n"
        "main(['ingest', '--shards', '2', '--store', sys.argv[1]])"
    )
    done = subprocess.run([sys.executable, "-c", probe, str(tmp_path / "s")], capture_output=True,
                          text=True)  # fmt: skip
    assert done.returncode == 2 and "pip install 'headgraph[ray]'" in done.stderr
    assert not (tmp_path / "s").exists()
