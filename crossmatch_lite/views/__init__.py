"""Image-level views: what one iteration feeds the step, for 2D images and 3D volumes.

`views_for(spatial_dims, patch)` picks the one object that knows the data's geometry, once
per run (its `dims` answers "2D or 3D?", crossmatch_lite/dims.py); everything after it (the
trainer's `next_batch`, the CutMix pasting below, the step) is the same for both:

    weak(images, labels, gen)      the weak (geometric) view of a labeled batch
    weak_unlabeled(images, gen)    the weak view of an unlabeled batch, as the step sees it
    strong(u, cfg, gen)            one strong (photometric) view of a batch
    boxes(b, u, cfg, gen)          CutMix boxes for a batch shaped like u
    gather(store, idx)             a training batch from the arrays kept on the device
    bn_images(store, idx)          clean inputs for recomputing BatchNorm statistics
    window(stride, downsample)     the sliding window of evaluation (None: whole images)

The perturbations themselves sit in one module per family, each with its 2D form
(images (B, C, H, W), batch-wise on the device, as the official ACDC loader's
distributions) and its 3D form (volumes (C, X, Y, Z) of different sizes, one at a time,
as the official LA loader) side by side:

    geometric.py    weak views (rot90/flip/rotation; rot/flip + crop), 8-bit rounding, centre crop
    photometric.py  strong views (colour jitter + blur; torchio bias field, gamma, blur)
    mixing.py       CutMix boxes (rectangles; boxes)
    draws.py        the shorthands they draw their random numbers with

Every view of a run is drawn from one generator (`Trainer.aug_gen`), in this order per
iteration: the weak view of the labeled batch, of the unlabeled batch u, of the source
batch m (when there is one), then `make_unlabeled_views` below; within each call, the
order its family's docstring lists.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..config import ImagePerturbConfig
from ..cutmix import paste
from ..dims import Dims
from . import geometric, mixing, photometric


@dataclass
class UnlabeledViews:
    """What one iteration feeds the unlabeled streams."""
    u_w: torch.Tensor  # (B, C, *spatial) weak view of the unlabeled batch
    m_w: torch.Tensor | None  # weak view of the CutMix source batch (None: in-batch source)
    strong: list[torch.Tensor]  # strong views of u, boxes already filled from the source
    boxes: list[torch.Tensor]  # (B, *spatial) CutMix box of each strong view

    def to(self, device: torch.device | str) -> "UnlabeledViews":
        """The same views on another device (a new object; this one is unchanged)."""
        return UnlabeledViews(u_w=self.u_w.to(device), m_w=None if self.m_w is None else self.m_w.to(device),
                              strong=[s.to(device) for s in self.strong], boxes=[b.to(device) for b in self.boxes])


class Views2D:
    """Square images (N, C, H, W) stacked in one tensor on the training device."""
    dims = Dims(2)
    spatial_dims = dims.spatial_dims

    def weak(self, images, labels, gen):
        return geometric.weak_view_2d(images.float(), labels, gen)

    def weak_unlabeled(self, images, gen):
        # The official unlabeled pipeline goes through an 8-bit PIL image.
        return geometric.quantize_8bit(geometric.weak_view_2d(images.float(), None, gen)[0])

    def strong(self, u, cfg: ImagePerturbConfig, gen):
        return photometric.strong_view_2d(u, cfg, gen)

    def boxes(self, b: int, u: torch.Tensor, cfg: ImagePerturbConfig, gen):
        return mixing.cutmix_boxes_2d(b, u.shape[2], cfg, gen, u.device)

    def store(self, arrays: list[np.ndarray], device) -> torch.Tensor:
        return torch.from_numpy(np.array(arrays)).to(device)

    def gather(self, store: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        return store[torch.from_numpy(np.asarray(idx)).to(store.device)]

    def bn_images(self, store: torch.Tensor, idx: np.ndarray) -> torch.Tensor:
        return self.gather(store, idx)

    def window(self, stride, downsample: int) -> None:
        return None  # a slice is evaluated whole


@dataclass
class Views3D:
    """Volumes (C, X, Y, Z) of different sizes, one tensor each; training sees `patch`."""
    patch: tuple[int, int, int]
    dims = Dims(3)
    spatial_dims = dims.spatial_dims

    def weak(self, volumes, labels, gen):
        x, y = geometric.weak_view_3d([v.float() for v in volumes], labels, self.patch, gen)
        return x, y.long()

    def weak_unlabeled(self, volumes, gen):
        return geometric.weak_view_3d([v.float() for v in volumes], None, self.patch, gen)[0]

    def strong(self, u, cfg: ImagePerturbConfig, gen):
        return photometric.strong_view_3d(u, cfg, gen)

    def boxes(self, b: int, u: torch.Tensor, cfg: ImagePerturbConfig, gen):
        return mixing.cutmix_boxes_3d(b, tuple(u.shape[2:]), cfg, gen, u.device)

    def store(self, arrays: list[np.ndarray], device) -> list[torch.Tensor]:
        return [torch.from_numpy(v).to(device) for v in arrays]

    def gather(self, store: list[torch.Tensor], idx: np.ndarray) -> list[torch.Tensor]:
        return [store[i] for i in idx]

    def bn_images(self, store: list[torch.Tensor], idx: np.ndarray) -> torch.Tensor:
        """One centre patch per volume."""
        return torch.stack([geometric.centre_crop(store[i].float(), self.patch) for i in idx])

    def window(self, stride, downsample: int) -> dict:
        return {"patch": self.patch, "stride": tuple(stride), "downsample": downsample}


def views_for(spatial_dims: int, patch=None) -> Views2D | Views3D:
    """The views of 2D images or of 3D volumes cut into `patch` (x, y, z) training crops."""
    return Views3D(tuple(patch)) if Dims(spatial_dims).volumetric else Views2D()


def make_unlabeled_views(u_w: torch.Tensor, m_w: torch.Tensor | None, cfg: ImagePerturbConfig,
                         gen: torch.Generator, views: Views2D | Views3D | None = None) -> UnlabeledViews:
    """Strong views s_i of u and, for each, a box filled with the source's own strong view
    (the source is m's strong view, or with no m the batch rolled by one). `views` defaults
    to the geometry of u_w: (B, C, H, W) images or (B, C, X, Y, Z) volumes.

    Random draws, all from `gen`, for each strong view in turn: the strong view of u
    (photometric.py), its box (mixing.py; nothing drawn with cutmix off), the strong view
    of m (when there is one and cutmix is on). A checkpoint resumes exactly only if this
    order stays (tests/test_views.py holds it), and the official ACDC replay hands in the
    official script's recorded views and boxes, one per call of
    photometric.strong_view_2d and mixing.cutmix_boxes_2d, in this call order."""
    views = views or views_for(Dims.of_tensor(u_w).spatial_dims, u_w.shape[2:])
    n_views = cfg.strong_views if cfg.enabled else 0
    b = u_w.shape[0]
    strong, boxes = [], []
    for _ in range(n_views):
        s = views.strong(u_w, cfg, gen)
        box = views.boxes(b, u_w, cfg, gen)
        if cfg.cutmix:
            src = views.strong(m_w, cfg, gen) if m_w is not None else s.roll(1, dims=0)
            s = paste(s, src, box)
        strong.append(s)
        boxes.append(box)
    return UnlabeledViews(u_w=u_w, m_w=m_w, strong=strong, boxes=boxes)
