"""The explorer end to end in a real headless Chromium (Debian's), driven by Playwright.

Skipped, with the reason, where Chromium or Playwright is missing; ``bash .ci/run``
installs both. The screenshot is kept in ``$HEADGRAPH_ARTIFACTS`` (default
``test-artifacts/``).
"""

import os
import shutil
import threading
from pathlib import Path

import pytest

from headgraph.explorer.web.figures import render_circuit
from headgraph.explorer.web.server import Explorer, make_server
from headgraph.ingest.jobs.ingest_job import ingest
from headgraph.ingest.jobs.trace_job import default_seeds, task_prompts
from headgraph.ingest.model import load_model
from headgraph.queries.circuit import circuit, edge_detail
from headgraph.queries.paths import paths
from headgraph.queries.store import open_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [  # the machine's network is closed: no background connections
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(os.environ.get("HEADGRAPH_ARTIFACTS", "test-artifacts"))

playwright = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]'")
if CHROMIUM is None:
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    model = load_model("tiny-ioi")
    store = open_store(str(tmp_path_factory.mktemp("web")))
    ingest(
        model, task_prompts(model, 48, seed=4), store=store, run="web", seeds=default_seeds(model)
    )
    yield store
    store.close()


@pytest.fixture(scope="module")
def url(store):
    server = make_server(Explorer(store), port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, url):
    page = browser.new_page(viewport={"width": 1500, "height": 950})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    yield page
    assert not errors, errors
    page.close()


def drawn(page):
    nodes = page.eval_on_selector_all("g.node", "els => els.map(e => e.dataset.id)")
    edges = page.eval_on_selector_all(
        "path.edge", "els => els.map(e => [e.dataset.source, e.dataset.target, e.dataset.side])"
    )
    return sorted(nodes), sorted(map(tuple, edges))


def test_the_page_draws_the_run_circuit(page, store):
    expected = circuit(store, top=60)
    nodes, edges = drawn(page)
    assert nodes == sorted(n.id for n in expected.nodes)
    assert edges == sorted((e.source, e.target, e.side) for e in expected.edges)
    assert page.text_content("#run") == "run web"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer.png"), full_page=True)


def test_clicking_an_edge_shows_its_singular_vectors(page, store):
    strongest = circuit(store, top=60).edges[0]
    selector = (
        f'path.edge[data-source="{strongest.source}"][data-target="{strongest.target}"]'
        f'[data-side="{strongest.side}"]'
    )
    page.dispatch_event(selector, "click")  # a thin curve: click the element itself
    page.wait_for_selector("#panel table.svs")
    shown = page.eval_on_selector_all(
        "#panel table.svs td.sv", "els => els.map(e => e.textContent)"
    )
    detail = edge_detail(
        store, source=strongest.source, target=strongest.target, side=strongest.side
    )
    assert shown == [str(k) for k, _, _ in detail.singular_vectors]
    assert "causal effect: not measured" in page.text_content("#panel")


def test_path_search_highlights_the_routes(page, store):
    page.fill("#path-to", "1.0")
    page.click("#path-go")
    page.wait_for_selector("#routes li")
    expected = paths(store, to="1.0", top=5)
    assert page.eval_on_selector_all("#routes li", "els => els.length") == len(expected.routes)
    lit = page.eval_on_selector_all(
        "path.edge.on-path", "els => els.map(e => [e.dataset.source, e.dataset.target])"
    )
    hops = {(f"{h.upstream}@{h.role}", h.downstream) for r in expected.routes for h in r.hops}
    assert lit and {tuple(e) for e in lit} <= hops
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-paths.png"), full_page=True)


def test_clicking_a_head_lists_its_features_and_tokens(page):
    page.click('g.node[data-id="1.0@END"]')
    page.wait_for_selector("#panel table.features")
    text = page.text_content("#panel table.features")
    assert "sigma" in text and any(name in text for name in ("John", "Mary", "David", "Joseph"))


def test_thresholds_and_the_prompt_picker_redraw_live(page, store):
    page.fill("#min-prompts", "10")
    page.dispatch_event("#min-prompts", "change")
    page.wait_for_function("document.getElementById('status').textContent.includes('edges')")
    expected = circuit(store, top=60, min_prompts=10)
    page.wait_for_function(
        f"document.querySelectorAll('path.edge').length === {len(expected.edges)}"
    )
    page.fill("#min-prompts", "1")
    page.fill("#min-relevance", "0.02")
    page.dispatch_event("#min-relevance", "change")
    relevant = circuit(store, top=60, min_relevance=0.02)
    assert 0 < len(relevant.edges) < 60
    page.wait_for_function(
        f"document.querySelectorAll('path.edge').length === {len(relevant.edges)}"
    )
    page.fill("#min-relevance", "0")
    prompt = store.query("MATCH ()-[s:SIGNAL]->(f:Firing) RETURN f.prompt AS p LIMIT 1")[0]["p"]
    page.select_option("#prompt", prompt)
    one = circuit(store, top=60, prompt=prompt)
    assert one.edges
    page.wait_for_function(f"document.querySelectorAll('path.edge').length === {len(one.edges)}")
    assert drawn(page)[1] == sorted((e.source, e.target, e.side) for e in one.edges)
    labels = page.eval_on_selector_all("text.role", "els => els.map(e => e.textContent)")
    assert any(label.startswith("END · ") for label in labels), labels  # the prompt's own words


