import torch

from headgraph.ingest.core.scratch import Scratch


def test_scratch_reuses_its_buffer_and_grows_it_at_least_twofold():
    scratch = Scratch()
    like = torch.zeros(1)
    first = scratch.take(4, 3, like=like)
    assert first.shape == (4, 3) and first.is_contiguous()
    first.fill_(1.0)
    smaller = scratch.take(2, 5, like=like)  # fits: the same memory
    assert smaller.data_ptr() == first.data_ptr() and smaller.shape == (2, 5)
    bigger = scratch.take(5, 3, like=like)  # 15 > 12: a new buffer of 24
    assert bigger.data_ptr() != first.data_ptr()
    again = scratch.take(4, 6, like=like)
    assert again.data_ptr() == bigger.data_ptr()
    wider = scratch.take(2, 3, like=torch.zeros(1, dtype=torch.float64))
    assert wider.dtype == torch.float64 and wider.shape == (2, 3)
