"""Training, evaluation and the model card of the bundled ``tiny-ioi``.

Training is deterministic (one thread, fixed seeds): same seed, same weights,
bit for bit. The checkpoint and its card ship in ``models/`` beside this file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from headgraph.ingest.core.trace import pad_tokens
from headgraph.ingest.tasks.ioi import ROLES, IOIPrompt
from headgraph.ingest.tiny_ioi.task import (
    architecture,
    distractor_placement,
    prompts,
    tokenizer,
    vocabulary,
)

if TYPE_CHECKING:
    from headgraph.ingest.model.adapter import Model

CHECKPOINT = Path(__file__).parent / "models" / "tiny-ioi.pt"
CARD = CHECKPOINT.with_suffix(".json")
ROPE_CHECKPOINT = CHECKPOINT.with_name("tiny-ioi-rope.pt")
BUNDLED = {CHECKPOINT: "tiny-ioi", ROPE_CHECKPOINT: "tiny-ioi-rope"}


@dataclass(frozen=True)
class Evaluation:
    accuracy: float
    logit_diff: float
    prompts: int


def evaluate(model: Model, batch: list[IOIPrompt]) -> Evaluation:
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
    variant: str = "tiny-ioi",
) -> dict[str, torch.Tensor]:
    """Train tiny-ioi (or its Llama-style ``tiny-ioi-rope``) and return its unprocessed weights.

    Runs on one thread with fixed seeds, so the same seed gives the same
    weights bit for bit.
    """
    from headgraph.ingest.model import build_hooked

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        data = prompts(20_000, held_out=False, seed=seed)
        tokens, lengths = pad_tokens(data)
        answers = torch.tensor([p.io_token for p in data])
        net = build_hooked(architecture(variant), seed=seed).train()
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


def save(
    state: dict[str, torch.Tensor],
    card: dict,
    path: Path = CHECKPOINT,
    *,
    variant: str = "tiny-ioi",
) -> None:
    """Write the checkpoint and its model card (JSON beside it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "architecture": asdict(architecture(variant)),
        "vocabulary": vocabulary(),
        "state_dict": state,
    }
    torch.save(payload, path)
    path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")


def load(path: Path = CHECKPOINT, *, device: str = "cpu"):
    """The trained model (processed, ready for tracing), with its card when one is beside it.

    The bundled checkpoint is named ``tiny-ioi``; another one (a retrain) by its path.
    """
    from headgraph.ingest.model import Architecture, ModelError, build_model

    if not path.exists():
        raise ModelError(f"no tiny-ioi checkpoint at {path}: run `headgraph train-tiny-ioi`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or "state_dict" not in payload:
            raise ValueError("no tiny-ioi weights in it")
    except Exception as error:  # noqa: BLE001 - truncated, corrupt or foreign files alike
        first = (str(error).strip().splitlines() or [type(error).__name__])[0].split(". ")[0]
        raise ModelError(
            f"{path}: not a readable tiny-ioi checkpoint ({first}); retrain it with "
            "`headgraph train-tiny-ioi`"
        ) from None
    if payload.get("vocabulary") != vocabulary():
        raise ModelError(f"{path} was trained on another vocabulary: retrain it")
    shape = dict(payload["architecture"])
    shape["options"] = tuple(tuple(pair) for pair in shape.get("options", ()))
    bundled = {p.resolve(): name for p, name in BUNDLED.items()}
    model = build_model(
        Architecture(**shape),
        tokenizer=tokenizer(),
        state_dict=payload["state_dict"],
        device=device,
        name=bundled.get(path.resolve(), str(path)),
    )
    card_file = path.with_suffix(".json")
    model.card = json.loads(card_file.read_text()) if card_file.exists() else None
    return model


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
# (previous token: 0.5, since many heads look back one token some of the time; moving
# IO through IO+1: 0.15, since tiny-ioi-rope spreads it over four heads at 0.20-0.24).
ROLE_RULES = {
    "name mover": ("END", "IO", 0.3),
    "name mover via IO+1": ("END", "IO+1", 0.15),
    "S-inhibition": ("END", "S2", 0.3),
    "duplicate token": ("S2", "S1", 0.3),
    "induction": ("S2", "S1+1", 0.3),
    "previous token": ("S1+1", "S1", 0.5),
    "previous token at IO": ("IO+1", "IO", 0.5),
}


def head_report(model: Model, batch: list[IOIPrompt]) -> dict[str, dict[str, float]]:
    """Per head: mean attention between IOI roles, and the logit difference when the
    head is mean-ablated (its output replaced by its mean over prompts, by role)."""
    from headgraph.ingest.core.baseline import role_means

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


def make_card(
    state: dict[str, torch.Tensor], *, seed: int, steps: int, seconds: float,
    variant: str = "tiny-ioi",
) -> dict:  # fmt: skip
    """Evaluate freshly trained weights and describe them: accuracy, heads, roles, seeds."""
    from headgraph.ingest.model import build_model

    model = build_model(
        architecture(variant), tokenizer=tokenizer(), state_dict=state, name=variant
    )
    train_eval = evaluate(model, prompts(1000, held_out=False, seed=seed + 100))
    held_out = prompts(1000, held_out=True, seed=seed + 200)
    report = head_report(model, held_out[:300])
    roles = head_roles(report)
    movers, source = roles["name mover"], "IO"
    if not movers:  # the heads that move IO through the previous-token copy at IO+1
        movers, source = roles["name mover via IO+1"], "IO+1"
    return {
        "model": variant,
        "architecture": asdict(architecture(variant)),
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
