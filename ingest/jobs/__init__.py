"""Jobs that run the method end to end: the trace job (a JSON Lines file), the ingest job
(batches written to a store, resumable), the verify job (effects written back), and
the rows they write (:mod:`.graph_rows`)."""
