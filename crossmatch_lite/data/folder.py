"""`folder`: your own images and masks, from a plain directory.

    ROOT/images/<id>.png|.jpg|.jpeg|.nii|.nii.gz    one case per file
    ROOT/masks/<id>.png|.nii|.nii.gz                 same <id>; pixel value = class id (0 = background)
    ROOT/classes.txt                                 optional: one class name per line, background first

A PNG/JPEG pair is one 2D case (like an ISIC image); a NIfTI pair is one volume, trained
slice by slice and scored in 3D (like an ACDC volume), with the spacing from its header.
Images are scaled to [0, 1] (8-bit: /255, anything else: min-max per case). Masks whose
values are exactly 0 and 255 across the dataset (black/white images) are read as binary
0/1; other class ids must run 0, 1, 2, ... without gaps unless classes.txt names them all.

The split: 10 % of the cases for validation and 20 % for test (at least one each), drawn
with a fixed seed so that every run of a dataset is scored on the same cases; `data.labeled`
training cases (a count, or a fraction < 1), chosen with the run's seed, carry masks, the
others are unlabeled. `data.split_file` (a run's split.json) fixes every list instead.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.ndimage import zoom

from . import splitting as S
from . import toy_acdc
from .base import Case, SegData
from .resize import zoom_nearest

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".nii", ".nii.gz")
MASK_SUFFIXES = (".png", ".nii", ".nii.gz")
SPLIT_SEED = 0  # val/test cases do not depend on the run seed
VAL_FRACTION, TEST_FRACTION = 0.1, 0.2
CHANNELS = {1: "grayscale", 2: "grayscale + alpha, mode LA", 3: "RGB"}
LAYOUT = ("a folder dataset needs ROOT/images/<id>.png|jpg|nii.gz and ROOT/masks/<id>.png|nii.gz "
          "(same <id>, pixel value = class id), optionally ROOT/classes.txt")


def _stem(p: Path) -> str:
    return p.name[: -len(".nii.gz")] if p.name.endswith(".nii.gz") else p.stem


def _files(folder: Path, suffixes) -> dict[str, Path]:
    found = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(suffixes):
            if _stem(p) in found:  # e.g. case000.png beside case000.PNG or case000.nii.gz
                raise S.DataError(f"folder: two files for case '{_stem(p)}': {found[_stem(p)]} and {p}; "
                                  "keep one of them (or rename one to another case id)")
            found[_stem(p)] = p
    return found


# What the readers raise for a truncated, damaged or non-image file (PIL's
# UnidentifiedImageError is an OSError; nibabel's ImageFileError is a plain Exception).
def unreadable_errors() -> tuple:
    import zlib

    from nibabel.filebasedimages import ImageFileError

    return OSError, EOFError, SyntaxError, ValueError, zlib.error, ImageFileError


REMOVE_CASE = "replace it with an intact copy or remove the case"


def _read(path: Path, mask: bool, fix: str = REMOVE_CASE) -> tuple[np.ndarray, tuple | None]:
    """(Z, C, H, W) float32 image or (Z, H, W) mask, and the (z, y, x) spacing if known.
    A file that cannot be read is a DataError naming it and saying `fix`: as a bare OSError
    the command line would blame the run folder it writes to."""
    from PIL import Image

    try:
        return _read_file(path, mask)
    except S.DataError:
        raise
    except Image.DecompressionBombError as e:
        raise S.DataError(f"folder: {path} is larger than PIL opens safely ({e}); shrink it (training resizes "
                          "to data.size anyway) or, if you trust it, raise PIL.Image.MAX_IMAGE_PIXELS") from None
    except unreadable_errors() as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise S.DataError(f"folder: {path} cannot be read ({reason}): it is truncated, damaged or not an image; "
                          f"{fix}") from None


def _read_file(path: Path, mask: bool) -> tuple[np.ndarray, tuple | None]:
    if path.name.lower().endswith((".nii", ".nii.gz")):
        import nibabel as nib

        img = nib.load(str(path))
        arr = np.asanyarray(img.dataobj)
        if arr.ndim > 3 and all(n == 1 for n in arr.shape[3:]):  # (x, y, z, 1): one frame saved as 4D
            arr = arr.reshape(arr.shape[:3])
        if arr.ndim == 2:
            arr = arr[..., None]
        if arr.ndim != 3:
            raise S.DataError(f"folder: {path} has {arr.ndim} dimensions; save a 2D image or a 3D volume")
        arr = np.transpose(arr, (2, 1, 0))  # (x, y, z) -> (z, y, x), as the ACDC reader does
        zooms = tuple(float(v) for v in img.header.get_zooms()[:3])
        spacing = (zooms[2], zooms[1], zooms[0]) if len(zooms) == 3 else None
        return (arr if mask else arr[:, None]), spacing
    from PIL import Image

    with Image.open(path) as im:
        if mask:
            return np.asarray(im)[None], None
        # LA (grayscale + alpha) stays 2 channels, so mixing it with L or RGB is refused by name.
        arr = np.asarray(im.convert("RGB") if im.mode in ("P", "RGBA", "CMYK", "YCbCr") else im)
    if im.mode == "P" and (arr == arr[..., :1]).all():  # a grey palette is one channel, not RGB
        arr = arr[..., 0]
    return (arr[None, None] if arr.ndim == 2 else arr.transpose(2, 0, 1)[None]), None


def _scaled(image: np.ndarray) -> np.ndarray:
    if image.dtype == np.uint8:
        return image.astype(np.float32) / 255.0
    # In float64, then float32: the values the ACDC conversion stores, so a NIfTI frame read
    # here (by `predict`, say) is the array the prepared ACDC volume holds.
    image = image.astype(np.float64)
    lo, hi = float(image.min()), float(image.max())
    return ((image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)).astype(np.float32)


def read_image(path: Path, fix: str = REMOVE_CASE) -> tuple[np.ndarray, tuple | None]:
    """An image file as this dataset reads it (PNG/JPEG/... or NIfTI): (Z, C, H, W) float32
    in [0, 1] (8-bit scaled by 1/255, other types min-max per file) and its (z, y, x)
    spacing, or None. Also what `predict` feeds a 2D run; `fix` is what an unreadable
    file's message advises."""
    image, spacing = _read(path, mask=False, fix=fix)
    S.require_finite(image, f"{path}", "replace them (e.g. with the background value)")
    return _scaled(image), spacing


