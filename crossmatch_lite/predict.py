"""Segment files a run never saw, through the evaluation path of its scores.

    crossmatch-lite predict --run RUN --input PATH --out DIR [--checkpoint best|latest]
                            [--bn running|precise] [--overlay]

A run's scores come from `evaluate.predict_case` (2D: each slice resized to data.size,
logits resized back to the native grid) or `evaluate.predict_volume` (3D: the sliding
window of evaluation), with the BatchNorm statistics that eval.bn names. Predictions here
go through the same functions with the same model, so a mask written for an image the run
was scored on is the mask its score counted.

Inputs (PATH: a file, a folder or a glob):
    2D runs   PNG, JPEG, TIFF, BMP images, read as the folder dataset reads them (8-bit
              values / 255); NIfTI slices or volumes, each z-slice predicted (as ACDC is),
              min-max scaled per file as the ACDC conversion does; HDF5 files with an
              `image` dataset (z, y, x), as the prepared ACDC volumes
    3D runs   NIfTI volumes (z-scored, as the published LA volumes are) and HDF5 files
              with an `image` dataset (x, y, z), fed as stored
Every value must be finite: one NaN voxel would silently turn the volume's scaling, and
with it the mask, into background, so such a file is refused.
Outputs, one per input, each written whole or not at all:
    images    <stem>.png, the class ids as 8-bit values at the input's size (and with
              --overlay <stem>_overlay.png, the classes coloured over the image)
    volumes   <stem>.nii.gz with the input's affine and voxel sizes (HDF5: its `spacing`
              attribute if any, one value per array axis in the array's order), so it
              opens aligned in 3D Slicer or ITK-SNAP
Every write goes through `Outputs`, which refuses a path that is one of the inputs (say
--out equal to --input) or that another input of the same call already claimed (a.png and
a.jpg both give a.png): the later file is refused, so no mask replaces another or an image.
A file that cannot be used is named in one line and skipped; the exit status is the number
of such files. An --out that cannot be created or written is refused once, before any
file is read.
"""
from __future__ import annotations

import glob
import gzip
import io
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .config import load_config
from .dims import Dims
from .data import Case, DataError
from .data.folder import read_image, unreadable_errors
from .data.splitting import require_finite
from .evaluate import predict_case, predict_volume
from .run.checkpoints import load_model
from .run.files import atomic_write_bytes
from .run.runtime import autocast_for, pick_device
from .train import Trainer
from .views import views_for

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
H5_SUFFIXES = (".h5", ".hdf5")
COLOURS = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
                    [145, 30, 180], [70, 240, 240]], np.uint8)


class PredictError(ValueError):
    """An input this run cannot segment; the message names the file and says why."""


@dataclass
class Predictor:
    """A run's chosen model with what its evaluation needs."""
    model: torch.nn.Module
    device: torch.device
    dims: Dims
    in_channels: int
    size: int  # 2D: the training size slices are resized to
    window: dict | None  # 3D: the sliding window
    batch: int
    autocast: object

    @classmethod
    def from_run(cls, run: str | Path, which: str = "best", bn: str | None = None) -> "Predictor":
        """The model of `run` as its summary scored it: `which` checkpoint, BatchNorm
        statistics `bn` (default: the run's eval.bn). Running statistics need no data;
        recomputed ones are recomputed from the run's training images."""
        run = Path(run)
        if not (run / "config.yaml").is_file():
            raise DataError(f"{run} is not a run folder (no config.yaml); pass the --out of a `train` run")
        cfg = load_config(run / "config.yaml", ["train.progress=false"])
        if (bn or cfg.eval.bn) == "precise":
            trainer = Trainer.from_run(run, which)
            model, device = trainer.eval_model("precise"), trainer.device
        else:
            device = pick_device(cfg.train.device)
            model = load_model(run, which, device)
        first = next(m for m in model.modules() if isinstance(m, torch.nn.modules.conv._ConvNd))
        dims = Dims.of_dataset(cfg.data.name)  # the one place predict asks whether the run is 3D
        window = views_for(dims.spatial_dims, cfg.data.patch).window(cfg.eval.stride, cfg.data.downsample)
        return cls(model.eval(), device, dims, first.in_channels, cfg.data.size, window, cfg.eval.batch_slices,
                   autocast_for(device, cfg.train, cfg.data.patch if dims.volumetric else None))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """2D: (Z, C, H, W) -> (Z, H, W) class ids; 3D: (C, X, Y, Z) -> (X, Y, Z)."""
        case = Case("input", image, None, None)
        if self.window is None:
            return predict_case(self.model, case, self.size, self.device, self.batch, self.autocast)
        w = self.window
        return predict_volume(self.model, case, w["patch"], w["stride"], w["downsample"], self.device,
                              self.batch, self.autocast)


