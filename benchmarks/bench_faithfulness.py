"""Faithfulness: headgraph's traced edges against path patching, with EAP as a baseline.

The ground truth is path patching (Wang et al. 2022), written here against
TransformerLens hooks only (not headgraph's trace or intervention code): a
sender's output (a head's ``z W_O``, or an embedding) is replaced, at one
token role, by its output on the ABC-corrupted prompt, *only as one receiver
input sees it* (a later head's query, key or value input, before its ln1);
everything downstream is recomputed. An edge's effect is the share of the clean
logit difference IO - S it removes. A second replacement, the sender's mean
over the prompts at the same role, sees the positional edges that ABC cannot.

The script checks its own patching first: a sender patched into every one of
its readers at once (every later head's query, key and value input, and the
final residual) must equal patching the sender's output itself.

With grouped-query attention (tiny-ioi-rope) a key or value input serves a group
of heads and is patched once per group: its edges are keyed by the group's first
head, and a traced key, value or inhibition edge into any head of the group counts
as the group's.

It then scores, over edges keyed ``(sender, receiver, side, role)``:

- headgraph's trace (the paper's QK-only trace, seeded by the model card's heads,
  and seeded from the prediction): precision, recall and F1 of its edges (seen in
  at least ``--min-share`` of the prompts) against the edges whose effect is at
  least 1%, 2% and 5%; average precision of its ranking (by prompts) of all
  candidate edges; Spearman between its prompt counts and the effects;
- EAP (gradient x activation difference at the receiver input), ranked by |score|;
- the share of the summed effect carried by value edges, which a QK trace cannot see.

Usage::

    python benchmarks/bench_faithfulness.py [--model tiny-ioi] [--prompts 256]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

import torch

SIDES = ("q", "k", "v")
SIDE_NAMES = {"q": "query", "k": "key", "v": "value"}


def sender_outputs(model, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every sender's output, ``[batch, pos, d_model]``, by name (``embed``, ``L.H``)."""
    m = model.hooked
    names = {"hook_embed", "hook_pos_embed"} | {
        f"blocks.{l}.attn.hook_z" for l in range(model.n_layers)
    }
    with torch.no_grad():
        _, cache = m.run_with_cache(tokens, names_filter=lambda n: n in names)
    out = {"embed": cache["hook_embed"]}
    if "hook_pos_embed" in cache:  # not in a rotary model
        out["pos_embed"] = cache["hook_pos_embed"]
    for l in range(model.n_layers):
        z = cache[f"blocks.{l}.attn.hook_z"]  # [batch, pos, head, d_head]
        for h in range(model.n_heads):
            out[f"{l}.{h}"] = z[:, :, h] @ m.W_O[l, h]
    return out


def layer_of(sender: str) -> int:
    return -1 if "." not in sender else int(sender.split(".")[0])


def group_size(model) -> int:
    """Query heads per key/value head (1 without grouped-query attention)."""
    cfg = model.hooked.cfg
    return cfg.n_heads // (cfg.n_key_value_heads or cfg.n_heads)


def receivers(model, side: str) -> range:
    """The heads whose ``side`` input can be patched alone: every head's query; with grouped
    key/value heads, one key and value input per group (named by its first head)."""
    return range(0, model.n_heads, 1 if side == "q" else group_size(model))


class Patcher:
    """Forward passes of the clean prompts with sender outputs changed at chosen inputs."""

    def __init__(self, model, prompts, tokens, lengths):
        self.model, self.m, self.prompts = model, model.hooked, prompts
        self.tokens, self.lengths = tokens, lengths
        self.rows = torch.arange(len(prompts))
        self.io = torch.tensor([p.tokens[p.roles["IO"]] for p in prompts])
        self.s = torch.tensor([p.tokens[p.roles["S1"]] for p in prompts])

    def logit_diff(self, hooks) -> torch.Tensor:
        """``[batch]`` IO - S at the last token, under ``hooks``."""
        self.m.set_use_split_qkv_input(True)
        try:
            with torch.no_grad():
                logits = self.m.run_with_hooks(self.tokens, fwd_hooks=hooks)
        finally:
            self.m.set_use_split_qkv_input(False)
        at = logits[self.rows, self.lengths - 1]
        return at[self.rows, self.io] - at[self.rows, self.s]

    def input_hook(self, receiver: str, side: str, delta: torch.Tensor):
        """Add ``delta [batch, pos, d_model]`` to one head's query, key or value input."""
        layer, head = (int(x) for x in receiver.split("."))
        if side != "q":  # a grouped key/value input: the group's
            head //= group_size(self.model)

        def add(act, hook):  # [batch, pos, head (or group), d_model]
            act = act.clone()
            act[:, :, head] += delta
            return act

        return (f"blocks.{layer}.hook_{side}_input", add)

    def at_role(self, change: torch.Tensor, role: str | None) -> torch.Tensor:
        """``change`` kept at one role's token of each prompt (all tokens for None)."""
        if role is None:
            return change
        kept = torch.zeros_like(change)
        where = torch.tensor([p.roles[role] for p in self.prompts])
        kept[self.rows, where] = change[self.rows, where]
        return kept


