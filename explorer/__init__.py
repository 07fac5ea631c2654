"""The explorer: the ``headgraph`` command line (:mod:`.cli`) and the browser view
(:mod:`.web`). It calls ingest's jobs and the queries; nothing imports it."""