def input_files(pattern: str | Path) -> list[Path]:
    """A file, every readable file of a folder (not its subfolders), or a glob's matches."""
    path = Path(pattern)
    if path.is_dir():
        files = [p for p in sorted(path.iterdir()) if p.is_file() and not p.name.startswith(".")]
    elif path.is_file():
        files = [path]
    else:
        files = [Path(p) for p in sorted(glob.glob(str(pattern))) if Path(p).is_file()]
    if not files:
        raise DataError(f"no input files at {pattern}: pass an image or volume, a folder, or a quoted glob")
    return files


def _kind(path: Path) -> str:
    name = path.name.lower()
    for kind, suffixes in (("image", IMAGE_SUFFIXES), ("nifti", NIFTI_SUFFIXES), ("h5", H5_SUFFIXES)):
        if name.endswith(suffixes):
            return kind
    raise PredictError(f"{path}: not an image (png, jpg, tif, bmp), NIfTI (.nii, .nii.gz) or HDF5 (.h5) file")


def _zscore(volume: np.ndarray) -> np.ndarray:
    sd = float(volume.std())
    return ((volume - volume.mean()) / sd if sd > 0 else volume - volume.mean()).astype(np.float32)


PREDICT_FIX = "replace it with an intact copy or leave it out of --input"


def read_input(path: Path, dims: Dims) -> tuple[np.ndarray, dict]:
    """(the network's input array, what writing the mask needs) of one file: 2D runs
    (Z, C, H, W) slices, 3D runs a (C, X, Y, Z) volume."""
    kind = _kind(path)
    if kind == "image":
        if dims.volumetric:
            raise PredictError(f"{path}: a 2D image, but this run segments 3D volumes; give it NIfTI or HDF5 volumes")
        image, _ = read_image(path, fix=PREDICT_FIX)
        return image, {"kind": "image", "size": image.shape[2:]}
    if kind == "h5":
        array, spacing = _read_h5(path, dims)
        # spacing follows the array's axes: (z, y, x) in a 2D run, (x, y, z) in a 3D run;
        # the affine's diagonal is (x, y, z).
        xyz = spacing if dims.volumetric else spacing[::-1]
        meta = {"kind": "h5", "affine": np.diag([*xyz, 1.0])}
        if dims.volumetric:
            return array[None], meta
        lo, hi = float(array.min()), float(array.max())  # (z, y, x) slices, scaled as ACDC's volumes
        return ((array - lo) / (hi - lo) if hi > lo else 0 * array)[:, None], {**meta, "zyx": True}
    img, shape = _open_nifti(path)
    meta = {"kind": "nifti", "affine": img.affine, "header": img.header, "ndim": len(shape)}
    if dims.volumetric:
        if len(shape) != 3:
            raise PredictError(f"{path}: shape {shape}, but this run segments 3D volumes (x, y, z)")
        try:
            volume = np.asanyarray(img.dataobj).reshape(shape).astype(np.float32)
        except unreadable_errors() as e:
            raise PredictError(f"{path} cannot be read ({_reason(e)}): it is truncated or damaged; "
                               f"{PREDICT_FIX}") from None
        require_finite(volume, str(path), "replace them (e.g. with the background value)")
        return _zscore(volume)[None], meta
    image, _ = read_image(path, fix=PREDICT_FIX)  # (z, 1, y, x), min-max scaled per file
    return image, {**meta, "zyx": True}


def _reason(e: Exception) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:120] or type(e).__name__


def _open_nifti(path: Path):
    """(the nibabel image, its shape without trailing length-1 axes: an (x, y, z, 1) file
    is one volume, not a series)."""
    import nibabel as nib  # only for NIfTI inputs

    try:
        img = nib.load(str(path))
    except unreadable_errors() as e:
        raise PredictError(f"{path} cannot be read as NIfTI ({_reason(e)}): it is truncated, damaged or not "
                           f"NIfTI; {PREDICT_FIX}") from None
    shape = tuple(img.shape)
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) == 4:
        raise PredictError(f"{path}: a 4D series (shape {img.shape}); give one frame (e.g. the ED or ES volume)")
    if len(shape) not in (2, 3) or min(shape) == 0:
        raise PredictError(f"{path}: shape {img.shape}; predict reads 2D images and 3D volumes")
    return img, shape