def _mask(label: np.ndarray, path: Path) -> np.ndarray:
    if label.ndim != 3:
        raise S.DataError(f"folder: mask {path} has {label.shape[-1]} channels (an RGB or alpha image?); save it "
                          "as a single-channel 8-bit PNG (mode L or P) or NIfTI whose values are class ids")
    if not np.issubdtype(label.dtype, np.integer):
        if not np.all(np.equal(np.mod(label, 1), 0)):
            raise S.DataError(f"folder: mask {path} holds non-integer values; save it with class ids 0, 1, 2, ...")
    if label.min() < 0 or label.max() > 255:
        raise S.DataError(f"folder: mask {path} holds values outside 0..255 ({label.min()}..{label.max()}); "
                          "save it with class ids 0, 1, 2, ...")
    return label.astype(np.uint8)


def _load_case(cid: str, image_path: Path, mask_path: Path) -> Case:
    image, spacing = _read(image_path, mask=False)
    # Before the min-max scaling, where one NaN voxel would silently zero the whole volume.
    S.require_finite(image, f"folder: image {image_path}", "replace them (e.g. with the background value) "
                     "or remove the case")
    raw_label = _read(mask_path, mask=True)[0]
    S.require_finite(raw_label, f"folder: mask {mask_path}", "save it with class ids 0, 1, 2, ...")
    label = _mask(raw_label, mask_path)
    _same_grid(image_path, mask_path)
    if image.shape[0] != label.shape[0] or image.shape[2:] != label.shape[1:]:
        raise S.DataError(f"folder: image {image_path} is {_size(image.shape[2:], image.shape[0])} but its mask "
                          f"{mask_path} is {_size(label.shape[1:], label.shape[0])}; save the mask at the "
                          "image's size")
    return Case(cid, _scaled(image), label, spacing)


def _same_grid(image_path: Path, mask_path: Path) -> None:
    """A NIfTI mask must lie on its image's voxel grid: with another affine (an axis flipped,
    say) its voxels label other anatomy, and the arrays alone do not show it."""
    if not all(p.name.lower().endswith((".nii", ".nii.gz")) for p in (image_path, mask_path)):
        return
    import nibabel as nib

    a, b = nib.load(str(image_path)).affine, nib.load(str(mask_path)).affine
    if not np.allclose(a, b, atol=1e-4 * max(1.0, float(np.abs(a).max()))):
        raise S.DataError(f"folder: mask {mask_path} is not on its image's voxel grid (affine "
                          f"{np.round(b, 3).tolist()} vs the image's {np.round(a, 3).tolist()}); resample or "
                          "re-save the mask with the image's affine (e.g. in 3D Slicer or with nibabel)")


