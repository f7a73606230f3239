"""The views of one iteration (crossmatch_lite/views/__init__.py): make_unlabeled_views
composes the family modules in the order its docstring states, for 2D images and 3D
volumes, with a second source batch and with the batch rolled by one. Exact resume
depends on that order; the resume tests run the same code on both sides and the official
ACDC replay (tests/test_official_replay.py) keeps its views and boxes in separate
queues, so neither notices the views and boxes drawn in another order: this test does."""
from __future__ import annotations

import pytest
import torch

from crossmatch_lite.config import ImagePerturbConfig
from crossmatch_lite.cutmix import paste
from crossmatch_lite.views import make_unlabeled_views, views_for
from view_stats import la_image_cfg, replay


@pytest.mark.parametrize("dims", [2, 3])
@pytest.mark.parametrize("second_batch", [True, False])
def test_make_unlabeled_views_draws_view_box_source_for_each_strong_view(dims, second_batch):
    b = 3
    g0 = torch.Generator().manual_seed(9)
    if dims == 2:
        views, cfg = views_for(2), ImagePerturbConfig(cutmix_p=0.9)
        u, m = torch.rand(b, 1, 16, 16, generator=g0), torch.rand(b, 1, 16, 16, generator=g0)
    else:
        views, cfg = views_for(3, (12, 12, 8)), la_image_cfg(cutmix_p=0.9)
        u, m = torch.rand(b, 1, 12, 12, 8, generator=g0), torch.rand(b, 1, 12, 12, 8, generator=g0)
    m = m if second_batch else None
    gen = torch.Generator().manual_seed(0)
    g = replay(gen)
    out = make_unlabeled_views(u, m, cfg, gen, views)
    assert len(out.strong) == len(out.boxes) == cfg.strong_views == 2
    for i in range(cfg.strong_views):
        s = views.strong(u, cfg, g)
        box = views.boxes(b, u, cfg, g)
        src = views.strong(m, cfg, g) if m is not None else s.roll(1, dims=0)
        assert torch.equal(out.boxes[i], box) and torch.equal(out.strong[i], paste(s, src, box)), i
    assert torch.equal(gen.get_state(), g.get_state())
