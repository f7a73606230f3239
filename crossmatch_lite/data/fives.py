"""FIVES (Jin et al., Scientific Data 2022): 800 colour fundus photographs of 2048 x 2048
pixels with vessel masks, in the layout its figshare release unpacks to:

    <root>/train/Original/<name>.png       600 RGB photographs
    <root>/train/Ground truth/<name>.png   their masks, same name: 0 background, 255 vessel
    <root>/test/Original/, <root>/test/Ground truth/   200 more pairs

Names look like `1_A.png` (number, then A/D/G/N for AMD, diabetic retinopathy, glaucoma,
normal); the reader pairs files by name and needs nothing else of them. <root> may also be
the folder the archive unpacks into, holding one folder that holds train/ and test/.
A mask is read in any PNG mode (grey, RGB, palette): a pixel is vessel where its brightest
channel is above 127 (a 0/1 mask is taken as it is).

The split: test is test/. FIVES has no val split, so `data.val_count` training images are
held out as val, drawn once with a fixed seed; `data.labeled` of the others (a count, or a
fraction < 1) carry masks, drawn by the run's seed. Training images are resized to
data.size (box filter; masks nearest) and cached in <root>/cache. Val and test are scored
at their native size and read from disk one image at a time: 260 of them held as float32
would take 13 GB.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import splitting as S
from .base import Case, SegData
from .cache import file_signature, load_or_build
from .resize import resize_mask, resize_rgb

PARTS = ("train", "test")
IMAGES, MASKS = "Original", "Ground truth"
CLASS_NAMES = ("background", "vessel")
VAL_SEED = 0  # val does not depend on the run seed
LAYOUT = "FIVES needs <root>/train/Original/*.png, <root>/train/Ground truth/*.png and the same under test/"


def find_root(root: Path) -> Path:
    """root itself, or the one folder inside it that holds train/Original (the unzipped release)."""
    if (root / "train" / IMAGES).is_dir():
        return root
    inner = [p for p in (sorted(root.iterdir()) if root.is_dir() else []) if (p / "train" / IMAGES).is_dir()]
    if len(inner) != 1:
        raise S.DataError(f"fives: data.root={root} holds no train/{IMAGES} folder"
                          f"{' (several folders inside it do)' if inner else ''}; {LAYOUT}")
    return inner[0]


def pairs(root: Path) -> dict[str, tuple[Path, Path]]:
    """{"train/1_A": (image, mask), ...} over both parts; an image without its mask is refused."""
    out = {}
    for part in PARTS:
        images, masks = root / part / IMAGES, root / part / MASKS
        if not images.is_dir() or not masks.is_dir():
            raise S.DataError(f"fives: {images} or {masks} is missing; {LAYOUT}")
        names = {p.name for p in images.iterdir() if p.suffix.lower() == ".png"}
        unpaired = sorted(names - {p.name for p in masks.iterdir()})
        if unpaired:
            raise S.DataError(f"fives: {S._short(unpaired, 4)} in {images} have no mask of the same name in {masks}")
        out.update({f"{part}/{Path(n).stem}": (images / n, masks / n) for n in sorted(names)})
    return out


def read_pair(image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 photograph and (H, W) uint8 {0, 1} mask."""
    from PIL import Image

    try:
        with Image.open(image_path) as im, Image.open(mask_path) as m:
            # Public FIVES loaders take channel 0 of the masks, so they may be RGB; the
            # brightest channel keeps a grey, white or single-colour mask alike.
            image, grey = np.asarray(im.convert("RGB")), np.asarray(m.convert("RGB")).max(axis=2)
    except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for a truncated or non-PNG file
        raise S.DataError(f"fives: {image_path} or its mask cannot be read ({e}); replace the pair "
                          "with an intact copy of the release") from None
    if image.shape[:2] != grey.shape:
        raise S.DataError(f"fives: {image_path} is {image.shape[1]}x{image.shape[0]} but its mask "
                          f"{mask_path} is {grey.shape[1]}x{grey.shape[0]}")
    return image, (grey > 127 if grey.max() > 1 else grey).astype(np.uint8)


def to_case(cid: str, image: np.ndarray, mask: np.ndarray) -> Case:
    return Case(cid, (image.transpose(2, 0, 1)[None] / np.float32(255)).astype(np.float32), mask[None], None)


class LazyCases(Sequence):
    """Cases read from disk when asked for, so evaluation holds one native image at a time."""

    def __init__(self, ids: list[str], files: dict[str, tuple[Path, Path]]):
        self.ids, self.files = ids, files

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return to_case(self.ids[i], *read_pair(*self.files[self.ids[i]]))


def default_split(ids: list[str], labeled: float, val_count: int, seed: int) -> dict:
    train = [i for i in ids if i.startswith("train/")]
    if val_count >= len(train):
        raise S.DataError(f"fives: data.val_count={val_count}, but there are {len(train)} training images; use fewer")
    val = S.seeded_labeled(train, val_count, VAL_SEED)
    rest = sorted(set(train) - set(val))
    n = S.labeled_count(labeled, len(rest), "fives", fraction_ok=True)
    return S.make_split("fives", S.seeded_labeled(rest, n, seed), rest, val,
                        [i for i in ids if i.startswith("test/")], seed=seed, labeled_request=labeled)


def build_train(files: dict, ids: list[str], size: int):
    images = np.empty((len(ids), 3, size, size), np.float16)
    labels = np.empty((len(ids), size, size), np.uint8)
    for k, cid in enumerate(ids):
        image, mask = read_pair(*files[cid])
        images[k] = resize_rgb(image, size).transpose(2, 0, 1) / np.float32(255)
        labels[k] = resize_mask(mask, size)
    return images, labels, {"ids": ids}


def load_fives(cfg, seed: int) -> SegData:
    root = find_root(Path(cfg.root).expanduser())
    files = pairs(root)
    if cfg.split_file:
        split = S.keep_present(S.read_split_file(cfg.split_file, "fives"), set(files), "fives", str(root))
        S.check_split(split)
    else:
        split = default_split(sorted(files), cfg.labeled, cfg.val_count, seed)
    train_ids, size = sorted(split["labeled"] + split["unlabeled"]), int(cfg.size)
    build = lambda: build_train(files, train_ids, size)  # noqa: E731
    if cfg.cache:
        sources = [file_signature(p) for c in train_ids for p in files[c]]
        key = {"dataset": "fives", "ids": train_ids, "sources": sources}
        images, labels, _ = load_or_build(root / "cache", size, key, build)
    else:
        images, labels, _ = build()
    lab_idx, unl_idx = S.slice_indices(train_ids, split["labeled"])
    return SegData("fives", 2, 3, list(CLASS_NAMES), images, labels, lab_idx, unl_idx,
                   LazyCases(split["val"], files), LazyCases(split["test"], files), split)
