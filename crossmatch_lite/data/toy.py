"""toy_acdc and toy_isic as SegData: fixed synthetic patients, seeded labeled subsets.

The data are drawn from a fixed data seed (see toy_acdc.DATA_SEED / toy_isic.DATA_SEED), so
changing the run seed never changes the patients. Only which training patients are labeled
depends on the seed given to load_data: the first n of a seeded permutation, so the sets
for 1, 3 and 7 labeled patients of one seed are nested, like ACDC's official ones.
"""
from __future__ import annotations

import numpy as np

from . import splitting as S
from . import toy_acdc, toy_isic
from .base import Case, SegData
from .resize import resize_mask, resize_rgb, zoom_nearest

# Group counts: small enough to generate in about a second, large enough that the
# unlabeled pool shows most of the variation the labeled few miss.
ACDC_COUNTS = {"train": 40, "val": 6, "test": 10}
ISIC_COUNTS = {"train": 300, "val": 40, "test": 80}


def _ids(prefix: str, counts: dict) -> dict[str, list[str]]:
    out, k = {}, 0
    for part, n in counts.items():
        out[part] = [f"{prefix}{i:03d}" for i in range(k, k + n)]
        k += n
    return out


def _split(name, cfg, seed, ids, fraction_ok) -> dict:
    if getattr(cfg, "split_file", None):
        split = S.read_split_file(cfg.split_file, name)
        known = {i for v in ids.values() for i in v}
        split = S.keep_present(split, known, name, "the built-in toy data")
        S.check_split(split)
        return split
    n = S.labeled_count(cfg.labeled, len(ids["train"]), name, fraction_ok)
    return S.make_split(name, S.seeded_labeled(ids["train"], n, seed), ids["train"], ids["val"], ids["test"],
                        seed=seed, labeled_request=cfg.labeled)


def load_toy_acdc(cfg, seed: int) -> SegData:
    ids = _ids("p", ACDC_COUNTS)
    split = _split("toy_acdc", cfg, seed, ids, fraction_ok=False)
    size = int(cfg.size)

    def case(cid: str) -> Case:
        vol, lab, spacing, _ = toy_acdc.patient(int(cid[1:]))
        return Case(cid, vol[:, None].copy(), lab.copy(), spacing)

    train = [case(c) for c in sorted(split["labeled"] + split["unlabeled"])]
    images = np.stack([zoom_nearest(s[0], size) for c in train for s in c.image])[:, None].astype(np.float16)
    labels = np.stack([zoom_nearest(s, size) for c in train for s in c.label]).astype(np.uint8)
    groups = [c.id for c in train for _ in range(len(c.label))]
    lab_idx, unl_idx = S.slice_indices(groups, split["labeled"])
    return SegData("toy_acdc", 4, 1, list(toy_acdc.CLASS_NAMES), images, labels, lab_idx, unl_idx,
                   [case(c) for c in split["val"]], [case(c) for c in split["test"]], split)


def load_toy_isic(cfg, seed: int) -> SegData:
    ids = _ids("img", ISIC_COUNTS)
    split = _split("toy_isic", cfg, seed, ids, fraction_ok=True)
    size = int(cfg.size)

    def raw(cid: str):
        return toy_isic.image(int(cid[3:]))

    train_ids = sorted(split["labeled"] + split["unlabeled"])
    pairs = [raw(c) for c in train_ids]
    images = (np.stack([resize_rgb(im, size).transpose(2, 0, 1) for im, _ in pairs]) / np.float32(255)).astype(np.float16)
    labels = np.stack([resize_mask(m, size) for _, m in pairs])

    def case(cid: str) -> Case:
        im, m = raw(cid)
        return Case(cid, (im.transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32), m[None].copy(), None)

    lab_idx, unl_idx = S.slice_indices(train_ids, split["labeled"])
    return SegData("toy_isic", 2, 3, list(toy_isic.CLASS_NAMES), images, labels,
                   lab_idx, unl_idx, [case(c) for c in split["val"]], [case(c) for c in split["test"]], split)
