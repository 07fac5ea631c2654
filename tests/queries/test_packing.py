"""The route index's long values: compressed where shorter, older plain values read as before."""

import base64
import os

import numpy as np
import pytest

from headgraph.queries import packing
from headgraph.queries.packing import MARK, pack_bytes, pack_text, unpack_bytes, unpack_text
from headgraph.queries.store import StoreError


def test_bytes_are_compressed_where_that_is_shorter():
    offsets = np.cumsum(np.arange(5000) % 7).astype("<i4").tobytes()  # like a page's offsets
    packed = pack_bytes(offsets)
    assert packed.startswith(MARK) and len(packed) < len(base64.b64encode(offsets)) / 3
    assert unpack_bytes(packed) == offsets
    noise = os.urandom(4000)  # incompressible: left as plain base64
    assert pack_bytes(noise) == base64.b64encode(noise).decode()
    assert unpack_bytes(pack_bytes(noise)) == noise
    short = b"\x01\x02\x03"
    assert pack_bytes(short) == base64.b64encode(short).decode()


def test_texts_are_compressed_where_that_is_shorter_and_never_misread():
    long = "\n".join(f"~embed@#{i % 20}" for i in range(2000))
    assert pack_text(long).startswith(MARK) and unpack_text(pack_text(long)) == long
    assert pack_text("0.1@IO\n0.2@END") == "0.1@IO\n0.2@END"
    for tricky in ("z:", "z:abc", "z:" + "x" * 1000):  # plain text that looks packed
        assert pack_text(tricky).startswith(MARK) and unpack_text(pack_text(tricky)) == tricky


def test_values_an_older_headgraph_wrote_read_as_they_are():
    raw = np.arange(100, dtype="<f8").tobytes()
    assert unpack_bytes(base64.b64encode(raw).decode()) == raw
    assert unpack_text('[["key", 3, [["0.1", 4]], 5, 2]]') == '[["key", 3, [["0.1", 4]], 5, 2]]'


@pytest.mark.parametrize("damaged", ["z:AAAA", "z:not base64!"])
def test_a_damaged_value_names_the_fix(damaged):
    with pytest.raises(StoreError, match="headgraph index"):
        unpack_bytes(damaged)
    with pytest.raises(StoreError, match="headgraph index"):
        unpack_text(damaged)


@pytest.mark.parametrize("cpus", [1, 3])
def test_many_values_packed_on_threads_come_back_in_order(cpus, monkeypatch):
    monkeypatch.setattr(packing, "usable_workers", lambda: cpus)
    raws = [np.arange(i, i + 50 * (i % 9), dtype="<i4").tobytes() for i in range(500)]
    assert packing.pack_all(raws) == [pack_bytes(r) for r in raws]
    assert [unpack_bytes(t) for t in packing.pack_all(raws)] == raws
