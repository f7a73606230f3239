"""Pair, resize and pack ISIC 2018 Task 1 images and masks into one HDF5 per split.

Layout of ``<split>.h5`` (what the training code reads):
  images      (N, S, S, 3) uint8   RGB, resized with an area (box) filter
  masks       (N, S, S)    uint8   {0, 1}, resized nearest-neighbour, then binarised
  ids         (N,)         str     "ISIC_0000000", sorted
  orig_sizes  (N, 2)       int32   (H, W) of the source image
One chunk per image, so reading a random sample costs one chunk read.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
from PIL import Image
from tqdm import tqdm

from .archive import MemberError, open_zip, read_member
from .errors import DataDownloadError
from .fsutil import atomic_path, check_free_space

IMAGE_RE = re.compile(r"(?:^|/)(ISIC_\d+)\.jpg$", re.IGNORECASE)
MASK_RE = re.compile(r"(?:^|/)(ISIC_\d+)_segmentation\.png$", re.IGNORECASE)
# Measured on the real ISIC pairs (docs/data.md): gzip on the images
# saves ~30% but cuts random reads from ~11000 to ~700 pairs/s, so images stay
# raw; binary masks shrink ~50x with gzip level 1 at almost no read cost.
MASK_COMPRESSION = {"compression": "gzip", "compression_opts": 1}


def index(zf: zipfile.ZipFile, pattern: re.Pattern) -> dict[str, str]:
    found = {}
    for info in zf.infolist():
        m = pattern.search(info.filename)
        if m and not info.is_dir():
            found[m.group(1)] = info.filename
    return found


def pair(images: dict[str, str], masks: dict[str, str]) -> tuple[list[str], list[str], list[str]]:
    ids = sorted(images.keys() & masks.keys())
    return ids, sorted(images.keys() - masks.keys()), sorted(masks.keys() - images.keys())


def prepare(image_bytes: bytes, mask_bytes: bytes, size: int, name: str):
    """Decode one pair; return (image SxSx3, mask SxS in {0,1}, (H, W))."""
    try:
        with Image.open(io.BytesIO(image_bytes)) as im:
            im = im.convert("RGB")
            orig = (im.height, im.width)
            image = np.asarray(im.resize((size, size), Image.Resampling.BOX), dtype=np.uint8)
        with Image.open(io.BytesIO(mask_bytes)) as mk:
            mk = mk.convert("L")
            if (mk.height, mk.width) != orig:
                raise DataDownloadError(
                    f"{name}: mask is {mk.height}x{mk.width} but image is {orig[0]}x{orig[1]}")
            mask = np.asarray(mk.resize((size, size), Image.Resampling.NEAREST)) > 127
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DataDownloadError(f"{name}: cannot decode image or mask: {e}") from None
    return image, mask.astype(np.uint8), orig


def convert_split(image_zip: Path, mask_zip: Path, out: Path, size: int, *,
                  progress: bool = True, log: Callable[[str], None] = print,
                  attrs: dict | None = None,
                  on_item: Callable[[int], None] | None = None) -> dict:
    """Write ``out`` atomically; return a summary (count and unpaired ids)."""
    # Official images reach 6688 x 4439 (30 Mpx), under Pillow's bomb limit
    # only by a little; decoding one pair at a time keeps memory flat.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, 60_000_000)
    with open_zip(image_zip) as zi, open_zip(mask_zip) as zm:
        images, masks = index(zi, IMAGE_RE), index(zm, MASK_RE)
        ids, no_mask, no_image = pair(images, masks)
        if no_mask:
            log(f"{out.name}: skipping {len(no_mask)} image(s) without a mask: "
                f"{', '.join(no_mask[:10])}{' ...' if len(no_mask) > 10 else ''}")
        if no_image:
            log(f"{out.name}: skipping {len(no_image)} mask(s) without an image: "
                f"{', '.join(no_image[:10])}{' ...' if len(no_image) > 10 else ''}")
        if not ids:
            raise DataDownloadError(
                f"no ISIC_<id>.jpg / ISIC_<id>_segmentation.png pairs in {image_zip.name} and "
                f"{mask_zip.name}; are these the official Task 1 zips?")
        n = len(ids)
        check_free_space(out.parent, n * size * size * 4, f"writing {out.name}")
        with atomic_path(out) as tmp, h5py.File(tmp, "w") as f:
            # Resizable along N: a pair that fails to decode is skipped, not fatal.
            d_img = f.create_dataset("images", (n, size, size, 3), np.uint8,
                                     chunks=(1, size, size, 3), maxshape=(None, size, size, 3))
            d_msk = f.create_dataset("masks", (n, size, size), np.uint8, chunks=(1, size, size),
                                     maxshape=(None, size, size), **MASK_COMPRESSION)
            d_orig = f.create_dataset("orig_sizes", (n, 2), np.int32, maxshape=(None, 2))
            kept, broken = [], []
            for k, i in enumerate(tqdm(ids, total=n, desc=out.name, unit="img", disable=not progress)):
                try:
                    # A damaged member costs its pair, not the split: the rest still converts.
                    jpg = read_member(zi, image_zip, images[i])
                    png = read_member(zm, mask_zip, masks[i])
                    item = prepare(jpg, png, size, i)
                except (MemberError, DataDownloadError) as e:
                    log(f"{out.name}: skipping {e}")
                    broken.append(i)
                    continue
                j = len(kept)
                d_img[j], d_msk[j], d_orig[j] = item
                kept.append(i)
                if on_item is not None:
                    on_item(k)
            if not kept:
                raise DataDownloadError(f"none of the {n} pairs for {out.name} could be decoded; the "
                                        f"zips are damaged: delete {image_zip} and {mask_zip} and re-run")
            for d in (d_img, d_msk, d_orig):
                d.resize(len(kept), axis=0)
            f.create_dataset("ids", data=np.array(kept, dtype=object),
                             dtype=h5py.string_dtype("utf-8"))
            f.attrs["size"] = size
            f.attrs["skipped"] = json.dumps(
                {"no_mask": no_mask, "no_image": no_image, "undecodable": broken})
            for key, value in (attrs or {}).items():
                f.attrs[key] = value
    return {"pairs": len(kept), "no_mask": no_mask, "no_image": no_image, "undecodable": broken}
