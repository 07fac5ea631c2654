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
                ("/api/circuit?min_prompts=1e400", 400, "give a whole number from 1"),
                ("/api/circuit?top=-5", 400, "give a whole number from 1 to 10000"),
                ("/api/circuit?min_share=nan", 400, "give a number from 0 to 1"),
                ("/api/circuit?min_relevance=2", 400, "give a number from 0 to 1"),
                ("/api/paths?to=1.0&max_hops=2.5", 400, "give a whole number"),
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


def test_the_server_answers_only_its_own_address_and_drops_idle_connections(store, monkeypatch):
    import http.client
    import socket

    from headgraph.explorer.web import server as web

    monkeypatch.setattr(web, "IDLE_SECONDS", 1)
    with open_store(store, read_only=True) as opened:
        server = make_server(Explorer(opened), port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        try:
            for host, status in [(f"127.0.0.1:{port}", 200), (f"localhost:{port}", 200),
                                 (f"evil.example:{port}", 403), ("127.0.0.1:1", 403)]:  # fmt: skip
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                connection.request("GET", "/api/runs", headers={"Host": host})
                assert connection.getresponse().status == status, host
                connection.close()
            idle = socket.create_connection(("127.0.0.1", port))
            idle.settimeout(web.IDLE_SECONDS + 10)
            assert idle.recv(1) == b""  # the server closed the idle connection
            idle.close()
        finally:
            server.shutdown()
            server.server_close()


def test_explore_warns_when_serving_beyond_this_machine(store, monkeypatch):
    from headgraph.explorer.web import server as web

    monkeypatch.setattr(web._Server, "serve_forever", lambda self: None)
    result = run("explore", "--store", store, "--host", "0.0.0.0", "--port", "0")
    assert result.exit_code == 0, result.output
    assert "warning: --host 0.0.0.0 serves the run to every machine" in result.output
    quiet = run("explore", "--store", store, "--port", "0")
    assert "warning" not in quiet.output and "labels can be edited" not in quiet.output
    writable = run("explore", "--store", store, "--port", "0", "--allow-labels")
    assert "labels can be edited in the page" in writable.output


def test_render_and_the_server_draw_only_the_relevant_edges_when_asked(store, tmp_path):
    out = tmp_path / "relevant.svg"
    few = run("render", "--store", store, "--min-relevance", "0.05", "--out", str(out))
    every = run("render", "--store", store, "--out", str(tmp_path / "all.svg"))
    assert few.exit_code == every.exit_code == 0, few.output + every.output

    def edges(output):  # "run R: N components, M edges -> F"
        return int(output.split(" edges")[0].rsplit(" ", 1)[-1])

    assert 0 < edges(few.output) < edges(every.output)
    bad = run("render", "--store", store, "--min-relevance", "2", "--out", str(out))
    assert bad.exit_code == 2 and "--min-relevance" in bad.output
    with open_store(store, read_only=True) as opened:
        found = Explorer(opened).answer("/api/circuit", {"min_relevance": "0.05"})
    assert found["circuit"]["edges"] and all(
        e["relevance"] >= 0.05 for e in found["circuit"]["edges"]
    )
