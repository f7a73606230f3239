"""A re-creation of one iteration of the official CrossMatch ACDC training loop.

This is NOT the official code, and its timings are not the official code's: it was written
from a description of the official script (AiEson/CrossMatch, ACDC/train_cross_match.py and
its dataset), not taken from it. Two things use it:

* tests/test_views2d.py takes `cutmix_box` as the statement of the official CutMix
  box sampler that the batch-wise one is compared with;
* benchmarks/bench_step.py times the loop next to ours (results key "official", kept for
  the schema) as a per-sample CPU pipeline of the official kind on the same data and
  weights. Read its numbers as such a baseline, not as a measurement of the official
  code; a measurement of the unmodified official script is benchmarks/official_la_speed.py
  (LA, 3D).

What it does:

  data, per sample on the CPU, in the calling process (no loader workers):
    * open the slice's own HDF5 file (`<root>/data/slices/<case>_slice_<k>.h5`) when the
      slice files exist, else take the slice from the in-memory training arrays;
    * weak view: rot90 + flip with p 0.5, else (p 0.25 overall) scipy.ndimage.rotate by an
      integer angle in [-20, 20), order 0; then scipy zoom to the crop size, order 0;
    * labeled samples stop there; each unlabeled sample (of u and of the CutMix source m)
      is converted to an 8-bit PIL image and gets two strong views, each with colour
      jitter with p 0.8 (torchvision's ColorJitter(0.5, 0.5, 0.5, 0.25) on an 'L' image:
      brightness, contrast, saturation in a random order through PIL ImageEnhance, hue is
      a no-op on 'L'), PIL GaussianBlur with sigma ~ U(0.1, 2) with p 0.5, and a CutMix box
      with p 0.5 (area U(0.02, 0.4), aspect U(0.3, 1/0.3), re-drawn until it fits);
  step, on the training device, fp32, no channels-last, no compilation:
    * the strong views take the pixels of m's strong views inside their boxes (boolean
      index assignment, as the official script does);
    * five network calls and the gather-based Dice loss: `benchmarks.reference_step.reference_terms`
      (model(m) and need_fp on cat(x, m) without gradient in train mode, as the official
      script since 2025-12-10; need_fp with gradient on cat(x, u_w) and on cat(s1, s2));
    * backward, SGD (Nesterov, momentum 0.9, weight decay 1e-4) with the poly learning rate.

The random draws use Python's `random` and NumPy's legacy generator as the official code
does (seeded here, so the timing runs are repeatable).
"""
from __future__ import annotations

import random
import re
from pathlib import Path

import h5py
import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageFilter
from scipy import ndimage

from crossmatch_lite.models.unet import UNet

from .reference_step import reference_terms

_SLICE_RE = re.compile(r"^(patient\d{3}_frame0[12])_slice_(\d+)\.h5$")


# ---------------------------------------------------------------- per-sample CPU transforms
def random_rot_flip(img, mask, nprng):
    k = nprng.randint(0, 4)
    img, mask = np.rot90(img, k), np.rot90(mask, k)
    axis = nprng.randint(0, 2)
    return np.flip(img, axis=axis).copy(), np.flip(mask, axis=axis).copy()


def random_rotate(img, mask, nprng):
    angle = nprng.randint(-20, 20)
    img = ndimage.rotate(img, angle, order=0, reshape=False)
    mask = ndimage.rotate(mask, angle, order=0, reshape=False)
    return img, mask


def weak_geometric(img, mask, size, pyrng, nprng):
    if pyrng.random() > 0.5:
        img, mask = random_rot_flip(img, mask, nprng)
    elif pyrng.random() > 0.5:
        img, mask = random_rotate(img, mask, nprng)
    h, w = img.shape
    if (h, w) != (size, size):
        img = ndimage.zoom(img, (size / h, size / w), order=0)
        mask = ndimage.zoom(mask, (size / h, size / w), order=0)
    return img, mask


def color_jitter_l(img: Image.Image, nprng, b=0.5, c=0.5, s=0.5) -> Image.Image:
    """ColorJitter(b, c, s, 0.25) on a single-channel PIL image, in torchvision's manner."""
    factors = [nprng.uniform(1 - b, 1 + b), nprng.uniform(1 - c, 1 + c), nprng.uniform(1 - s, 1 + s)]
    nprng.uniform(-0.25, 0.25)  # hue: drawn, but a no-op on 'L' images
    for op in nprng.permutation(4):
        if op == 0:
            img = ImageEnhance.Brightness(img).enhance(factors[0])
        elif op == 1:
            img = ImageEnhance.Contrast(img).enhance(factors[1])
        elif op == 2:
            img = ImageEnhance.Color(img).enhance(factors[2])
    return img


def blur(img: Image.Image, pyrng, nprng, p=0.5) -> Image.Image:
    if pyrng.random() < p:
        img = img.filter(ImageFilter.GaussianBlur(radius=nprng.uniform(0.1, 2.0)))
    return img


def cutmix_box(size, pyrng, nprng, p=0.5, area=(0.02, 0.4), ratio=(0.3, 1 / 0.3)) -> torch.Tensor:
    mask = torch.zeros(size, size)
    if pyrng.random() > p:
        return mask
    a = nprng.uniform(*area) * size * size
    while True:
        r = nprng.uniform(*ratio)
        bw, bh = int(np.sqrt(a / r)), int(np.sqrt(a * r))
        x, y = nprng.randint(0, size), nprng.randint(0, size)
        if x + bw <= size and y + bh <= size:
            break
    mask[y:y + bh, x:x + bw] = 1
    return mask


