"""``headgraph explore``: a local, read-only web app over one store.

The page and its script are files of this package (``explorer/static``; no
CDN, the machine may be offline). The page asks the server for JSON, and the
server answers through the query layer only, from the store opened read-only,
one request at a time. It binds to 127.0.0.1 unless told otherwise, and
answers GET alone.

    /api/runs                               the runs
    /api/prompts                            the run's prompts (id, text)
    /api/circuit?min_prompts&min_share&min_relevance&top&prompt
                                            nodes, edges and their layout
    /api/edge?source&target&side            what one edge carries
    /api/component?node                     a component at a role: firings, features, tokens
    /api/paths?to&from&top&max_hops&side&role
    /api/redundancy?to&role
    /api/diff?against&min_prompts          this run against another: edges gained, lost...
    POST /api/label {target, text}         only with --allow-labels, and the page's token
"""

from __future__ import annotations

import json
import math
import secrets
import threading
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlparse

from headgraph.errors import HeadgraphError, QueryError
from headgraph.explorer.output import to_json
from headgraph.explorer.web.layout import layout

STATIC = Path(__file__).parent / "static"
IDLE_SECONDS = 20  # an idle connection is closed after this
MAX_CONNECTIONS = 64
FILES = {"/": "index.html", "/app.js": "app.js", "/app.css": "app.css"}
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css"}


def circuit_payload(circuit) -> dict:
    """A circuit and its layout, as the page reads them."""
    placed = layout(circuit)
    return {"circuit": json.loads(to_json(circuit)), "layout": asdict(placed)}


class Explorer:
    """The app's state: the store, the run and a lock. It never loads the model: the
    tokens it shows were stored at ingest.

    Args:
        store: The store, opened read-only.
        run: The run shown (default: the newest).
        label_writer: Opens the store for writing, for editing labels in the page
            (``headgraph explore --allow-labels``). None (the default): read-only.
    """

    def __init__(self, store, run: str | None = None, *, label_writer=None):
        from headgraph.queries.selection import resolve_run

        self.store = store
        ref = resolve_run(store, run)
        self.run, self.model_name = ref.key, ref.model
        self.lock = threading.Lock()
        self.label_writer = label_writer
        # Sent only to pages of this server (the Host check), echoed in a header that a
        # page of another site cannot set: a forged cross-site request cannot edit.
        self.token = secrets.token_urlsafe(16) if label_writer else None

    def edit_label(self, body: dict) -> dict:
        """Set (or, with an empty text, remove) a label from the page's request."""
        from headgraph.queries.notes import label_texts, remove_label, set_label

        if self.label_writer is None:
            raise QueryError("the explorer is read-only: start it with --allow-labels")
        target, text = str(body.get("target", "")), str(body.get("text", ""))
        with self.lock, self.label_writer() as store:
            if text.strip():
                set_label(store, target=target, text=text, run=self.run, author="explorer")
            else:
                remove_label(store, target=target, run=self.run)
            return {"labels": label_texts(store, self.model_name)}

    def answer(self, path: str, query: dict[str, str]):
        """The JSON for an API path (raises QueryError for a bad question)."""
        from headgraph.queries.circuit import circuit, component_detail, edge_detail
        from headgraph.queries.diff import diff
        from headgraph.queries.notes import label_texts
        from headgraph.queries.paths import paths
        from headgraph.queries.redundancy import redundancy

        s, run = self.store, self.run
        number = _numbers(query)
        with self.lock:
            if path == "/api/runs":
                return {"run": run, "runs": s.runs(), "token": self.token}
            if path == "/api/prompts":
                return s.query(
                    "MATCH (p:Prompt) WHERE p.run = $run RETURN p.id AS id, p.text AS text "
                    "ORDER BY p.batch, p.id LIMIT 2000",
                    {"run": run},
                )
            if path == "/api/circuit":
                found = circuit(
                    s,
                    run=run,
                    min_prompts=int(number("min_prompts", 1, 1, 10**9, whole=True)),
                    min_share=number("min_share", 0.0, 0.0, 1.0),
                    min_relevance=number("min_relevance", 0.0, 0.0, 1.0),
                    top=int(number("top", 60, 1, 10_000, whole=True)),
                    prompt=query.get("prompt") or None,
                )
                payload = circuit_payload(found)
                payload["labels"] = label_texts(s, self.model_name)
                if found.prompt is not None:
                    payload["words"] = self.words(found.prompt, found.roles)
                return payload
            if path == "/api/edge":
                return edge_detail(
                    s, run=run, source=query.get("source", ""), target=query.get("target", ""),
                    side=query.get("side", ""),
                )  # fmt: skip
            if path == "/api/component":
                detail = component_detail(s, run=run, node=query.get("node", ""))
                return {"detail": detail, "tokens": self.tokens(detail.features)}
            if path == "/api/paths":
                return paths(
                    s, run=run, to=query.get("to", ""), from_=query.get("from") or None,
                    top=int(number("top", 5, 1, 1000, whole=True)),
                    max_hops=int(number("max_hops", 4, 1, 12, whole=True)),
                    side=query.get("side", "any"), role=query.get("role") or None,
                )  # fmt: skip
            if path == "/api/diff":
                if not query.get("against"):
                    raise QueryError("name the run to compare with: /api/diff?against=RUN")
                return diff(
                    s, query["against"], run,
                    min_prompts=int(number("min_prompts", 1, 1, 10**9, whole=True)),
                )  # fmt: skip
            if path == "/api/redundancy":
                return redundancy(
                    s, run=run, to=query.get("to", ""), role=query.get("role") or None
                )
        raise QueryError(f"no such API path {path!r}")

    def words(self, prompt: str, roles) -> dict[str, str]:
        """A prompt's columns (roles, ``#k``) -> the token there, as stored at ingest."""
        from headgraph.queries.selection import stored_prompts

        found = stored_prompts(self.store, self.run, prompt=prompt)
        if not found or not found[0]["words"]:
            return {}
        words, where = found[0]["words"], found[0]["roles"]
        positions = {r: where.get(r, int(r[1:]) if r[1:].isdigit() else -1) for r in roles}
        return {r: words[i] for r, i in positions.items() if 0 <= i < len(words)}

    def tokens(self, features) -> dict:
        """Top vocabulary tokens per feature, as stored at ingest."""
        from headgraph.queries.features import feature_tokens

        words = feature_tokens(self.store, self.model_name, features)
        if words is None:
            return {"note": "this store predates stored tokens: re-ingest the run to see them"}
        return {"tokens": words}