def _read_h5(path: Path, dims: Dims) -> tuple[np.ndarray, tuple[float, float, float]]:
    """(the `image` array as float32, the voxel size along its axes, 1 mm if unstated),
    or a PredictError saying what about the file does not fit."""
    import h5py  # only for HDF5 inputs

    order = "(x, y, z)" if dims.volumetric else "(z, y, x)"
    try:
        with h5py.File(path, "r") as f:
            data = f.get("image")
            if not isinstance(data, h5py.Dataset):
                what = "a group" if data is not None else "missing"
                raise PredictError(f"{path}: its `image` is {what}, not an array; predict reads HDF5 files "
                                   f"with an `image` dataset {order}, laid out as the prepared data")
            if data.ndim != 3 or not np.issubdtype(data.dtype, np.number) or min(data.shape) == 0:
                raise PredictError(f"{path}: `image` is {data.dtype} of shape {data.shape}; this run needs a "
                                   f"non-empty 3D array of numbers {order}")
            array = data[()].astype(np.float32)
            raw = f.attrs.get("spacing")
    except OSError as e:
        raise PredictError(f"{path} cannot be read as HDF5 ({_reason(e)}): it is truncated, damaged or not HDF5; "
                           f"{PREDICT_FIX}") from None
    require_finite(array, str(path), "replace them (e.g. with the background value)")
    if raw is None:
        return array, (1.0, 1.0, 1.0)
    spacing = np.asarray(raw)
    if spacing.shape != (3,) or not np.issubdtype(spacing.dtype, np.number) or \
            not (np.isfinite(spacing).all() and (spacing > 0).all()):
        raise PredictError(f"{path}: its `spacing` attribute is {_short(raw)}; it must be 3 positive voxel sizes "
                           f"in mm, one per axis {order}")
    return array, tuple(float(v) for v in spacing)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _nifti_bytes(mask: np.ndarray, affine: np.ndarray, header=None) -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(mask.astype(np.uint8), affine, header)
    img.set_data_dtype(np.uint8)
    return gzip.compress(img.to_bytes(), mtime=0)


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", *IMAGE_SUFFIXES, ".nii", *H5_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def targets(path: Path, out: Path, overlay: bool) -> list[Path]:
    """The files predicting `path` writes: its mask first, then (images, --overlay) the overlay."""
    stem = _stem(path)
    if _kind(path) == "image":
        return [out / f"{stem}.png", *([out / f"{stem}_overlay.png"] if overlay else [])]
    return [out / f"{stem}.nii.gz"]


def _same(path: Path) -> str:
    """One key for every name of a file: symlinks resolved, so a link to an input is that input."""
    return os.path.normcase(os.path.realpath(path))


class Outputs:
    """The one place `predict` writes: a path is claimed for one input before anything is
    predicted, and refused when it is one of the call's inputs or another input claimed it."""

    def __init__(self, out: Path, inputs: list[Path]):
        self.out = out
        self.inputs = {_same(p): p for p in inputs}
        self.owner: dict[str, Path] = {}

    def claim(self, source: Path, paths: list[Path]) -> None:
        for t in paths:
            if _same(t) in self.inputs:
                raise PredictError(f"{source}: its output {t} would overwrite the input {self.inputs[_same(t)]}; "
                                   "pass an --out folder that holds none of the inputs")
            if _same(t) in self.owner:
                raise PredictError(f"{source}: its output {t} is also the output of {self.owner[_same(t)]}; rename "
                                   "one of the two, or segment them into separate --out folders")
        self.owner.update({_same(t): source for t in paths})

    def write(self, source: Path, path: Path, data: bytes) -> None:
        if self.owner.get(_same(path)) != source:  # every write was claimed first: nothing is written twice
            raise PredictError(f"{source}: {path} was not claimed for it")
        atomic_write_bytes(path, data)