def test_edge_width_follows_relevance_prompts_or_mean_share(page, store):
    def widths():
        return page.eval_on_selector_all(
            "path.edge", "els => els.map(e => parseFloat(e.getAttribute('stroke-width')))"
        )

    expected = circuit(store, top=60).edges
    most = max(e.relevance for e in expected)
    assert widths() == pytest.approx([1 + 7 * e.relevance / most for e in expected])
    assert page.text_content("#width-legend") == "width: relevance"
    page.select_option("#width", "prompts")
    most = max(e.prompts for e in expected)
    assert widths() == pytest.approx([1 + 7 * e.prompts / most for e in expected])
    page.select_option("#width", "mean_share")
    most = max(e.mean_share for e in expected)
    assert widths() == pytest.approx([1 + 7 * e.mean_share / most for e in expected])
    assert page.text_content("#width-legend") == "width: mean share"


def test_the_substitutes_overlay_colours_a_group(page):
    page.click('g.node[data-id="1.0@END"]')
    page.click("#substitutes")
    page.wait_for_function("document.getElementById('status').textContent.includes('substitute')")
    assert page.eval_on_selector_all("g.node.substitute", "els => els.length") >= 2


def test_a_rendered_html_file_works_without_a_server(browser, store, tmp_path):
    out = tmp_path / "circuit.html"
    expected = circuit(store, top=60)
    render_circuit(expected, out)
    page = browser.new_page()
    page.goto(out.as_uri())
    page.wait_for_selector("body[data-ready='1']")
    nodes, edges = drawn(page)
    assert nodes == sorted(n.id for n in expected.nodes) and len(edges) == len(expected.edges)
    page.close()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """A store with two runs of tiny-ioi on different prompts, served with the second shown."""
    model = load_model("tiny-ioi")
    store = open_store(str(tmp_path_factory.mktemp("two")))
    for name, seed in (("first", 4), ("second", 9)):
        ingest(model, task_prompts(model, 32, seed=seed), store=store, run=name,
               seeds=default_seeds(model))  # fmt: skip
    server = make_server(Explorer(store, "second"), port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield store, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()
    store.close()


def test_comparing_with_another_run_colours_each_edge_by_its_change(browser, two_runs):
    from headgraph.queries.diff import diff

    store, url = two_runs
    page = browser.new_page(viewport={"width": 1500, "height": 950})
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']")
    page.select_option("#against", "first")
    page.wait_for_selector("#diff-counts")
    expected = {
        (e.source, e.target, e.side): e.status for e in diff(store, "first", "second").edges
    }
    shown = page.eval_on_selector_all(
        "path.edge",
        "els => els.map(e => [e.dataset.source, e.dataset.target, e.dataset.side, "
        "['gained', 'changed', 'same'].find(s => e.classList.contains('diff-' + s))])",
    )
    assert shown and all(expected[(s, t, side)] == status for s, t, side, status in shown)
    lost = sum(status == "lost" for status in expected.values())
    assert page.locator("table.lost tr").count() == (lost + 1 if lost else 0)  # with its header
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explorer-diff.png"), full_page=True)
    page.select_option("#against", "")
    assert page.locator("path.edge.diff-gained, path.edge.diff-changed").count() == 0
    page.close()


def test_labels_are_edited_in_the_page_only_in_write_mode_with_its_token(browser, tmp_path):
    import json
    import urllib.error
    import urllib.request

    from headgraph.queries.notes import label_texts

    folder = tmp_path / "db"
    model = load_model("tiny-ioi")
    with open_store(folder) as writer:
        ingest(model, task_prompts(model, 24, seed=4), store=writer, run="labels",
               seeds=default_seeds(model))  # fmt: skip
    reader = open_store(folder, read_only=True)
    app = Explorer(reader, label_writer=lambda: open_store(folder, create=False))
    server = make_server(app, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        page.goto(base + "/")
        page.wait_for_selector("body[data-ready='1']")
        page.click('g.node[data-id="1.0@END"]')
        page.fill("#label-text", "name mover")
        page.click("#label-save")
        page.wait_for_function("document.getElementById('label').textContent.includes('mover')")
        assert label_texts(reader, app.model_name)["1.0"] == "name mover"  # in the store
        assert "labelled" in page.get_attribute('g.node[data-id="1.0@END"]', "class")
        page.close()
        forged = urllib.request.Request(  # no token: what another site's page could send
            base + "/api/label", data=json.dumps({"target": "1.0", "text": "x"}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(forged)
        assert refused.value.code == 403
        assert label_texts(reader, app.model_name)["1.0"] == "name mover"
    finally:
        server.shutdown()
        server.server_close()
        reader.close()


def test_a_run_seeded_from_the_prediction_draws_the_logits_on_top(browser, tmp_path):
    from headgraph.ingest.core.params import TraceParams

    model = load_model("tiny-ioi")
    with open_store(str(tmp_path / "db")) as store:
        ingest(model, task_prompts(model, 32, seed=5), store=store, run="seeded", seeds=(),
               params=TraceParams(seeding="linear"))  # fmt: skip
        server = make_server(Explorer(store), port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
            page.wait_for_selector("body[data-ready='1']")
            nodes, edges = drawn(page)
            assert "logits@END" in nodes and any(side == "logit" for *_, side in edges)
            heights = page.eval_on_selector_all(
                "g.node", "els => els.map(e => [e.dataset.id, e.getBoundingClientRect().y])"
            )
            top = min(heights, key=lambda item: item[1])
            assert top[0] == "logits@END"  # drawn above every layer
            seed = next(e for e in edges if e[2] == "logit")
            page.dispatch_event(
                f'path.edge[data-source="{seed[0]}"][data-target="{seed[1]}"]'
                '[data-side="logit"]', "click",
            )  # fmt: skip
            page.wait_for_function("document.querySelector('#panel').textContent.length > 0")
            assert "prompts" in page.text_content("#panel")
            page.click('g.node[data-id="logits@END"]')
            assert "the prediction" in page.text_content("#panel")
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "explorer-logits.png"), full_page=True)
            assert not errors, errors
        finally:
            page.close()
            server.shutdown()
            server.server_close()
