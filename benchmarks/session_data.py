"""The GPU session's data step: real ACDC, converted on the device from the local training zip.

The zip is never downloaded here (the device machine has no network). It is found on disk
(--acdc-zip, $CROSSMATCH_LITE_ACDC_ZIP, shared/ folders) or rebuilt from the parts that
`benchmarks/acdc_parts.py` cut for carrying it to a device in two calls. The prepared data
and its resized-slice cache live outside the session's output folder, so that only results
and the run folder come back.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from . import acdc_parts
from .session_env import run_child

ROOT = Path(__file__).resolve().parents[1]
ZIP_NAME = "ACDC-training.zip"
ZIP_ENV = "CROSSMATCH_LITE_ACDC_ZIP"
DEFAULT_DATA_ROOT = Path(tempfile.gettempdir()) / "crossmatch_lite_gpu" / "ACDC"


def zip_candidates(explicit: str | None = None) -> list[Path]:
    """Where the zip may be, in order: --acdc-zip, $CROSSMATCH_LITE_ACDC_ZIP, then the shared
    folder inside the repository copy (device machines), next to it (developer worktrees),
    and /work/shared."""
    found = [Path(p).expanduser() for p in (explicit, os.environ.get(ZIP_ENV)) if p]
    found += [ROOT / "shared" / "datasets" / "acdc" / ZIP_NAME,
              ROOT.parent / "shared" / "datasets" / "acdc" / ZIP_NAME,
              Path("/work/shared/datasets/acdc") / ZIP_NAME]
    return found


def find_acdc_zip(explicit: str | None = None) -> Path | None:
    if explicit:
        # An explicit path that is wrong is an error, not a reason to pick another file.
        p = Path(explicit).expanduser()
        return p if p.is_file() else None
    return next((p for p in zip_candidates() if p.is_file()), None)


def is_prepared(root: Path) -> bool:
    return (Path(root) / "data").is_dir() and any((Path(root) / "data").glob("patient*_frame01.h5"))


def _mirror_folder(zip_path: Path) -> Path:
    # data_download's --mirror takes a folder holding the zip under its official name.
    if zip_path.name == ZIP_NAME:
        return zip_path.parent
    folder = Path(tempfile.mkdtemp(prefix="acdc_zip_"))
    (folder / ZIP_NAME).symlink_to(zip_path.resolve())
    return folder


def prepare_acdc(root: Path, zip_path: Path | None, timeout: float, workers: int | None = None,
                 explicit_zip: str | None = None, parts_dir: Path = acdc_parts.DEFAULT_PARTS) -> dict:
    """Convert the zip into `root` (python -m data_download acdc); a finished root is reused."""
    root = Path(root)
    result = {"root": str(root)}
    if is_prepared(root):
        return {**result, "status": "ok", "reused": True}
    joined = None
    if zip_path is None and (Path(parts_dir) / acdc_parts.MANIFEST).is_file():
        # Raises, naming the missing part, when a device lost one between calls.
        zip_path = joined = acdc_parts.join(parts_dir, root.parent / ZIP_NAME)
        result["joined_from_parts"] = str(parts_dir)
    if zip_path is None:
        tried = [str(explicit_zip)] if explicit_zip else [str(p) for p in zip_candidates()]
        raise FileNotFoundError(
            f"no ACDC training zip ({ZIP_NAME}) found; tried: {', '.join(tried)}, and no parts in "
            f"{parts_dir}. Pass --acdc-zip PATH or set {ZIP_ENV}; a lent device gets the zip only "
            "as parts carried in two calls (README, 'On a GPU')")
    workers = workers or min(8, os.cpu_count() or 1)
    cmd = [sys.executable, "-m", "data_download", "acdc", "--dest", str(root), "--mirror",
           str(_mirror_folder(zip_path)), "--workers", str(workers), "--cleanup", "--quiet"]
    result.update(zip=str(zip_path), zip_bytes=zip_path.stat().st_size, command=" ".join(cmd[1:]))
    t0 = time.monotonic()
    rc, output = run_child(cmd, timeout)
    result["convert_seconds"] = round(time.monotonic() - t0, 1)
    result["output_tail"] = output.splitlines()[-6:]
    if rc != 0:
        # A re-run continues where this one stopped (data_download marks each patient done).
        why = f"timed out after {timeout:.0f} s" if rc is None else f"failed ({rc})"
        raise RuntimeError(f"python -m data_download acdc {why}: " + " | ".join(result["output_tail"]))
    if joined is not None:
        joined.unlink()  # converted; its parts are still in the repository copy
    return {**result, "status": "ok", "reused": False}


def load_training_data(cfg_data, seed: int) -> tuple[object, dict]:
    """Load the run's data (building the resized cache under <root>/cache on first use)."""
    from crossmatch_lite.data import load_data
    t0 = time.monotonic()
    data = load_data(cfg_data, seed=seed)
    info = {"dataset": cfg_data.name, "size": int(cfg_data.size),
            "train_slices": int(len(data.train_images)), "labeled_slices": int(len(data.labeled_idx)),
            "unlabeled_slices": int(len(data.unlabeled_idx)), "val_cases": len(data.val_cases),
            "test_cases": len(data.test_cases), "load_seconds": round(time.monotonic() - t0, 1)}
    return data, info
