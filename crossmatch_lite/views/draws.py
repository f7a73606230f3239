"""Shorthands for the random draws the perturbation families make from a run's generator.

A run has one CPU `torch.Generator` for its views (`Trainer.aug_gen`, seeded from
`train.seed`, saved in every checkpoint). The family modules (`geometric.py`,
`photometric.py`, `mixing.py`) draw from it with torch's own samplers, mostly through
these four, so that the docstring of each family can list its draws one call at a time:

    uniform(gen, n, lo, hi)   (n,) float32 lo + (hi - lo) * U[0, 1): one torch.rand(n)
    bernoulli(gen, n, p)      (n,) bool U[0, 1) < p: one torch.rand(n)
    rand(gen)                 one U[0, 1) as a Python float: one torch.rand(1)
    randint(gen, low, high)   one integer in [low, high), like np.random.randint: one torch.randint

The generator lives on the CPU whatever device trains, so a seed gives the same views on
CPU and GPU. The 2D forms draw a whole batch's parameters at once (uniform, bernoulli),
the 3D forms one volume's at a time (rand, randint), as the official LA loader does.
"""
from __future__ import annotations

import torch


def uniform(gen: torch.Generator, n: int, lo: float, hi: float) -> torch.Tensor:
    """(n,) float32, uniform in [lo, hi)."""
    return lo + (hi - lo) * torch.rand(n, generator=gen)


def bernoulli(gen: torch.Generator, n: int, p: float) -> torch.Tensor:
    """(n,) bool, each True with probability p."""
    return torch.rand(n, generator=gen) < p


def rand(gen: torch.Generator) -> float:
    """One uniform number in [0, 1)."""
    return float(torch.rand(1, generator=gen))


def randint(gen: torch.Generator, low: int, high: int) -> int:
    """Uniform in [low, high), like np.random.randint."""
    return int(torch.randint(low, high, (1,), generator=gen))