def _size(hw, slices: int) -> str:
    return f"{hw[1]}x{hw[0]} pixels" + (f" x {slices} slices" if slices > 1 else "")


def _read_names(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8-sig")  # tolerate the BOM some editors write
    except UnicodeDecodeError as e:
        raise S.DataError(f"folder: {path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}); "
                          "save it as UTF-8, one class name per line") from None
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _num_classes(cases: dict[str, Case], masks: dict[str, Path], class_names: list[str] | None,
                 names_file: Path) -> int:
    """The model's class count from the class ids the masks use; binary masks saved as 0/255
    are turned into 0/1 here (in place), and ids with gaps need classes.txt to name them."""
    used = {cid: set(np.unique(c.label).tolist()) for cid, c in cases.items()}
    ids = set().union(*used.values())
    # A black/white mask image stores the foreground as 255: read as a class id, it would
    # give a 256-class model. Exactly {0, 255} over the whole dataset means binary, unless
    # classes.txt really names 256 classes.
    if ids == {0, 255} and (class_names is None or len(class_names) <= 255):
        for c in cases.values():
            c.label = (c.label > 0).astype(np.uint8)
        used = {cid: {min(v, 1) for v in u} for cid, u in used.items()}
        ids = {0, 1}
    top = max(ids)
    where = masks[next(cid for cid, u in used.items() if top in u)]
    if class_names is not None:
        if top >= len(class_names):
            raise S.DataError(f"folder: mask {where} holds class id {top} but {names_file} names "
                              f"{len(class_names)} classes (ids 0..{len(class_names) - 1}); name every class "
                              "there, background first, or fix the mask")
        return len(class_names)
    # Ids with gaps (say 0, 1, 200) are most likely not class ids at all; a model with 201
    # outputs, 198 of them never trained, is not what anyone meant.
    unused = sorted(set(range(1, top + 1)) - ids)
    if unused:
        raise S.DataError(
            f"folder: the masks use class ids {', '.join(map(str, sorted(ids)[:8]))}{', ...' if len(ids) > 8 else ''}"
            f" with gaps ({len(unused)} unused id(s) below {top}, which {where} holds); renumber the classes "
            f"0, 1, 2, ... or name all {top + 1} classes in {names_file} (one per line, background first)")
    return max(2, top + 1)


def _resized(case: Case, size: int) -> tuple[np.ndarray, np.ndarray]:
    _, _, h, w = case.image.shape
    images = zoom(case.image, (1, 1, size / h, size / w), order=1) if (h, w) != (size, size) else case.image
    labels = np.stack([zoom_nearest(s, size) for s in case.label])
    return np.clip(images, 0, 1).astype(np.float16), labels.astype(np.uint8)


def _default_split(ids: list[str], labeled: float, seed: int, where: Path) -> dict:
    n = len(ids)
    if n < 4:
        raise S.DataError(f"folder: {n} case(s) in {where}; the default split needs at least 4 (labeled, "
                          "unlabeled, val and test); add cases or pass data.split_file")
    order = np.random.default_rng(SPLIT_SEED).permutation(n)
    n_val, n_test = max(1, round(VAL_FRACTION * n)), max(1, round(TEST_FRACTION * n))
    val = [ids[i] for i in order[:n_val]]
    test = [ids[i] for i in order[n_val:n_val + n_test]]
    train = sorted(ids[i] for i in order[n_val + n_test:])
    k = S.labeled_count(labeled, len(train), "folder", fraction_ok=True)
    return S.make_split("folder", S.seeded_labeled(train, k, seed), train, val, test, seed=seed,
                        labeled_request=labeled)


def load_folder(cfg, seed: int) -> SegData:
    root = Path(cfg.root)
    if not (root / "images").is_dir() or not (root / "masks").is_dir():
        raise FileNotFoundError(f"folder: data.root={root} has no images/ and masks/ folders; {LAYOUT}")
    images, masks = _files(root / "images", IMAGE_SUFFIXES), _files(root / "masks", MASK_SUFFIXES)
    if not images:
        raise FileNotFoundError(f"folder: no image files in {root / 'images'}; {LAYOUT}")
    no_mask, no_image = sorted(set(images) - set(masks)), sorted(set(masks) - set(images))
    if no_mask or no_image:
        parts = [f"{what}: {S._short([f'{i} ({files[i]})' for i in ids], 4)}"
                 for what, ids, files in (("images without a mask", no_mask, images),
                                          ("masks without an image", no_image, masks)) if ids]
        jpeg = sorted(p.name for p in (root / "masks").glob("*") if p.suffix.lower() in (".jpg", ".jpeg")
                      and p.stem in no_mask)
        why = (f" ({S._short(jpeg, 3)}: JPEG masks are not read, as lossy compression changes class ids at "
               "the edges; save them as PNG or NIfTI)") if jpeg else ""
        raise S.DataError(f"folder: {'; '.join(parts)}{why}; every image needs a mask with the same name in "
                          f"{root / 'masks'}: add it, or remove the unpaired file")
    ids = sorted(images)
    if getattr(cfg, "split_file", None):
        split = S.keep_present(S.read_split_file(cfg.split_file, "folder"), set(ids), "folder", str(root))
        S.check_split(split)
    else:
        split = _default_split(ids, cfg.labeled, seed, root / "images")
    cases = {cid: _load_case(cid, images[cid], masks[cid])
             for cid in sorted({c for k in S.LISTS for c in split[k]})}
    channels = {c.image.shape[1] for c in cases.values()}
    if len(channels) > 1:
        kinds = {k: [images[cid].name for cid, c in cases.items() if c.image.shape[1] == k] for k in sorted(channels)}
        raise S.DataError("folder: images mix " + " and ".join(
            f"{k} channel{'s' if k > 1 else ''} ({CHANNELS.get(k, 'other')}: {S._short(v, 3)})"
            for k, v in kinds.items())
            + f" in {root / 'images'}; convert them all to grayscale (mode L) or all to RGB")
    names_file = root / "classes.txt"
    class_names = _read_names(names_file) if names_file.exists() else None
    num_classes = _num_classes(cases, masks, class_names, names_file)
    if class_names is None:
        class_names = ["background"] + [f"class {k}" for k in range(1, num_classes)]
    train_ids = sorted(split["labeled"] + split["unlabeled"])
    arrays = [_resized(cases[c], int(cfg.size)) for c in train_ids]
    groups = [c for c, (im, _) in zip(train_ids, arrays) for _ in range(len(im))]
    lab_idx, unl_idx = S.slice_indices(groups, split["labeled"])
    return SegData("folder", num_classes, channels.pop(), class_names,
                   np.concatenate([a for a, _ in arrays]), np.concatenate([b for _, b in arrays]),
                   lab_idx, unl_idx, [cases[c] for c in split["val"]], [cases[c] for c in split["test"]], split)


def write_example_folder(root: str | Path, n_cases: int = 12, fmt: str = "png") -> Path:
    """A small folder dataset cut from the built-in synthetic hearts, to try `folder` on:
    fmt "png" writes one mid-ventricle slice per patient (8-bit PNG pairs), "nifti" whole
    volumes (.nii.gz pairs with their spacing). Returns root."""
    from PIL import Image

    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    for pid in range(n_cases):
        vol, lab, spacing, _ = toy_acdc.patient(pid)
        cid = f"case{pid:03d}"
        if fmt == "png":
            z = len(lab) // 2
            Image.fromarray((255 * np.clip(vol[z], 0, 1)).astype(np.uint8)).save(root / "images" / f"{cid}.png")
            Image.fromarray(lab[z].astype(np.uint8)).save(root / "masks" / f"{cid}.png")
        elif fmt == "nifti":
            import nibabel as nib

            affine = np.diag([spacing[2], spacing[1], spacing[0], 1.0])
            nib.save(nib.Nifti1Image(np.transpose(vol, (2, 1, 0)).astype(np.float32), affine),
                     str(root / "images" / f"{cid}.nii.gz"))
            nib.save(nib.Nifti1Image(np.transpose(lab, (2, 1, 0)).astype(np.uint8), affine),
                     str(root / "masks" / f"{cid}.nii.gz"))
        else:
            raise ValueError(f"fmt={fmt!r}: choose 'png' or 'nifti'")
    (root / "classes.txt").write_text("\n".join(toy_acdc.CLASS_NAMES) + "\n")
    return root
