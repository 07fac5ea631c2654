"""render, plot and the explorer's server, without a browser."""

import json
import threading
import urllib.error
import urllib.request

import pytest

from headgraph.explorer.web.server import Explorer, make_server
from headgraph.queries.store import open_store
from tests.explorer.commands import ingested, run


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ingested(tmp_path_factory, "--prompts", "32")


@pytest.mark.parametrize("suffix", [".svg", ".png", ".html"])
def test_render_writes_each_format(store, tmp_path, suffix):
    out = tmp_path / f"circuit{suffix}"
    result = run("render", "--store", store, "--min-prompts", "3", "--out", str(out))
    assert result.exit_code == 0, result.output
    head = out.read_bytes()[:200]
    assert {".svg": b"<svg", ".png": b"\x89PNG", ".html": b"<!doctype html>"}[suffix] in head
    if suffix == ".html":
        text = out.read_text()
        assert "window.HEADGRAPH_STATIC" in text and 'src="app.js"' not in text


def test_render_refuses_bad_requests(store, tmp_path):
    bad = run("render", "--store", store, "--out", str(tmp_path / "c.gif"))
    assert bad.exit_code == 2 and ".svg, .png or .html" in bad.output
    empty = run(
        "render", "--store", store, "--min-prompts", "100000", "--out", str(tmp_path / "c.svg")
    )
    assert empty.exit_code == 1 and "lower them" in empty.output
    assert not (tmp_path / "c.svg").exists()


@pytest.mark.parametrize("what", ["sv-counts", "sv-usage"])
def test_plot_draws_the_papers_figures(store, tmp_path, what):
    out = tmp_path / f"{what}.png"
    result = run("plot", "--store", store, "--what", what, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    unknown = run("plot", "--store", store, "--what", what, "--heads", "7.0", "--out", str(out))
    assert unknown.exit_code == 1 and "does not exist" in unknown.output


def test_the_server_answers_json_read_only(store):
    with open_store(store, read_only=True) as opened:
        server = make_server(Explorer(opened), port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            page = urllib.request.urlopen(base + "/").read().decode()
            assert '<script src="app.js">' in page
            assert b"function draw" in urllib.request.urlopen(base + "/app.js").read()
            data = json.loads(urllib.request.urlopen(base + "/api/circuit?top=5").read())
            assert len(data["circuit"]["edges"]) == 5 and data["layout"]["positions"]
            for path, status, message in [
                ("/api/paths?to=9.0", 400, "does not exist"),
                ("/api/circuit?top=x", 400, "not a number"),
                ("/api/nothing", 400, "no such API path"),
                ("/secret", 404, "no page"),
            ]:
                with pytest.raises(urllib.error.HTTPError) as error:
                    urllib.request.urlopen(base + path)
                assert error.value.code == status
                assert message in json.loads(error.value.read())["error"]
            request = urllib.request.Request(base + "/api/runs", data=b"{}", method="POST")
            with pytest.raises(urllib.error.HTTPError) as error:
                urllib.request.urlopen(request)
            assert error.value.code == 405
            assert server.server_address[0] == "127.0.0.1"
        finally:
            server.shutdown()
            server.server_close()