def prepare_out(out: Path) -> None:
    """Create --out and prove it writable, or refuse it in one line before any input is read."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".predict-", dir=out)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise PredictError(f"--out {out} cannot be used as the folder for the masks "
                           f"({e.strerror or e}{f': {e.filename}' if e.filename else ''}); pass a folder you can "
                           "write to, or create it first") from None


def write_mask(mask: np.ndarray, image: np.ndarray, meta: dict, outputs: Outputs, source: Path,
               paths: list[Path]) -> Path:
    """Write one prediction to its claimed `paths` (mask first, then the overlay); returns the
    mask's path. 2D: mask (Z, H, W), image (Z, C, H, W); 3D: mask (X, Y, Z)."""
    target = paths[0]
    if meta["kind"] == "image":
        outputs.write(source, target, _png_bytes(mask[0]))
        if len(paths) > 1:
            rgb = (255 * (image[0] if image.shape[1] == 3 else np.repeat(image[0], 3, 0))).astype(np.uint8)
            rgb = rgb.transpose(1, 2, 0)
            coloured = COLOURS[mask[0] % len(COLOURS)]
            blend = np.where(mask[0, ..., None] > 0, (0.5 * rgb + 0.5 * coloured).astype(np.uint8), rgb)
            outputs.write(source, paths[1], _png_bytes(blend))
        return target
    volume = mask.transpose(2, 1, 0) if meta.get("zyx") else mask  # (z, y, x) -> (x, y, z) as stored
    if meta.get("ndim") == 2:
        volume = volume[..., 0]
    outputs.write(source, target, _nifti_bytes(volume, meta["affine"], meta.get("header")))
    return target


def _segment(predictor: "Predictor", path: Path, outputs: Outputs, paths: list[Path]) -> tuple[np.ndarray, Path]:
    """(the mask, where it was written) of one claimed input."""
    image, meta = read_input(path, predictor.dims)
    channels = image.shape[1] if not predictor.dims.volumetric else image.shape[0]
    if channels != predictor.in_channels:
        raise PredictError(f"{path}: {channels} channel(s), but this run was trained on {predictor.in_channels}")
    mask = predictor(image)
    return mask, write_mask(mask, image, meta, outputs, path, paths)


def predict_files(predictor: Predictor, files: list[Path], out: Path, overlay: bool = False,
                  progress: bool = True) -> int:
    """Segment every file into `out`; print one line per file; return the number that failed.
    Every output path is claimed before the first prediction, so a file whose output would
    replace an input or another file's output is refused and counted, and nothing is lost."""
    prepare_out(out)
    outputs = Outputs(out, files)
    claimed: dict[Path, list[Path] | Exception] = {}
    for path in files:
        try:
            claimed[path] = targets(path, out, overlay)
            outputs.claim(path, claimed[path])
        except PredictError as e:
            claimed[path] = e
    failed = 0
    for path in tqdm(files, desc="predict", disable=not progress or len(files) < 2, leave=False):
        try:
            if isinstance(claimed[path], Exception):
                raise claimed[path]
            mask, target = _segment(predictor, path, outputs, claimed[path])
        except Exception as e:  # noqa: BLE001 -- one bad file must not stop the others
            failed += 1
            what = str(e) if isinstance(e, (PredictError, DataError)) else f"{type(e).__name__}: {e}"
            tqdm.write(f"error: {what}" if str(path) in what else f"error: {path}: {what}", file=sys.stderr)
            continue
        shares = np.bincount(mask.ravel()) / mask.size
        classes = ", ".join(f"{k}: {100 * v:.1f} %" for k, v in enumerate(shares) if v > 0)
        tqdm.write(f"{path.name}: {'x'.join(map(str, mask.shape))} -> {target} (classes {classes})")
    return failed


# ---------------------------------------------------------------- the run's own cases
def case_dice(result: dict) -> dict[str, float]:
    """case id -> mean foreground Dice, from an `evaluate` result or summary entry with 'cases'."""
    out = {}
    for c in result.get("cases", []):
        vals = [v for v in c.get("dice", {}).values() if v is not None]
        out[c["id"]] = float(np.mean(vals)) if vals else float("nan")
    return out


def predict_cases(trainer: Trainer, cases) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(case id -> prediction at native size, case id -> mean foreground Dice) of the
    trainer's current weights on a run's own cases, evaluated as the run's summary
    evaluates them (notebooks and the ablation report picture runs with it)."""
    result = trainer.evaluate(list(cases), keep_predictions=True)
    return result["_predictions"], case_dice(result)