def identity_check(patcher: Patcher, sender: str, clean, corrupt) -> float:
    """|patching every reader of ``sender`` at once - patching the sender itself|, max."""
    model = patcher.model
    change = corrupt[sender] - clean[sender]
    hooks = [
        patcher.input_hook(f"{l}.{h}", side, change)
        for l in range(layer_of(sender) + 1, model.n_layers)
        for side in SIDES
        for h in receivers(model, side)
    ]
    last = model.n_layers - 1
    hooks.append((f"blocks.{last}.hook_resid_post", lambda act, hook: act + change))
    through_readers = patcher.logit_diff(hooks)
    where = f"blocks.{layer_of(sender)}.hook_attn_out" if "." in sender else f"hook_{sender}"
    hook = (where, lambda act, hook: act + change)
    itself = patcher.logit_diff([hook])
    return float((through_readers - itself).abs().max())


def path_effects(patcher: Patcher, clean, replaced, roles) -> dict[tuple, float]:
    """Share of the clean logit difference each (sender, receiver, side, role) removes."""
    model = patcher.model
    base = patcher.logit_diff([])
    effects = {}
    for sender in clean:
        change = replaced[sender] - clean[sender]
        for l in range(layer_of(sender) + 1, model.n_layers):
            for side in SIDES:
                for h in receivers(model, side):
                    for role in roles:
                        delta = patcher.at_role(change, role)
                        if not delta.any():
                            continue
                        hook = patcher.input_hook(f"{l}.{h}", side, delta)
                        patched = patcher.logit_diff([hook])
                        effects[(sender, f"{l}.{h}", side, role)] = float(
                            (base - patched).mean() / base.mean()
                        )
    return effects


def eap_scores(patcher: Patcher, clean, corrupt, roles) -> dict[tuple, float]:
    """Gradient x activation difference at each receiver input, by role (one backward)."""
    model, m = patcher.model, patcher.m
    kept: dict[str, torch.Tensor] = {}

    def keep(act, hook):
        act.retain_grad()
        kept[hook.name] = act
        return act

    names = [f"blocks.{l}.hook_{s}_input" for l in range(model.n_layers) for s in SIDES]
    m.set_use_split_qkv_input(True)
    try:
        logits = m.run_with_hooks(patcher.tokens, fwd_hooks=[(n, keep) for n in names])
        at = logits[patcher.rows, patcher.lengths - 1]
        diff = at[patcher.rows, patcher.io] - at[patcher.rows, patcher.s]
        diff.mean().backward()
    finally:
        m.set_use_split_qkv_input(False)
    base = float(diff.mean().detach())
    scores = {}
    for sender in clean:
        change = (corrupt[sender] - clean[sender]).detach()
        for l in range(layer_of(sender) + 1, model.n_layers):
            for side in SIDES:
                grad = kept[f"blocks.{l}.hook_{side}_input"].grad  # [batch, pos, head, d_model]
                for h in receivers(model, side):
                    for role in roles:
                        delta = patcher.at_role(change, role)
                        # the first-order change of the mean logit difference, as a share
                        at = h if side == "q" else h // group_size(model)
                        gain = (delta * grad[:, :, at]).sum() / len(patcher.prompts)
                        scores[(sender, f"{l}.{h}", side, role)] = -float(gain) / base
    m.zero_grad(set_to_none=True)
    return scores