def is_loopback(host: str) -> bool:
    """Whether a bind address is this machine only (127.0.0.0/8, ::1, localhost)."""
    return host == "localhost" or host.startswith("127.") or host in ("::1", "[::1]")


class _Server(ThreadingHTTPServer):
    """At most :data:`MAX_CONNECTIONS` connections at once; more are closed at once."""

    daemon_threads = True

    def __init__(self, address, handler):
        super().__init__(address, handler)
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address):
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


def make_server(app: Explorer, *, host: str = "127.0.0.1", port: int = 8765) -> ThreadingHTTPServer:
    """An HTTP server for the app (``port`` 0 picks a free one); call ``serve_forever``.

    It answers only requests whose ``Host`` names the address it serves (a page on
    another site cannot read the JSON by rebinding its DNS name to this machine),
    closes connections idle for :data:`IDLE_SECONDS`, and holds at most
    :data:`MAX_CONNECTIONS` at once.
    """

    class Handler(BaseHTTPRequestHandler):
        timeout = IDLE_SECONDS  # an idle connection is closed, not held forever

        def do_GET(self):  # noqa: N802 - the http.server name
            if not self._host_allowed():
                return self._json(403, {"error": "this server answers only its own address"})
            url = urlparse(self.path)
            if url.path in FILES:
                file = STATIC / FILES[url.path]
                return self._send(200, file.read_bytes(), TYPES[file.suffix])
            if not url.path.startswith("/api/"):
                return self._json(404, {"error": f"no page {url.path}"})
            query = {k: v[-1] for k, v in parse_qs(url.query).items()}
            try:
                return self._json(200, app.answer(url.path, query))
            except HeadgraphError as error:  # what the user asked wrongly; anything else: 500
                return self._json(400, {"error": str(error)})
            except Exception as error:  # noqa: BLE001 - the page shows it; the server goes on
                return self._json(500, {"error": f"{type(error).__name__}: {error}"})

        def do_POST(self):  # noqa: N802
            if urlparse(self.path).path != "/api/label" or app.token is None:
                return self._json(405, {"error": "the explorer is read-only"})
            if not self._host_allowed() or self.headers.get("X-Headgraph-Token") != app.token:
                return self._json(403, {"error": "not a request from this explorer's page"})
            try:
                length = min(int(self.headers.get("Content-Length", 0)), 64_000)
                body = json.loads(self.rfile.read(length) or b"{}")
                return self._json(200, app.edit_label(body if isinstance(body, dict) else {}))
            except (ValueError, HeadgraphError) as error:
                return self._json(400, {"error": str(error)})

        def do_PUT(self):  # noqa: N802
            self._json(405, {"error": "the explorer is read-only"})

        do_DELETE = do_PATCH = do_PUT  # noqa: N815

        def _json(self, status: int, value) -> None:
            self._send(status, to_json(value).encode(), "application/json")

        def _send(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _host_allowed(self) -> bool:
            asked = self.headers.get("Host")
            if asked is None:  # HTTP/1.0 clients: no name to rebind
                return True
            port = cast(tuple, self.server.server_address)[1]  # an IP server: (host, port)
            names = {"127.0.0.1", "localhost", "[::1]"} | ({host} if host else set())
            return asked.lower() in {f"{name}:{port}" for name in names}

        def log_message(self, *args) -> None:  # quiet: the CLI prints the address
            pass

    return _Server((host, port), Handler)


def _numbers(query: dict[str, str]):
    """``number(name, default, low, high)``: a query parameter, checked (finite, in range)."""

    def number(name: str, default: float, low: float, high: float, *, whole=False) -> float:
        text = query.get(name, "")
        if text == "":
            return default
        try:
            value = float(text)
        except ValueError:
            raise QueryError(f"{name}={text!r} is not a number") from None
        if not (math.isfinite(value) and low <= value <= high) or (whole and value % 1):
            kind = "a whole number" if whole else "a number"
            raise QueryError(f"{name}={text!r}: give {kind} from {low:g} to {high:g}")
        return value

    return number
