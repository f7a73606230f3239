"""The views of one iteration (crossmatch_lite/views/__init__.py): make_unlabeled_views
composes the family modules in the order its docstring states, for 2D images and 3D
volumes, with a second source batch and with the batch rolled by one. Exact resume
depends on that order; the resume tests run the same code on both sides and the official
ACDC replay (tests/test_official_replay.py) keeps its views and boxes in separate
queues, so neither notices the views and boxes drawn in another order: this test does.
The views objects of views_for hand the family functions the batch, its labels, geometry,
device and the run's generator, keep the training set on the device, and give the BatchNorm
inputs and the evaluation window."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from crossmatch_lite.config import ImagePerturbConfig
from crossmatch_lite.cutmix import paste
from crossmatch_lite.views import UnlabeledViews, geometric, make_unlabeled_views, views_for
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


def test_views_on_another_device_are_a_new_object_with_every_tensor_moved():
    """UnlabeledViews.to moves u_w, m_w, each strong view and each box (shapes kept, in
    order); the views it was called on stay where they were. Moved to the meta device,
    which every torch build has."""
    u = torch.rand(2, 1, 6, 6)
    strong = [torch.rand(2, 1, 6, 6), torch.rand(2, 1, 6, 6) + 1]
    boxes = [torch.zeros(2, 6, 6), torch.ones(2, 6, 6)]
    for m in (torch.rand(2, 1, 6, 6), None):
        views = UnlabeledViews(u_w=u, m_w=m, strong=strong, boxes=boxes)
        moved = views.to("meta")
        assert moved is not views and views.u_w is u and views.m_w is m
        assert moved.u_w.device.type == "meta" and moved.u_w.shape == u.shape
        assert moved.m_w is None if m is None else (moved.m_w.device.type == "meta" and moved.m_w.shape == m.shape)
        for got, want in ((moved.strong, strong), (moved.boxes, boxes)):
            assert [t.device.type for t in got] == ["meta", "meta"]
            assert [t.shape for t in got] == [t.shape for t in want]
        # Moving back keeps the values, each view and box in its place.
        back = views.to(torch.float64)
        assert torch.equal(back.u_w, u.double()) and all(
            torch.equal(a, b.double()) for a, b in zip(back.strong + back.boxes, strong + boxes))
        assert back.m_w is None if m is None else torch.equal(back.m_w, m.double())


def test_2d_store_stacks_the_images_and_gathers_the_indexed_ones():
    images = [np.full((1, 4, 4), i, np.float16) for i in range(5)]
    views = views_for(2)
    store = views.store(images, "cpu")
    assert isinstance(store, torch.Tensor) and store.shape == (5, 1, 4, 4) and store.dtype == torch.float16
    assert torch.equal(store, torch.from_numpy(np.stack(images)))
    idx = np.array([3, 0, 3])
    for batch in (views.gather(store, idx), views.bn_images(store, idx)):
        assert batch[:, 0, 0, 0].tolist() == [3.0, 0.0, 3.0] and batch.shape == (3, 1, 4, 4)
    assert views.window((5, 5, 5), 2) is None
    assert views.store(images, "meta").device.type == "meta"


@pytest.mark.parametrize("dims", [2, 3])
def test_weak_views_and_boxes_are_the_family_functions_on_the_batch_device(dims):
    """Views2D/Views3D hand the family functions the run's generator, the labels and the
    batch's geometry: the same numbers as calling them directly, and boxes made on the
    device of the batch (the meta device here: no data needed)."""
    torch.manual_seed(5)  # a view drawn from torch's global generator instead would differ
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)).half()
    labels = (images[:, 0] > 0.5).to(torch.uint8)
    views, cfg = views_for(dims, (8, 8, 4)), ImagePerturbConfig(cutmix_p=1.0)
    if dims == 2:
        x, y = views.weak(images, labels, torch.Generator().manual_seed(1))
        x_ref, y_ref = geometric.weak_view_2d(images.float(), labels, torch.Generator().manual_seed(1))
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)
        u = views.weak_unlabeled(images, torch.Generator().manual_seed(1))
        assert torch.equal(u, geometric.quantize_8bit(x_ref))
        u_meta = torch.empty(3, 1, 8, 8, device="meta")
    else:
        u_meta = torch.empty(3, 1, 8, 8, 4, device="meta")
    boxes = views.boxes(3, u_meta, cfg, torch.Generator().manual_seed(2))
    assert boxes.device.type == "meta" and boxes.shape == (3, *u_meta.shape[2:])


def test_3d_views_weak_views_store_centre_patches_and_window():
    """Views3D: the weak views are geometric.weak_view_3d's on float volumes (labels long);
    the store keeps each volume, the BatchNorm inputs are the volumes' centre patches (float),
    and the window is the patch, the stride and the downsampling of evaluation."""
    patch = (4, 4, 2)
    views = views_for(3, patch)
    g = torch.Generator().manual_seed(0)
    vols = [torch.randint(0, 100, (1, 6, 5, 3), generator=g, dtype=torch.int16) for _ in range(3)]
    labels = [torch.randint(0, 2, (6, 5, 3), generator=g, dtype=torch.uint8) for _ in range(3)]
    x, y = views.weak(vols, labels, torch.Generator().manual_seed(1))
    x_ref, y_ref = geometric.weak_view_3d([v.float() for v in vols], labels, patch, torch.Generator().manual_seed(1))
    assert x.dtype == torch.float32 and y.dtype == torch.long
    assert torch.equal(x, x_ref) and torch.equal(y, y_ref.long())
    u = views.weak_unlabeled(vols, torch.Generator().manual_seed(1))
    assert u.dtype == torch.float32 and torch.equal(u, x_ref)

    arrays = [v.numpy() for v in vols]
    store = views.store(arrays, "cpu")
    assert isinstance(store, list) and len(store) == 3 and all(torch.equal(s, v) for s, v in zip(store, vols))
    assert [t.device.type for t in views.store(arrays, "meta")] == ["meta"] * 3
    assert [t.shape for t in views.gather(store, np.array([2, 0]))] == [vols[2].shape, vols[0].shape]
    assert all(a is store[i] for a, i in zip(views.gather(store, np.array([2, 0])), (2, 0)))
    bn = views.bn_images(store, np.array([2, 0]))
    assert bn.dtype == torch.float32 and bn.shape == (2, 1, *patch)
    assert torch.equal(bn[0], geometric.centre_crop(vols[2].float(), patch))
    assert torch.equal(bn[1], geometric.centre_crop(vols[0].float(), patch))
    assert views.window([3, 3, 1], 2) == {"patch": patch, "stride": (3, 3, 1), "downsample": 2}


@pytest.mark.parametrize("dims", [2, 3])
def test_make_unlabeled_views_reads_the_geometry_off_the_batch_and_keeps_its_inputs(dims):
    """Without `views`, the views are those of u_w's own geometry (3D: its shape is the
    patch); u_w and m_w come back as given; with perturb.image.enabled off, no strong view."""
    g0 = torch.Generator().manual_seed(9)
    if dims == 2:
        cfg, shape, patch = ImagePerturbConfig(cutmix_p=0.9), (3, 1, 16, 16), None
    else:
        cfg, shape, patch = la_image_cfg(cutmix_p=0.9), (3, 1, 12, 12, 8), (12, 12, 8)
    u, m = torch.rand(shape, generator=g0), torch.rand(shape, generator=g0)
    given = make_unlabeled_views(u, m, cfg, torch.Generator().manual_seed(0), views_for(dims, patch))
    default = make_unlabeled_views(u, m, cfg, torch.Generator().manual_seed(0))
    assert default.u_w is u and default.m_w is m and len(default.strong) == len(default.boxes) == 2
    assert all(torch.equal(a, b) for a, b in zip(given.strong + given.boxes, default.strong + default.boxes))
    off = make_unlabeled_views(u, m, dataclasses.replace(cfg, enabled=False), torch.Generator().manual_seed(0))
    assert off.strong == [] and off.boxes == [] and off.u_w is u and off.m_w is m
