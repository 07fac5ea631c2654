"""Questions about stored runs: the stores (:mod:`.store`), and paths, redundancy,
features, circuits, comparisons, Cypher and exports over them. Nothing here imports
torch or the model: every answer comes from the store."""
