"""What the view tests (tests/test_views*.py) share: a generator's state re-made to re-draw
what a view drew, a binomial check of how often a branch ran, and the LA preset's
image perturbations."""
from __future__ import annotations

import dataclasses
import math

import torch

from crossmatch_lite.config import ImagePerturbConfig, load_config


def replay(gen: torch.Generator) -> torch.Generator:
    """A generator in the same state, to re-draw the random parameters a function used."""
    g = torch.Generator()
    g.set_state(gen.get_state())
    return g


def assert_binomial(count: int, n: int, p: float, z: float = 4.0) -> None:
    """count successes in n draws agree with probability p (z standard deviations)."""
    sd = math.sqrt(p * (1 - p) / n)
    assert abs(count / n - p) <= z * sd, f"{count}/{n} = {count / n:.3f}, expected {p} +- {z * sd:.3f}"


def la_image_cfg(**changes) -> ImagePerturbConfig:
    return dataclasses.replace(load_config("configs/la.yaml").perturb.image, **changes)
