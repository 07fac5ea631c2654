"""The tiny-ioi task: its vocabulary, templates, held-out split and prompts.

The task is built so that a positional shortcut cannot solve it: random filler
words move every name, and two thirds of the prompts name a distractor, in a
middle clause before S2 or after S2, so neither "the most recent name" nor "the
name at a given distance" is S. The model must find which first-clause name is
repeated and answer the other one, which is the IOI circuit's job.

Held out from training: whole template families (a first clause and a verb
that never appear together in training) and 20% of the (IO, S) name pairs.
"""

from __future__ import annotations

import itertools
import random
import re

from headgraph.ingest.model.tokenizer import WordTokenizer
from headgraph.ingest.tasks.ioi import NAMES, OBJECTS, PLACES, IOIPrompt, ioi_prompts

TASK_NAMES = NAMES[:40]
OPENERS = ("Then,", "Afterwards,", "Later,", "That day,", "After the lunch,", "So")
FIRST = (
    "went to the {PLACE}",
    "were at the {PLACE}",
    "had fun at the {PLACE}",
    "worked at the {PLACE}",
)
JOINS = (".", ". Then,", ". Later,", ", and")
VERBS = ("gave", "handed", "passed", "threw", "sold", "brought")
FILLERS = ("quickly", "happily", "then", "finally", "kindly", "gladly")
DISTRACTORS = ("that {D} liked", "from {D}", "with {D}")  # after the object
MIDDLES = ("{D} was there too.", "{D} stayed at home.", "{D} came later.")  # before S2
# (first clause, verb) families never seen in training
HELD_OUT_FAMILIES = frozenset({(0, 5), (1, 2), (2, 0), (3, 3)})


VARIANTS = ("tiny-ioi", "tiny-ioi-rope")
# tiny-ioi-rope: the same task and size, Llama-style: rotary positions, RMSNorm and
# grouped-query attention (two key/value heads for four query heads)
ROPE = (("positional_embedding_type", "rotary"), ("rotary_dim", 16), ("rotary_base", 10000),
        ("normalization_type", "RMS"), ("final_rms", True), ("n_key_value_heads", 2))  # fmt: skip


def architecture(variant: str = "tiny-ioi"):
    """The architecture of ``tiny-ioi`` (GPT-2 style) or ``tiny-ioi-rope`` (Llama style)."""
    from headgraph.ingest.model import Architecture

    return Architecture(
        n_layers=3,
        n_heads=4,
        d_model=64,
        d_head=16,
        d_vocab=len(vocabulary()),
        n_ctx=48,
        d_mlp=None,
        options=ROPE if variant == "tiny-ioi-rope" else (),
    )


def vocabulary() -> list[str]:
    """Every word of the task, in a fixed order (token ids)."""
    text = " ".join(
        (*OPENERS, *FIRST, *JOINS, *VERBS, *FILLERS, *DISTRACTORS, *MIDDLES, "and a to")
    )
    words = re.findall(r"\w+|[^\w\s]", re.sub(r"\{\w+\}", " ", text))
    return list(dict.fromkeys([*words, *PLACES, *OBJECTS, *TASK_NAMES]))


def tokenizer() -> WordTokenizer:
    return WordTokenizer(vocabulary())


def templates(n: int, *, held_out: bool, seed: int) -> list[str]:
    """``n`` BABA templates from the training families (or the held-out ones)."""
    rng = random.Random(seed)
    families = [
        f
        for f in itertools.product(range(len(FIRST)), range(len(VERBS)))
        if (f in HELD_OUT_FAMILIES) == held_out
    ]
    out = []
    for _ in range(n):
        first, verb = rng.choice(families)
        lead = " ".join(rng.choices(FILLERS, k=rng.randint(0, 3)))
        middle = " ".join(rng.choices(FILLERS, k=rng.randint(0, 4)))
        tail = " ".join(rng.choices(FILLERS, k=rng.randint(0, 4)))
        where = rng.choice(("none", "before S2", "after S2"))
        parts = [
            rng.choice(OPENERS),
            lead,
            "{S} and {IO}",
            FIRST[first],
            rng.choice(JOINS),
            rng.choice(MIDDLES) if where == "before S2" else "",
            "{S}",
            middle,
            VERBS[verb],
            "a {OBJECT}",
            rng.choice(DISTRACTORS) if where == "after S2" else "",
            tail,
            "to",
        ]
        text = " ".join(p for p in parts if p)
        out.append(text.replace(" .", ".").replace(" ,", ","))
    return out


def name_pairs(*, held_out: bool, seed: int = 0) -> list[tuple[str, str]]:
    """(IO, S) pairs: a fixed 20% are held out of training."""
    pairs: list[tuple[str, str]] = list(itertools.permutations(TASK_NAMES, 2))
    random.Random(seed).shuffle(pairs)
    cut = len(pairs) // 5
    return pairs[:cut] if held_out else pairs[cut:]


def prompts(n: int, *, held_out: bool, seed: int) -> list[IOIPrompt]:
    """IOI prompts of the task, from training or held-out templates and name pairs."""
    return ioi_prompts(
        n,
        tokenizer=tokenizer(),
        seed=seed,
        names=TASK_NAMES,
        templates=templates(max(n // 4, 50), held_out=held_out, seed=seed + 1),
        pairs=name_pairs(held_out=held_out),
        id_prefix="heldout" if held_out else "train",
    )


def distractor_placement(prompt: IOIPrompt) -> str:
    """Where a task prompt names its distractor: ``none``, ``before S2`` or ``after S2``."""
    words = prompt.text.split()
    if any(m.split()[1] in words for m in MIDDLES):
        return "before S2"
    if any(d.split()[0] in words[prompt.roles["S2"] :] for d in DISTRACTORS):
        return "after S2"
    return "none"
