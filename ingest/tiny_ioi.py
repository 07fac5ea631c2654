"""``tiny-ioi``: a small attention-only model trained here on a synthetic IOI task.

The task is built so that a positional shortcut cannot solve it: random filler
words move every name, and two thirds of the prompts name a distractor, in a
middle clause before S2 or after S2, so neither "the most recent name" nor "the
name at a given distance" is S. The model must find which first-clause name is
repeated and answer the other one, which is the IOI circuit's job.

Held out from training: whole template families (a first clause and a verb
that never appear together in training) and 20% of the (IO, S) name pairs.
Training is deterministic (one thread, fixed seeds): same seed, same weights,
bit for bit. The checkpoint and its model card ship in ``ingest/models/``.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ingest.ioi import NAMES, OBJECTS, PLACES, ROLES, IOIPrompt, ioi_prompts
from ingest.tokenizer import WordTokenizer
from ingest.trace import pad_tokens

CHECKPOINT = Path(__file__).parent / "models" / "tiny-ioi.pt"
CARD = CHECKPOINT.with_suffix(".json")

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


def architecture():
    from ingest.model import Architecture

    return Architecture(
        n_layers=3,
        n_heads=4,
        d_model=64,
        d_head=16,
        d_vocab=len(vocabulary()),
        n_ctx=48,
        d_mlp=None,
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
    pairs = list(itertools.permutations(TASK_NAMES, 2))
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


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    logit_diff: float
    prompts: int


def evaluate(model, batch: list[IOIPrompt]) -> Evaluation:
    """Accuracy (the IO name is the top token at END) and mean logit difference IO - S."""
    tokens, lengths = pad_tokens(batch)
    log_probs = model.log_probs(tokens)[torch.arange(len(batch)), lengths - 1]  # [batch, vocab]
    io = torch.tensor([p.io_token for p in batch])
    s = torch.tensor([p.s_token for p in batch])
    rows = torch.arange(len(batch))
    diff = log_probs[rows, io] - log_probs[rows, s]
    return Evaluation(
        float((log_probs.argmax(-1) == io).float().mean()), float(diff.mean()), len(batch)
    )


def train(
    *,
    seed: int = 0,
    steps: int = 3000,
    batch_size: int = 64,
    lr: float = 2e-3,
    log: Callable[[str], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Train tiny-ioi and return its (unprocessed) weights.

    Runs on one thread with fixed seeds, so the same seed gives the same
    weights bit for bit.
    """
    from ingest.model import build_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        data = prompts(20_000, held_out=False, seed=seed)
        tokens, lengths = pad_tokens(data)
        answers = torch.tensor([p.io_token for p in data])
        model = build_model(architecture(), tokenizer=tokenizer(), seed=seed, process=False)
        net = model.hooked.train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
        generator = torch.Generator().manual_seed(seed)
        for step in range(steps):
            rows = torch.randint(len(data), (batch_size,), generator=generator)
            logits = net(tokens[rows])[torch.arange(batch_size), lengths[rows] - 1]
            loss = torch.nn.functional.cross_entropy(logits, answers[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if log and step % 250 == 0:
                accuracy = float((logits.argmax(-1) == answers[rows]).float().mean())
                log(f"step {step:5d}  loss {loss.item():.4f}  batch accuracy {accuracy:.3f}")
        return {k: v.detach().clone() for k, v in net.state_dict().items()}
    finally:
        torch.set_num_threads(threads)


def save(state: dict[str, torch.Tensor], card: dict, path: Path = CHECKPOINT) -> None:
    """Write the checkpoint and its model card (JSON beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "architecture": asdict(architecture()),
        "vocabulary": vocabulary(),
        "state_dict": state,
    }
    torch.save(payload, path)
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def load(path: Path = CHECKPOINT, *, device: str = "cpu"):
    """The trained model (processed, ready for tracing)."""
    from ingest.model import Architecture, ModelError, build_model

    if not path.exists():
        raise ModelError(f"no tiny-ioi checkpoint at {path}: run `headgraph train-tiny-ioi`")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload["vocabulary"] != vocabulary():
        raise ModelError(f"{path} was trained on another vocabulary: retrain it")
    return build_model(
        Architecture(**payload["architecture"]),
        tokenizer=tokenizer(),
        state_dict=payload["state_dict"],
        device=device,
        name="tiny-ioi",
    )


def card() -> dict:
    """The shipped model card (seeds, accuracy, head roles)."""
    return json.loads(CARD.read_text())


ROLE_PAIRS = (
    ("END", "IO"),
    ("END", "IO+1"),
    ("END", "S2"),
    ("END", "S1"),
    ("S2", "S1"),
    ("S2", "S1+1"),
    ("S1+1", "S1"),
    ("IO+1", "IO"),
)
# A head takes a role when its mean attention between the two roles is at least 0.3
# (previous token: 0.5, since many heads look back one token some of the time).
ROLE_RULES = {
    "name mover": ("END", "IO", 0.3),
    "name mover via IO+1": ("END", "IO+1", 0.3),
    "S-inhibition": ("END", "S2", 0.3),
    "duplicate token": ("S2", "S1", 0.3),
    "induction": ("S2", "S1+1", 0.3),
    "previous token": ("S1+1", "S1", 0.5),
    "previous token at IO": ("IO+1", "IO", 0.5),
}


def head_report(model, batch: list[IOIPrompt]) -> dict[str, dict[str, float]]:
    """Per head: mean attention between IOI roles, and the logit difference when the
    head is mean-ablated (its output replaced by its mean over prompts, by role)."""
    from ingest.intervene import role_means

    tokens, lengths = pad_tokens(batch)
    acts = model.run(tokens, lengths)
    rows = torch.arange(len(batch))
    at = {r: torch.tensor([p.roles[r] for p in batch]) for r in ROLES}
    io = torch.tensor([p.io_token for p in batch])
    s = torch.tensor([p.s_token for p in batch])
    role, means = role_means(batch, acts.components)
    report = {}
    for l in range(model.n_layers):
        for h in range(model.n_heads):
            stats = {
                f"{a}->{b}": round(float(acts.pattern[rows, l, h, at[a], at[b]].mean()), 3)
                for a, b in ROLE_PAIRS
            }
            c = model.layout.head_index(l, h)
            deltas = torch.zeros_like(acts.components)
            deltas[:, :, c] = means[role, c] - acts.components[:, :, c]
            final = model.log_probs(tokens, deltas)[rows, lengths - 1]
            stats["mean-ablated logit diff"] = round(
                float((final[rows, io] - final[rows, s]).mean()), 3
            )
            report[f"{l}.{h}"] = stats
    return report


def head_roles(report: dict[str, dict[str, float]]) -> dict[str, list[str]]:
    """Heads per IOI role, by ``ROLE_RULES``, strongest first."""
    roles = {}
    for role, (dest, source, threshold) in ROLE_RULES.items():
        key = f"{dest}->{source}"
        heads = [h for h, stats in report.items() if stats[key] >= threshold]
        roles[role] = sorted(heads, key=lambda h: -report[h][key])
    return roles


def distractor_placement(prompt: IOIPrompt) -> str:
    """Where a task prompt names its distractor: ``none``, ``before S2`` or ``after S2``."""
    words = prompt.text.split()
    if any(m.split()[1] in words for m in MIDDLES):
        return "before S2"
    if any(d.split()[0] in words[prompt.roles["S2"] :] for d in DISTRACTORS):
        return "after S2"
    return "none"


def make_card(state: dict[str, torch.Tensor], *, seed: int, steps: int, seconds: float) -> dict:
    """Evaluate freshly trained weights and describe them: accuracy, heads, roles, seeds."""
    from ingest.model import build_model

    model = build_model(architecture(), tokenizer=tokenizer(), state_dict=state, name="tiny-ioi")
    train_eval = evaluate(model, prompts(1000, held_out=False, seed=seed + 100))
    held_out = prompts(1000, held_out=True, seed=seed + 200)
    report = head_report(model, held_out[:300])
    roles = head_roles(report)
    movers, source = roles["name mover"], "IO"
    if not movers:  # the heads that move IO through the previous-token copy at IO+1
        movers, source = roles["name mover via IO+1"], "IO+1"
    return {
        "model": "tiny-ioi",
        "architecture": asdict(architecture()),
        "parameters": sum(v.numel() for k, v in state.items() if v.is_floating_point()),
        "training": {"seed": seed, "steps": steps, "seconds": round(seconds, 1), "threads": 1},
        "train": asdict(train_eval),
        "held_out": asdict(evaluate(model, held_out)),
        "held_out_by_distractor": {
            where: asdict(
                evaluate(model, [p for p in held_out if distractor_placement(p) == where])
            )
            for where in ("none", "before S2", "after S2")
        },
        "roles": roles,
        "seeds": {"heads": ",".join(movers), "roles": f"END:{source}"},
        "heads": report,
    }
