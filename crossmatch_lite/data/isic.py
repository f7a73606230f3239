"""ISIC 2018 Task 1 as prepared by `python -m data_download isic2018`.

    <root>/train.h5, val.h5, test.h5, each with
        images (N, H, W, 3) uint8, masks (N, H, W) uint8 {0, 1}, ids (N,) str, orig_sizes (N, 2)

By default labeled/unlabeled come from train.h5 and val/test from their own files; a split
file may place any image id in any list (ids are looked up across all three files).
"""
from __future__ import annotations

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
                idx = [r for r, _ in rows]  # h5py wants increasing indices
                try:
                    imgs, masks = f["images"][idx], f["masks"][idx]
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


def default_split(files: IsicFiles, labeled: float, seed: int) -> dict:
    for part in ("val", "test"):
        if part not in files.paths:
            warnings.warn(f"isic2018: {files.root / (part + '.h5')} not found, so the {part} list is empty"
                          f"{' and no checkpoint can be chosen on val' if part == 'val' else ''}. "
                          f"Prepare it with: {download_hint(files.root)}", stacklevel=3)
    train = files.ids["train"]
    n = S.labeled_count(labeled, len(train), "isic2018", fraction_ok=True)
    return S.make_split("isic2018", S.seeded_labeled(train, n, seed), train,
                        files.ids.get("val", []), files.ids.get("test", []),
                        seed=seed, labeled_request=labeled)


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
    from_file = getattr(cfg, "split_file", None)
    split = S.read_split_file(from_file, "isic2018") if from_file else default_split(files, cfg.labeled, seed)
    split = S.keep_present(split, set(files.where), "isic2018", str(root))
    S.check_split(split)
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
