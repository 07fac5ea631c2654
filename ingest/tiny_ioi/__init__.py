"""``tiny-ioi`` and ``tiny-ioi-rope``: the bundled attention-only models, trained here on a
synthetic IOI task (GPT-2 style, and Llama style: rotary, RMSNorm, grouped-query).

:mod:`.task` builds its prompts (vocabulary, templates, the held-out split);
:mod:`.training` trains, evaluates and loads it and writes its model card.
The checkpoint and the card ship in ``models/``.
"""

from headgraph.ingest.tiny_ioi.task import (
    FIRST,
    HELD_OUT_FAMILIES,
    VERBS,
    architecture,
    name_pairs,
    prompts,
    templates,
    tokenizer,
    vocabulary,
)
from headgraph.ingest.tiny_ioi.training import (
    CARD,
    CHECKPOINT,
    ROPE_CHECKPOINT,
    card,
    evaluate,
    load,
    make_card,
    save,
    train,
)

__all__ = [
    "CARD",
    "CHECKPOINT",
    "FIRST",
    "HELD_OUT_FAMILIES",
    "ROPE_CHECKPOINT",
    "VERBS",
    "architecture",
    "card",
    "evaluate",
    "load",
    "make_card",
    "name_pairs",
    "prompts",
    "save",
    "templates",
    "tokenizer",
    "train",
    "vocabulary",
]