def strong_pil(img: Image.Image, pyrng, nprng) -> torch.Tensor:
    if pyrng.random() < 0.8:
        img = color_jitter_l(img, nprng)
    img = blur(img, pyrng, nprng)
    return torch.from_numpy(np.array(img)).unsqueeze(0).float() / 255.0


# ---------------------------------------------------------------- the loop
class OfficialLoop:
    """`prepare()` builds one iteration's batches on the CPU; `step(batch)` trains on them."""

    def __init__(self, cfg, data, device: torch.device, slices_dir: str | Path | None = None,
                 seed: int = 0, model: UNet | None = None):
        self.cfg, self.device = cfg, torch.device(device)
        self.size = int(cfg.data.size)
        t = cfg.train
        self.b_x = t.batch_size
        self.b_u = t.unlabeled_batch_size or t.batch_size
        self.model = (model or UNet(data.in_channels, data.num_classes, cfg.model.channels,
                                    cfg.model.encoder_dropout)).to(self.device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=t.lr, momentum=t.momentum,
                                   nesterov=t.nesterov, weight_decay=t.weight_decay)
        self.pyrng = random.Random(seed)
        self.nprng = np.random.RandomState(seed)
        self.iteration = 0
        self.data = data
        self.files = self._slice_files(data, slices_dir)
        self.source = "hdf5 slice files" if self.files else "in-memory arrays"

    @staticmethod
    def _slice_files(data, slices_dir):
        """{'labeled': [...], 'unlabeled': [...]} slice files of the training split, or None."""
        if slices_dir is None or not Path(slices_dir).is_dir() or not getattr(data, "split", None):
            return None
        by_patient: dict[str, list[Path]] = {}
        for p in sorted(Path(slices_dir).glob("patient*_slice_*.h5")):
            m = _SLICE_RE.match(p.name)
            if m:
                by_patient.setdefault(m.group(1)[:10], []).append(p)
        out = {}
        for part in ("labeled", "unlabeled"):
            ids = data.split.get(part, [])
            out[part] = [f for pid in ids for f in by_patient.get(pid[:10], [])]
        return out if out["labeled"] and out["unlabeled"] else None

    def _read(self, part: str):
        """One raw slice (image float in [0, 1], label) of the labeled or unlabeled part."""
        if self.files is not None:
            path = self.files[part][self.nprng.randint(len(self.files[part]))]
            with h5py.File(path, "r") as f:  # one file opened per sample, as the official loader does
                return f["image"][:], f["label"][:]
        idx = self.data.labeled_idx if part == "labeled" else self.data.unlabeled_idx
        i = int(idx[self.nprng.randint(len(idx))])
        img = np.asarray(self.data.train_images[i, 0], dtype=np.float32)
        return img, np.asarray(self.data.train_labels[i])

    def _labeled_sample(self):
        img, mask = weak_geometric(*self._read("labeled"), self.size, self.pyrng, self.nprng)
        return torch.from_numpy(np.ascontiguousarray(img)).unsqueeze(0).float(), torch.from_numpy(np.array(mask)).long()

    def _unlabeled_sample(self):
        img, mask = self._read("unlabeled")
        img, _ = weak_geometric(img, mask, self.size, self.pyrng, self.nprng)
        pil = Image.fromarray((img * 255).astype(np.uint8))
        weak = torch.from_numpy(np.array(pil)).unsqueeze(0).float() / 255.0
        s1 = strong_pil(pil.copy(), self.pyrng, self.nprng)
        box1 = cutmix_box(self.size, self.pyrng, self.nprng)
        s2 = strong_pil(pil.copy(), self.pyrng, self.nprng)
        box2 = cutmix_box(self.size, self.pyrng, self.nprng)
        return weak, s1, s2, box1, box2

    def prepare(self) -> dict:
        xs = [self._labeled_sample() for _ in range(self.b_x)]
        us = [self._unlabeled_sample() for _ in range(self.b_u)]
        ms = [self._unlabeled_sample() for _ in range(self.b_u)]
        stack = lambda items, j: torch.stack([it[j] for it in items])  # noqa: E731
        return {"x": stack(xs, 0), "y": stack(xs, 1),
                "u_w": stack(us, 0), "s1": stack(us, 1), "s2": stack(us, 2),
                "box1": stack(us, 3), "box2": stack(us, 4),
                "m_w": stack(ms, 0), "m_s1": stack(ms, 1), "m_s2": stack(ms, 2)}

    def step(self, batch: dict) -> float:
        t = self.cfg.train
        lr = t.lr * (1 - self.iteration / t.iterations) ** t.poly_power
        for g in self.opt.param_groups:
            g["lr"] = lr
        b = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        s1, s2 = b["s1"], b["s2"]
        sel1 = b["box1"].unsqueeze(1).expand(s1.shape) == 1
        sel2 = b["box2"].unsqueeze(1).expand(s2.shape) == 1
        s1[sel1] = b["m_s1"][sel1]
        s2[sel2] = b["m_s2"][sel2]
        fp = self.cfg.perturb.feature
        terms = reference_terms(self.model, b["x"], b["y"], b["u_w"], s1, s2, b["box1"], b["box2"], b["m_w"],
                                thresh=self.cfg.pseudo.conf_thresh, eta=self.cfg.distill.eta,
                                rates=(fp.weak_rate, fp.strong_rate))
        loss = terms["loss"]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.iteration += 1
        return loss.item()

    def train_step(self) -> float:
        return self.step(self.prepare())
