"""Convert one ACDC patient (NIfTI + Info.cfg) to the SSL4MIS HDF5 layout.

The published preprocessed files (SSL4MIS, UniMatch, CrossMatch) were checked
against the raw NIfTI: the image is the stored int16 frame as float64, min-max
normalised over the whole volume, transposed from NIfTI (x, y, z) to (z, y, x)
with no flips; labels are the stored uint8 values; both gzip level 4 with
h5py's automatic chunking. ``frame01`` is always the ED frame and ``frame02``
the ES frame, whatever their NIfTI frame numbers. Slice files hold volume index
k-1 under the name ``slice_k``.
"""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np

from .errors import DataDownloadError
from .fsutil import atomic_path

PATIENT_RE = re.compile(r"^patient(\d{3})$")


def read_info(cfg: Path) -> dict[str, str]:
    info = {}
    for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            info[key.strip()] = value.strip()
    return info


def ed_es_frames(cfg: Path) -> tuple[int, int]:
    info = read_info(cfg)
    try:
        return int(info["ED"]), int(info["ES"])
    except (KeyError, ValueError):
        raise DataDownloadError(
            f"{cfg}: expected 'ED: <frame>' and 'ES: <frame>' lines, found {sorted(info)}; "
            f"the archive does not have the official ACDC layout."
        ) from None


def normalise(volume: np.ndarray) -> np.ndarray:
    vol = volume.astype(np.float64)
    lo, hi = vol.min(), vol.max()
    if hi == lo:
        # A constant volume has no contrast to scale; zeros keep [0, 1] and avoid NaN.
        return np.zeros_like(vol)
    return (vol - lo) / (hi - lo)


def load_frame(folder: Path, name: str, frame: int) -> tuple[np.ndarray, np.ndarray, tuple]:
    img_path = folder / f"{name}_frame{frame:02d}.nii.gz"
    gt_path = folder / f"{name}_frame{frame:02d}_gt.nii.gz"
    for p in (img_path, gt_path):
        if not p.is_file():
            raise FileNotFoundError(p)
    try:
        nii = nib.load(img_path)
        image = np.asanyarray(nii.dataobj)
        label = np.asanyarray(nib.load(gt_path).dataobj)
        zooms = tuple(float(v) for v in nii.header.get_zooms()[:3])
    except Exception as e:  # nibabel raises many types for a damaged file
        raise DataDownloadError(f"cannot read {img_path.name} / {gt_path.name}: {e}") from None
    if image.shape != label.shape or image.ndim != 3:
        raise DataDownloadError(
            f"{name} frame {frame}: image shape {image.shape} and label shape {label.shape} "
            f"should be equal and 3-D"
        )
    if label.dtype.kind == "f":
        label = np.rint(label)
    # NIfTI arrays are (x, y, z); the published layout is (z, y, x), and so is the spacing.
    return normalise(image).transpose(2, 1, 0), label.astype(np.uint8).transpose(2, 1, 0), zooms[::-1]


def write_h5(path: Path, image: np.ndarray, label: np.ndarray, spacing: tuple | None = None) -> None:
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("image", data=image, compression="gzip")
            f.create_dataset("label", data=label, compression="gzip")
            if spacing is not None:
                # The published files carry no spacing; storing it with each volume gives
                # every case, the testing patients 101-150 included, distances in mm.
                f.attrs["spacing"] = np.asarray(spacing, dtype=np.float64)


def convert_patient(folder: Path, out_dir: Path) -> int:
    """Write both volumes and all slices of one patient; return the slice count."""
    name = folder.name
    ed, es = ed_es_frames(folder / "Info.cfg")
    slices = 0
    for out_frame, frame in ((1, ed), (2, es)):
        image, label, spacing = load_frame(folder, name, frame)
        stem = f"{name}_frame{out_frame:02d}"
        for k in range(image.shape[0]):
            write_h5(out_dir / "slices" / f"{stem}_slice_{k + 1}.h5", image[k], label[k])
        # The volume goes last: with its slices already in place, a visible volume
        # file never stands for a half-converted frame.
        write_h5(out_dir / f"{stem}.h5", image, label, spacing)
        slices += image.shape[0]
    return slices


def find_patients(raw: Path) -> list[Path]:
    """Patient folders with an Info.cfg, training (001-100) and testing (101-150)."""
    found = {}
    for cfg in raw.rglob("Info.cfg"):
        if PATIENT_RE.match(cfg.parent.name):
            found.setdefault(cfg.parent.name, cfg.parent)
    return [found[k] for k in sorted(found)]
