"""The method, as pure functions on tensors batched over prompts, heads and token pairs:
the QK decomposition (:mod:`.svd`), firings and sparse sets (:mod:`.signals`), upstream
contributions and the edge rule (:mod:`.contributions`), the recursion from seeds
(:mod:`.trace`), and the typed records they produce (:mod:`.records`)."""
