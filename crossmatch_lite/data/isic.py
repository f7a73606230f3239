"""ISIC 2018 Task 1 as prepared by `python -m data_download isic2018`.

    <root>/train.h5, val.h5, test.h5, each with
        images (N, H, W, 3) uint8, masks (N, H, W) uint8 {0, 1}, ids (N,) str, orig_sizes (N, 2)

Which images train, validate and test (one line on stderr says which was used):
  data.split_file        a saved split; any image id in any list (ids are looked up across
                         all three files)
  data.isic_split=carved (default) the committed 7:1:2 split of the training ids,
                         splits/isic_{train,val,test}.txt, labeled 5 % and 10 % from
                         splits/isic_labeled_{5,10}pct.txt (other fractions: by seed). Only
                         train.h5 is read: a Training-only download is enough.
  data.isic_split=official all of train.h5 for training (labeled drawn by seed), the official
                         Validation and Test files (val.h5, test.h5) as val and test
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import h5py
import numpy as np

from . import splitting as S
from .base import Case, SegData
from .cache import file_signature, load_or_build
from .resize import resize_mask, resize_rgb

CLASS_NAMES = ["background", "lesion"]
PARTS = ("train", "val", "test")
# data.labeled as a count of the committed train list -> its committed labeled list.
COMMITTED_LABELED = {70: "isic_labeled_5pct", 140: "isic_labeled_10pct"}


def download_hint(root: Path) -> str:
    return f"python -m data_download isic2018 --dest {root}"


class IsicFiles:
    """Lazy access to the prepared files by image id."""

    def __init__(self, root: Path):
        self.root = root
        self.paths = {p: root / f"{p}.h5" for p in PARTS if (root / f"{p}.h5").is_file()}
        if "train" not in self.paths:
            raise FileNotFoundError(
                f"ISIC 2018 training file {root / 'train.h5'} not found. Download and prepare the data with "
                f"`{download_hint(root)}`, or set data.root to the folder that contains train.h5.")
        self.ids: dict[str, list[str]] = {}
        for part, path in self.paths.items():
            with self._open(path) as f:
                for k in ("images", "masks", "ids"):
                    if k not in f:
                        raise S.DataError(f"{path} has no dataset '{k}'; re-create it with: {download_hint(root)}")
                self.ids[part] = [i.decode() if isinstance(i, bytes) else str(i) for i in f["ids"][()]]
        self.where = {i: (part, n) for part, ids in self.ids.items() for n, i in enumerate(ids)}

    def read(self, ids: list[str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(id, image HxWx3 uint8, mask HxW uint8 {0,1}) in the order asked."""
        out = {}
        for part in PARTS:
            rows = sorted((self.where[i][1], i) for i in ids if self.where[i][0] == part)
            if not rows:
                continue
            with self._open(self.paths[part]) as f:
                idx = [r for r, _ in rows]
                try:
                    imgs, masks = _rows(f["images"], idx), _rows(f["masks"], idx)
                except (OSError, KeyError, ValueError) as e:
                    raise self._unreadable(self.paths[part], e) from None
            for (_, i), im, m in zip(rows, imgs, masks):
                # The converter writes uint8; a float file from elsewhere may hold NaN, which
                # would be trained on and scored without a word.
                S.require_finite(im, f"{self.paths[part]}: image {i}", "re-create the file with: "
                                 f"{download_hint(self.root)}")
                out[i] = (i, im, (m > 0).astype(np.uint8))  # tolerate {0, 255} masks
        return [out[i] for i in ids]

    def _open(self, path: Path) -> h5py.File:
        try:
            return h5py.File(path, "r")
        except OSError as e:
            raise self._unreadable(path, e) from None

    def _unreadable(self, path: Path, e: Exception) -> S.DataError:
        # h5py's messages for a truncated file do not name it: add the name and the fix.
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        return S.DataError(f"{path} cannot be read ({reason}): the file is truncated or corrupt. Delete it "
                           f"and re-create it with: {download_hint(self.root)}")

    def signature(self) -> list:
        return [file_signature(p) for p in self.paths.values()]


def _rows(dataset: h5py.Dataset, idx: list[int]) -> np.ndarray:
    # One read per row (one chunk per image): h5py's list indexing took 68 s for the 2,000
    # real pairs where these reads take under a second.
    return np.stack([dataset[r] for r in idx])


def official_split(files: IsicFiles, labeled: float, seed: int) -> dict:
    """All of train.h5 for training; the official Validation and Test files as val and test."""
    for part in ("val", "test"):
        if part not in files.paths:
            warnings.warn(f"isic2018: {files.root / (part + '.h5')} not found, so the {part} list is empty"
                          f"{' and no checkpoint can be chosen on val' if part == 'val' else ''}. "
                          f"Prepare it with: {download_hint(files.root)}", stacklevel=4)
    train = files.ids["train"]
    n = S.labeled_count(labeled, len(train), "isic2018", fraction_ok=True)
    return S.make_split("isic2018", S.seeded_labeled(train, n, seed), train,
                        files.ids.get("val", []), files.ids.get("test", []),
                        seed=seed, labeled_request=labeled, split_source="official")