def traced_edges(model, prompts, params) -> tuple[Counter, Counter]:
    """headgraph's edges keyed (sender, receiver, side, role): the prompts each occurs in,
    and its relevance summed over prompts (an inhibition edge is a key edge at its token)."""
    from headgraph.ingest.core.trace import trace
    from headgraph.ingest.jobs.trace_job import default_seeds, task_counterfactuals

    seeds = () if params.seeding != "heads" else default_seeds(model)
    counterfactuals = None
    if params.baseline == "counterfactual":  # the ABC corruption the ground truth patches in
        counterfactuals = task_counterfactuals(model, prompts, task="ioi")
    counts: Counter = Counter()
    relevance: Counter = Counter()
    group = group_size(model)
    for batch in trace(model, prompts, seeds=seeds, params=params, counterfactuals=counterfactuals):
        seen: Counter = Counter()
        for e in batch.edge_records():
            if e.upstream.kind not in ("head", "embed", "pos_embed") or e.role is None:
                continue
            side = "k" if e.side == "inhibit" else e.side[0]
            head = e.head if side == "q" else e.head // group * group  # its key/value group
            seen[(e.prompt_id, e.upstream.name, f"{e.layer}.{head}", side, e.role)] += e.relevance
        counts.update(key[1:] for key in seen)
        for key, value in seen.items():
            relevance[key[1:]] += value
    return counts, relevance


def average_precision(scores: dict, truth: set) -> float:
    """Average precision of ranking the candidates by score (ties broken by key)."""
    ranked = sorted(scores, key=lambda k: (-scores[k], k))
    hits, total = 0, 0.0
    for i, key in enumerate(ranked, start=1):
        if key in truth:
            hits += 1
            total += hits / i
    return total / max(len(truth), 1)


def spearman(x: list[float], y: list[float]) -> float:
    rx = torch.tensor(x).argsort().argsort().double()
    ry = torch.tensor(y).argsort().argsort().double()
    rx, ry = rx - rx.mean(), ry - ry.mean()
    return float((rx * ry).sum() / (rx.norm() * ry.norm()).clamp_min(1e-12))


def score(name, params, scope, model, prompts, eap, *, min_share=0.05, min_relevance=0.02):
    """Print one trace's P/R/F1 (edges by prompts, and by relevance), AP and Spearman; return
    ``{(how, threshold): F1, "ap": AP by relevance, "ap_eap": EAP's AP}``."""
    counts, relevance = traced_edges(model, prompts, params)
    n = len(prompts)
    by_prompts = {k for k, c in counts.items() if c >= min_share * n}
    by_relevance = {k for k, r in relevance.items() if r / n >= min_relevance}
    where = "all sides" if any(k[2] == "v" for k in scope) else "query/key edges"
    print(f"\n{name}: {len(by_prompts)} edges in >= {min_share:.0%} of prompts, "
          f"{len(by_relevance)} with relevance >= {min_relevance:.0%} ({where})")  # fmt: skip
    figures = {}
    for kept, how in ((by_prompts, "prompts"), (by_relevance, "relevance")):
        for threshold in (0.01, 0.02, 0.05):
            truth = {k for k, v in scope.items() if v >= threshold}
            tp = len(kept & truth)
            p, r = tp / max(len(kept), 1), tp / max(len(truth), 1)
            f1 = 2 * p * r / max(p + r, 1e-12)
            figures[(how, threshold)] = f1
            print(f"  by {how:9s} effect >= {threshold:.0%}: {len(truth):3d} true, "
                  f"P {p:.2f} R {r:.2f} F1 {f1:.2f}")  # fmt: skip
    truth = {k for k, v in scope.items() if v >= 0.02}
    ap_count = average_precision({k: float(counts.get(k, 0)) for k in scope}, truth)
    ap_relevance = average_precision({k: relevance.get(k, 0.0) for k in scope}, truth)
    ap_eap = average_precision({k: abs(eap.get(k, 0.0)) for k in scope}, truth)
    figures["ap"], figures["ap_eap"] = ap_relevance, ap_eap
    print(f"  ranking AP at 2%: by prompts {ap_count:.2f}, by relevance {ap_relevance:.2f}, "
          f"EAP {ap_eap:.2f}")  # fmt: skip
    traced = [k for k in by_relevance if k in scope]
    if len(traced) > 2:
        rho = spearman([relevance[k] for k in traced], [scope[k] for k in traced])
        print(f"  Spearman(relevance, effect) over its edges: {rho:+.2f}")
    return figures


