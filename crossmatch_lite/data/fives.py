"""FIVES (Jin et al., Scientific Data 2022): 800 colour fundus photographs of 2048 x 2048
pixels with vessel masks, in the layout its figshare release unpacks to:

    <root>/train/Original/<name>.png       600 RGB photographs
    <root>/train/Ground truth/<name>.png   their masks, same name: 0 background, 255 vessel
    <root>/test/Original/, <root>/test/Ground truth/   200 more pairs

Names look like `1_A.png` (number, then A/D/G/N for AMD, diabetic retinopathy, glaucoma,
normal); the reader pairs files by name and needs nothing else of them. <root> may also be
the folder the archive unpacks into, holding one folder that holds train/ and test/.
A mask is read in any PNG mode (grey, RGB, RGBA, palette): a pixel is vessel where its
brightest channel, seen over black (so a transparent pixel is background), is above 127; a
0/1 mask is taken as it is. A mask whose largest value is 2..127 (say saved as 0/2) is
neither, and is refused by name rather than read as empty.

The split: test is test/. FIVES has no val split, so `data.val_count` training images are
held out as val, drawn once with a fixed seed; `data.labeled` of the others (a count, or a
fraction < 1) carry masks, drawn by the run's seed. Training images are resized to
data.size (box filter; masks nearest) and cached in <root>/cache. Val and test are scored
at their native size and read from disk one image at a time: 260 of them held as float32
would take 13 GB. So that a damaged val or test file stops the run before training, not
after it, every such pair is checked when the data are loaded: the image's PNG chunks and
size (cheap), and the mask decoded and its values checked (about 0.1 s a mask).
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
        files = [p for p in images.iterdir() if p.is_file() and not p.name.startswith(".")]
        names = {p.name for p in files if p.suffix.lower() == ".png"}
        others = sorted(p.name for p in files if p.suffix.lower() != ".png")
        if others:  # a JPEG copy of the release would otherwise be skipped without a word
            raise S.DataError(f"fives: {S._short(others, 4)} in {images} are not PNG files; the release's "
                              "photographs are PNG: use the original files or convert these to PNG")
        if not names:
            raise S.DataError(f"fives: {images} holds no PNG photographs; {LAYOUT}")
        unpaired = sorted(names - {p.name for p in masks.iterdir()})
        if unpaired:
            raise S.DataError(f"fives: {S._short(unpaired, 4)} in {images} have no mask of the same name in {masks}")
        out.update({f"{part}/{Path(n).stem}": (images / n, masks / n) for n in sorted(names)})
    return out


def read_pair(image_path: Path, mask_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 photograph and (H, W) uint8 {0, 1} mask."""
    from PIL import Image

    try:
        with Image.open(image_path) as im:
            image = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:  # PIL's errors for a truncated or non-PNG file
        raise unreadable(image_path, e) from None
    mask = read_mask(mask_path)
    if image.shape[:2] != mask.shape:
        raise S.DataError(f"fives: {image_path} is {image.shape[1]}x{image.shape[0]} but its mask "
                          f"{mask_path} is {mask.shape[1]}x{mask.shape[0]}")
    return image, mask


def unreadable(path: Path, e: Exception) -> S.DataError:
    reason = str(e).splitlines()[0] if str(e) else type(e).__name__
    return S.DataError(f"fives: {path} cannot be read ({reason}); replace it with an intact copy of the release")


def read_mask(path: Path) -> np.ndarray:
    """(H, W) uint8 {0, 1} vessel mask from a PNG in any mode."""
    from PIL import Image

    try:
        with Image.open(path) as m:
            rgba = np.asarray(m.convert("RGBA"))
    except (OSError, SyntaxError, ValueError) as e:
        raise unreadable(path, e) from None
    # Public FIVES loaders take channel 0 of the masks, so they may be RGB; the brightest
    # channel keeps a grey, white or single-colour mask alike, and weighting it by alpha
    # reads an RGBA mask as it shows over black: a transparent pixel is background, and an
    # opaque RGBA mask (as some FIVES masks are stored) reads as its colours.
    grey = (rgba[..., :3].max(axis=2).astype(np.uint16) * rgba[..., 3] // 255).astype(np.uint8)
    top = int(grey.max())
    if 1 < top <= 127:
        raise S.DataError(f"fives: mask {path} holds values 0..{top}, neither 0/1 nor 0/255; thresholded at "
                          "127 it would be empty: save it with vessels as 255 (or 1) and background as 0")
    return (grey > 127 if top > 1 else grey).astype(np.uint8)


def check_pairs(ids: list[str], files: dict[str, tuple[Path, Path]]) -> None:
    """Refuse, before training, a val or test pair that evaluation could not read: the
    image's PNG chunks (PIL's verify: a truncated or damaged file) and size against its
    mask's, and the mask's values."""
    from PIL import Image

    for cid in ids:
        image_path, mask_path = files[cid]
        try:
            with Image.open(image_path) as im:
                size = im.size
                im.verify()
        except (OSError, SyntaxError, ValueError) as e:
            raise unreadable(image_path, e) from None
        mask = read_mask(mask_path)
        if size != mask.shape[::-1]:
            raise S.DataError(f"fives: {image_path} is {size[0]}x{size[1]} but its mask {mask_path} is "
                              f"{mask.shape[1]}x{mask.shape[0]}")


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
    if val_count >= len(train) or (labeled >= 1 and labeled > len(train) - val_count):
        # The presets count photographs of the full release (600); on a smaller copy both
        # numbers need setting, so one message names both.
        val = max(1, round(0.1 * len(train)))
        raise S.DataError(
            f"fives: data.val_count={val_count} and data.labeled={labeled:g} do not fit the {len(train)} training "
            f"photographs found (the presets count the release's 600); hold out about 10 % and label some of the "
            f"rest, e.g. --set data.val_count={val} --set data.labeled={max(1, (len(train) - val) // 4)}")
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
    check_pairs(split["val"] + split["test"], files)
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