def carved_split(labeled: float, seed: int) -> dict:
    """The committed split of the training ids; 5 % and 10 % use the committed labeled lists
    whatever the seed (as ACDC's official lists do), other amounts a seeded draw."""
    train, val, test = (S.read_id_list(f"isic_{part}") for part in PARTS)
    n = S.labeled_count(labeled, len(train), "isic2018", fraction_ok=True)
    lab = S.read_id_list(COMMITTED_LABELED[n]) if n in COMMITTED_LABELED else S.seeded_labeled(train, n, seed)
    return S.make_split("isic2018", lab, train, val, test, seed=seed, labeled_request=labeled,
                        split_source="carved")


def warn_outside(files: IsicFiles, split: dict) -> None:
    """A full download holds 2,594 training images, the committed split 2,000 of them: the
    others are left out, so that numbers stay comparable across machines, and said so."""
    listed = {i for k in S.LISTS for i in split[k]}
    outside = [i for i in files.ids["train"] if i not in listed]
    if outside:
        warnings.warn(f"isic2018: {len(outside)} image(s) of train.h5 are not in the committed split (carved "
                      f"from 2,000 training ids) and are left out (e.g. {outside[0]}); to train on them use "
                      f"data.isic_split=official or a data.split_file", stacklevel=4)


def refill_labeled(split: dict, labeled: float, seed: int) -> dict:
    """Partial data (e.g. a 60-image sample) may hold none of the committed labeled images:
    draw the requested share from the training images that are there, and say so."""
    pool = split["unlabeled"]
    if not pool:
        raise FileNotFoundError("none of the committed ISIC training images is in train.h5; prepare the data "
                                "with `python -m data_download isic2018` or pass data.split_file")
    n = int(labeled) if labeled >= 1 else max(1, int(round(labeled * len(pool))))
    n = min(n, max(1, len(pool) - 1))  # keep one image unlabeled: the unlabeled terms need some
    lab = S.seeded_labeled(pool, n, seed)
    warnings.warn(f"isic2018: none of the committed labeled images is in train.h5; drew {n} of the "
                  f"{len(pool)} training images present instead (seed {seed})", stacklevel=4)
    return {**split, "labeled": lab, "unlabeled": sorted(set(pool) - set(lab))}


def resolve_split(cfg, files: IsicFiles, seed: int) -> dict:
    from_file = getattr(cfg, "split_file", None)
    mode = getattr(cfg, "isic_split", "carved")
    if from_file:
        split = S.read_split_file(from_file, "isic2018")
    elif mode == "official":
        split = official_split(files, cfg.labeled, seed)
    else:
        split = carved_split(cfg.labeled, seed)
        warn_outside(files, split)
    split = S.keep_present(split, set(files.where), "isic2018", str(files.root))
    if not split["labeled"] and not from_file and mode == "carved":
        split = refill_labeled(split, cfg.labeled, seed)
    S.check_split(split)
    print(announce(split, from_file, mode, files), file=sys.stderr)
    return split


def announce(split: dict, from_file, mode: str, files: IsicFiles) -> str:
    """The one line that says which split every number of this run comes from."""
    n = {k: len(split[k]) for k in S.LISTS}
    counts = (f"{n['labeled'] + n['unlabeled']} train ({n['labeled']} labeled), {n['val']} val, "
              f"{n['test']} test")
    if from_file:
        return f"isic2018 split: data.split_file {from_file}: {counts}"
    if mode == "official":
        return f"isic2018 split: official (train.h5 for training, val.h5 and test.h5 as val and test): {counts}"
    unused = [p + ".h5" for p in ("val", "test") if p in files.paths]
    return (f"isic2018 split: carved (the committed 7:1:2 split of the training ids, from train.h5"
            f"{'; ' + ' and '.join(unused) + ' not used' if unused else ''}): {counts}")


def build_train(files: IsicFiles, ids: list[str], size: int):
    n = len(ids)
    images = np.empty((n, 3, size, size), np.float16)
    labels = np.empty((n, size, size), np.uint8)
    for k in range(0, n, 256):  # bounded memory: the full-size train set is ~0.5 GB of uint8
        chunk = ids[k:k + 256]
        for j, (_, im, m) in enumerate(files.read(chunk)):
            images[k + j] = resize_rgb(im, size).transpose(2, 0, 1) / np.float32(255)
            labels[k + j] = resize_mask(m, size)
    return images, labels, {"ids": ids}


def to_case(i: str, im: np.ndarray, m: np.ndarray) -> Case:
    return Case(id=i, image=(im.transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32),
                label=m[None], spacing=None)


def load_isic(cfg, seed: int) -> SegData:
    root = Path(cfg.root).expanduser()
    files = IsicFiles(root)
    split = resolve_split(cfg, files, seed)
    train_ids = sorted(split["labeled"] + split["unlabeled"])
    size = int(cfg.size)

    if getattr(cfg, "cache", False):
        key = {"dataset": "isic2018", "sources": files.signature(), "ids": train_ids}
        images, labels, _ = load_or_build(root / "cache", size, key, lambda: build_train(files, train_ids, size))
    else:
        images, labels, _ = build_train(files, train_ids, size)

    labeled_idx, unlabeled_idx = S.slice_indices(train_ids, split["labeled"])
    return SegData(
        name="isic2018", num_classes=2, in_channels=3, class_names=list(CLASS_NAMES),
        train_images=images, train_labels=labels, labeled_idx=labeled_idx, unlabeled_idx=unlabeled_idx,
        val_cases=[to_case(*r) for r in files.read(split["val"])],
        test_cases=[to_case(*r) for r in files.read(split["test"])],
        split=split)
