"""The browser view and the figures: a local read-only JSON server (:mod:`.server`) with its
static page, where nodes go (:mod:`.layout`), and SVG/PNG/HTML pictures (:mod:`.figures`)."""
