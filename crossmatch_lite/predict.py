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
Outputs, one per input, each written whole or not at all:
    images    <stem>.png, the class ids as 8-bit values at the input's size (and with
              --overlay <stem>_overlay.png, the classes coloured over the image)
    volumes   <stem>.nii.gz with the input's affine and voxel sizes (HDF5: its `spacing`
              attribute if any), so it opens aligned in 3D Slicer or ITK-SNAP
A file that cannot be used is named in one line and skipped; the exit status is the number
of such files.
"""
from __future__ import annotations

import glob
import gzip
import io
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from .config import DATASET_DIMS, load_config
from .data import Case, DataError
from .data.folder import read_image
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
    spatial_dims: int
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
        dims = DATASET_DIMS[cfg.data.name]
        window = views_for(dims, cfg.data.patch).window(cfg.eval.stride, cfg.data.downsample)
        return cls(model.eval(), device, dims, first.in_channels, cfg.data.size, window, cfg.eval.batch_slices,
                   autocast_for(device, cfg.train))

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


def read_input(path: Path, spatial_dims: int) -> tuple[np.ndarray, dict]:
    """(the network's input array, what writing the mask needs) of one file."""
    kind = _kind(path)
    if kind == "image":
        if spatial_dims == 3:
            raise PredictError(f"{path}: a 2D image, but this run segments 3D volumes; give it NIfTI or HDF5 volumes")
        image, _ = read_image(path)
        return image, {"kind": "image", "size": image.shape[2:]}
    if kind == "h5":
        import h5py  # only for HDF5 inputs

        with h5py.File(path, "r") as f:
            if "image" not in f:
                raise PredictError(f"{path}: no `image` dataset; predict reads HDF5 files laid out as the prepared data")
            array = f["image"][()].astype(np.float32)
            spacing = tuple(float(v) for v in f.attrs["spacing"]) if "spacing" in f.attrs else None
        meta = {"kind": "h5", "affine": np.diag([*(spacing or (1.0, 1.0, 1.0))[::-1], 1.0])}
        if spatial_dims == 3:
            return array[None], meta
        lo, hi = float(array.min()), float(array.max())  # (z, y, x) slices, scaled as ACDC's volumes
        return ((array - lo) / (hi - lo) if hi > lo else 0 * array)[:, None], {**meta, "zyx": True}
    import nibabel as nib  # only for NIfTI inputs

    img = nib.load(str(path))
    if img.ndim == 4:
        raise PredictError(f"{path}: a 4D series (shape {img.shape}); give one frame (e.g. the ED or ES volume)")
    meta = {"kind": "nifti", "affine": img.affine, "header": img.header, "ndim": img.ndim}
    if spatial_dims == 3:
        return _zscore(np.asanyarray(img.dataobj).astype(np.float32))[None], meta
    image, _ = read_image(path)  # (z, 1, y, x), min-max scaled per file
    return image, {**meta, "zyx": True}


def _nifti_bytes(mask: np.ndarray, affine: np.ndarray, header=None) -> bytes:
    import nibabel as nib

    img = nib.Nifti1Image(mask.astype(np.uint8), affine, header)
    img.set_data_dtype(np.uint8)
    return gzip.compress(img.to_bytes(), mtime=0)


def _png_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def write_mask(mask: np.ndarray, image: np.ndarray, meta: dict, out: Path, stem: str, overlay: bool) -> Path:
    """Write one prediction next to nothing else; returns the mask's path."""
    if meta["kind"] == "image":
        target = out / f"{stem}.png"
        atomic_write_bytes(target, _png_bytes(mask[0]))
        if overlay:
            rgb = (255 * (image[0] if image.shape[1] == 3 else np.repeat(image[0], 3, 0))).astype(np.uint8)
            rgb = rgb.transpose(1, 2, 0)
            coloured = COLOURS[mask[0] % len(COLOURS)]
            blend = np.where(mask[0, ..., None] > 0, (0.5 * rgb + 0.5 * coloured).astype(np.uint8), rgb)
            atomic_write_bytes(out / f"{stem}_overlay.png", _png_bytes(blend))
        return target
    volume = mask.transpose(2, 1, 0) if meta.get("zyx") else mask  # (z, y, x) -> (x, y, z) as stored
    if meta.get("ndim") == 2:
        volume = volume[..., 0]
    target = out / f"{stem}.nii.gz"
    atomic_write_bytes(target, _nifti_bytes(volume, meta["affine"], meta.get("header")))
    return target


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", *IMAGE_SUFFIXES, ".nii", *H5_SUFFIXES):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def predict_files(predictor: Predictor, files: list[Path], out: Path, overlay: bool = False,
                  progress: bool = True) -> int:
    """Segment every file into `out`; print one line per file; return the number that failed."""
    out.mkdir(parents=True, exist_ok=True)
    failed = 0
    for path in tqdm(files, desc="predict", disable=not progress or len(files) < 2, leave=False):
        try:
            image, meta = read_input(path, predictor.spatial_dims)
            channels = image.shape[1] if predictor.spatial_dims == 2 else image.shape[0]
            if channels != predictor.in_channels:
                raise PredictError(f"{path}: {channels} channel(s), but this run was trained on "
                                   f"{predictor.in_channels}")
            mask = predictor(image)
            target = write_mask(mask, image, meta, out, _stem(path), overlay)
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
