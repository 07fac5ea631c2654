import torch

from headgraph.ingest.core.baseline import relative_to, relative_to_mean
from headgraph.ingest.core.records import Prompt


def test_outputs_less_their_role_mean_are_exactly_zero_where_every_prompt_agrees():
    torch.manual_seed(0)
    n, n_pos = 4, 5
    prompts = [Prompt(id=f"p{i}", text="", tokens=(1,) * n_pos, roles={"A": 1, "B": 2 + i % 2})
               for i in range(n)]  # fmt: skip
    components = torch.randn(n, n_pos, 3, 6)  # [batch, pos, component, d_model]
    components[:, 1] = torch.randn(3, 6) * 7  # role A: the same in every prompt
    components[0, 1, 2, 0] += 1e-4  # ... to 1e-5 of its norm: still the same
    components[1, 1, 1, 0] += 1.0  # ... but one that differs
    out = relative_to_mean(prompts, components)
    changed = torch.zeros(n, 3, dtype=torch.bool)
    changed[:, 1] = True  # every prompt's component 1 is now off the mean by 1/4 or 3/4
    assert (out[:, 1][~changed] == 0).all()  # an exact zero, not a rounding residue
    assert (out[:, 1][changed] != 0).any(dim=-1).all()

    b_at = torch.tensor([2 + i % 2 for i in range(n)])
    every = components.flatten(0, 1).mean(0)  # no role: every real token's mean
    for b in range(n):
        for t in range(n_pos):
            rows = components[:, 1] if t == 1 else components[range(n), b_at]
            mean = rows.mean(0) if t in (1, int(b_at[b])) else every
            want = components[b, t] - mean
            if t == 1:
                want[~changed[b]] = 0.0
            torch.testing.assert_close(out[b, t], want, rtol=1e-5, atol=1e-5)
    same = components.clone()
    assert relative_to_mean(prompts, same, in_place=True) is same
    torch.testing.assert_close(same, out)


def test_outputs_less_a_counterfactual_are_zero_exactly_where_the_two_agree():
    torch.manual_seed(1)
    components = torch.randn(2, 4, 3, 5)
    reference = torch.randn(2, 4, 3, 5)
    reference[0, 2] = components[0, 2]  # a token the counterfactual does not change
    reference[1, 3, 1] = components[1, 3, 1] * (1 + 1e-7)  # within rounding of it
    reference[1, 0, 0] = components[1, 0, 0] * (1 + 1e-3)  # a real, small difference
    out = relative_to(components, reference)
    assert (out[0, 2] == 0).all() and (out[1, 3, 1] == 0).all()
    assert (out[1, 0, 0] != 0).all()
    keep = torch.ones_like(out, dtype=torch.bool)
    keep[0, 2], keep[1, 3, 1] = False, False
    torch.testing.assert_close(out[keep], (components - reference)[keep])
    # outputs laid out otherwise (a transposed copy) give the same, in place or not
    strided = components.transpose(0, 1).contiguous().transpose(0, 1)
    assert not strided.is_contiguous()
    torch.testing.assert_close(relative_to(strided, reference), out)
    torch.testing.assert_close(relative_to(strided.clone(), reference, in_place=True), out)
