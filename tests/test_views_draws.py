"""The draw shorthands (crossmatch_lite/views/draws.py) are each the one torch draw their
docstring names: the family modules' lists of draws, which exact resume depends on, are
written in their terms."""
from __future__ import annotations

import torch

from crossmatch_lite.views import draws
from view_stats import replay


def test_each_shorthand_is_one_torch_draw():
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        g = replay(gen)
        assert torch.equal(draws.uniform(gen, 5, 2.0, 3.5), 2.0 + 1.5 * torch.rand(5, generator=g))
        assert torch.equal(draws.bernoulli(gen, 7, 0.3), torch.rand(7, generator=g) < 0.3)
        assert draws.rand(gen) == torch.rand(1, generator=g).item()
        assert draws.randint(gen, 3, 9) == int(torch.randint(3, 9, (1,), generator=g))
        assert torch.equal(gen.get_state(), g.get_state())


def test_uniform_and_randint_are_half_open():
    gen = torch.Generator().manual_seed(1)
    values = {draws.randint(gen, 3, 7) for _ in range(400)}
    assert values == {3, 4, 5, 6}  # like np.random.randint: high itself never
    u = draws.uniform(gen, 4000, -1.0, 1.0)
    assert u.dtype == torch.float32 and float(u.min()) >= -1.0 and float(u.max()) < 1.0
    assert float(u.min()) < -0.99 and float(u.max()) > 0.99
