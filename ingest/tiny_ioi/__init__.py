"""``tiny-ioi``: the bundled attention-only model, trained here on a synthetic IOI task.

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