def ground_truth(model, prompts) -> tuple[dict[tuple, float], dict[tuple, float]]:
    """Every candidate edge's effect (ABC or role mean, the larger) and EAP score, by
    ``(sender, receiver, side, role)``, after checking the patching's identity."""
    from headgraph.ingest import tiny_ioi
    from headgraph.ingest.core.baseline import role_means
    from headgraph.ingest.core.trace import pad_tokens
    from headgraph.ingest.tasks.ioi import corrupt

    abc = corrupt(prompts, tokenizer=model.tokenizer, names=tiny_ioi.task.TASK_NAMES)
    tokens, lengths = pad_tokens(prompts)
    patcher = Patcher(model, prompts, tokens, lengths)
    clean = sender_outputs(model, tokens)
    corrupted = sender_outputs(model, pad_tokens(abc)[0])
    roles = ("IO", "S1", "S1+1", "S2", "END", "IO+1")

    worst = max(identity_check(patcher, s, clean, corrupted) for s in ("0.2", "1.0", "embed"))
    print(f"identity (every reader at once == the sender itself): max |diff| {worst:.2e}")
    assert worst < 1e-3, "path patching does not add up to node patching"

    means = {}
    for name, out in clean.items():  # the role-aligned mean over the prompts, per sender
        role, mean = role_means(prompts, out[:, :, None])
        means[name] = mean[role][:, :, 0]
    truth_abc = path_effects(patcher, clean, corrupted, roles)
    truth_mean = path_effects(patcher, clean, means, roles)
    effect = {  # positional edges: only the role mean changes them
        k: max(abs(truth_abc.get(k, 0.0)), abs(truth_mean.get(k, 0.0)))
        for k in truth_abc.keys() | truth_mean.keys()
    }
    return effect, eap_scores(patcher, clean, corrupted, roles)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny-ioi")
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--min-share", type=float, default=0.05)
    parser.add_argument("--min-relevance", type=float, default=0.02)
    args = parser.parse_args()

    from headgraph.ingest import tiny_ioi
    from headgraph.ingest.core.params import TraceParams
    from headgraph.ingest.model import load_model

    started = time.perf_counter()
    model = load_model(args.model)
    prompts = tiny_ioi.prompts(args.prompts, held_out=True, seed=11)
    effect, eap = ground_truth(model, prompts)
    total = sum(effect.values())
    value_share = sum(v for k, v in effect.items() if k[2] == "v") / total
    print(f"{len(effect)} candidate edges; value edges carry {100 * value_share:.0f}% "
          "of the summed |effect| (ABC or role mean, the larger)")  # fmt: skip

    qk = {k: v for k, v in effect.items() if k[2] != "v"}
    paper, every = TraceParams.paper, ("query", "key", "value", "inhibit")
    for name, params, scope in (
        ("QK trace, card seeds (the paper)", paper(seeding="heads"), qk),
        ("QK trace, linear seeds", paper(seeding="linear"), qk),
        ("QK trace, prob seeds", paper(seeding="prob"), qk),
        ("+ value", paper(seeding="linear", sides=every[:3]), effect),
        ("+ value, inhibit", paper(seeding="linear", sides=every), effect),
        ("+ value, inhibit, baseline mean (the default, linear seeds)",
         TraceParams(seeding="linear"), effect),
        ("+ value, inhibit, baseline mean, up to 4 competitors (before)",
         TraceParams(seeding="linear", competitors=4), effect),
        ("+ value, inhibit, baseline mean, sensitivity weighting (before)",
         TraceParams(seeding="linear", weighting="sensitivity"), effect),
        ("+ value, inhibit, baseline counterfactual (ABC)",
         TraceParams(seeding="linear", baseline="counterfactual"), effect),
        ("+ value, inhibit, baseline mean, signed rule",
         TraceParams(seeding="linear", edge_rule="signed"), effect),
        ("+ value, inhibit, baseline mean, card seeds", TraceParams(seeding="heads"), effect),
        ("+ value, inhibit, baseline mean, prob seeds", TraceParams(seeding="prob"), effect),
    ):  # fmt: skip
        score(name, params, scope, model, prompts, eap, min_share=args.min_share,
              min_relevance=args.min_relevance)  # fmt: skip
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
