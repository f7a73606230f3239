"""Evaluation on whole cases (ACDC volumes, ISIC images) with MONAI's metrics.

ACDC is scored in 3D per volume: every slice is predicted in 2D at the training size,
the logits are resized back to the slice's native size (bilinear, as the official
validation does), stacked, and compared with the native label volume. LA volumes are
predicted in 3D with MONAI's sliding_window_inference: windows of the training patch,
stepped by eval.stride voxels (the official LA test's window grid), softmax averaged
where windows overlap (as the official test averages its score maps); a model trained on
shrunk volumes (data.downsample) sees the case shrunk the same way, and its
probabilities are resized back to the native grid before the argmax. Scores are averaged
over cases, then over foreground classes.

HD95 and ASD come from MONAI. They differ from medpy's `hd95`/`asd`: MONAI takes the
95th percentile of each directed surface distance set and reports the larger of the
two, where medpy takes the percentile of both sets pooled. MONAI's symmetric ASD pools
the surface distances of both directions and takes their mean (so the direction with
more surface points weighs more); medpy's `asd` is one-directed and its `assd` is the
mean of the two directed means.

A case whose prediction misses a class that its label has (or predicts a class its
label lacks) has no defined surface distance. Leaving it out flatters the model, so
each distance is reported twice: `hd95_mm` without those cases, and `hd95_mm_pen` with
each of them scored as the image diagonal (the largest distance the image allows).
`n_empty` counts them.

A class absent from both the prediction and the label of a case has no Dice or Jaccard to
speak of: that class/case pair is left out of every mean (NaN per case, `None` in the
result), as MONAI's DiceMetric with ignore_empty=True leaves it out, instead of counting
as a perfect 1. A class predicted where the label has none still scores 0. A mean over
nothing (no case has the class) is `None`, like every other undefined mean here.
"""
from __future__ import annotations

import math
import warnings
from typing import Collection

import numpy as np
import torch
import torch.nn.functional as F
from monai.inferers import sliding_window_inference
from monai.metrics import (compute_average_surface_distance, compute_dice,
                           compute_hausdorff_distance, compute_iou)

from .data import Case


@torch.no_grad()
def predict_case(model, case: Case, size: int, device: torch.device, batch: int = 32,
                 autocast=None) -> np.ndarray:
    """(Z, H, W) uint8 prediction of one case at its native resolution."""
    model.eval()
    z, _, h, w = case.image.shape
    out = np.empty((z, h, w), dtype=np.uint8)
    for start in range(0, z, batch):
        img = torch.from_numpy(np.ascontiguousarray(case.image[start:start + batch])).float().to(device)
        img = F.interpolate(img, (size, size), mode="bilinear", align_corners=False)
        with autocast if autocast is not None else torch.autocast(device.type, enabled=False):
            logits = model(img)
        logits = F.interpolate(logits.float(), (h, w), mode="bilinear", align_corners=False)
        out[start:start + batch] = logits.argmax(dim=1).to(torch.uint8).cpu().numpy()
    return out


def window_overlap(patch, stride) -> list[float]:
    """MONAI's overlap for a window step of `stride` voxels. MONAI steps by
    int(roi * (1 - overlap)); the half voxel keeps that at `stride` despite float rounding."""
    return [max(0.0, 1.0 - (s + 0.5) / p) for s, p in zip(stride, patch)]  # a step of a whole window: no overlap


@torch.no_grad()
def predict_volume(model, case: Case, patch, stride, downsample: int, device: torch.device,
                   batch: int = 4, autocast=None) -> np.ndarray:
    """(X, Y, Z) uint8 prediction of one 3D case at its native resolution."""
    model.eval()
    img = torch.from_numpy(np.ascontiguousarray(case.image))[None].float().to(device)
    native = img.shape[2:]
    if downsample > 1:
        img = F.interpolate(img, size=[max(1, round(s / downsample)) for s in native], mode="area")

    def probabilities(x: torch.Tensor) -> torch.Tensor:
        return model(x).float().softmax(dim=1)

    with autocast if autocast is not None else torch.autocast(device.type, enabled=False):
        prob = sliding_window_inference(img, roi_size=list(patch), sw_batch_size=batch, predictor=probabilities,
                                        overlap=window_overlap(patch, stride), mode="constant")
    if downsample > 1:
        prob = F.interpolate(prob.float(), size=list(native), mode="trilinear", align_corners=False)
    return prob.argmax(dim=1)[0].to(torch.uint8).cpu().numpy()


def _one_hot(vol: np.ndarray, k: int) -> torch.Tensor:
    t = torch.from_numpy(vol.astype(np.int64))
    return F.one_hot(t, k).movedim(-1, 0).unsqueeze(0).float()  # (1, K, *spatial)


def case_scores(pred: np.ndarray, label: np.ndarray, num_classes: int,
                spacing: tuple | None, distances: bool = True) -> dict[str, np.ndarray]:
    """Per foreground class: dice, jaccard and (optionally) HD95/ASD in voxels and mm."""
    if pred.shape[0] == 1:  # a 2D image: score it in 2D
        pred, label = pred[0], label[0]
        spacing = spacing[1:] if spacing is not None else None
    p, y = _one_hot(pred, num_classes), _one_hot(label, num_classes)
    has_pred = p[0, 1:].flatten(1).any(dim=1).numpy()
    has_label = y[0, 1:].flatten(1).any(dim=1).numpy()
    # MONAI scores a class absent from both sides as 1 (ignore_empty=False); that perfect
    # score would lift every mean it enters, so it becomes NaN and drops out of the means
    # (ignore_empty=True does the same, but would also drop a false alarm, which stays 0).
    neither = ~has_pred & ~has_label
    dice = compute_dice(p, y, include_background=False, ignore_empty=False)[0].numpy()
    jaccard = compute_iou(p, y, include_background=False, ignore_empty=False)[0].numpy()
    scores = {"dice": np.where(neither, np.nan, dice), "jaccard": np.where(neither, np.nan, jaccard)}
    if distances:
        undefined = has_pred != has_label  # exactly one side empty: a miss or a false alarm
        scores["empty"] = undefined.astype(np.float64)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # MONAI warns on empty masks; we count them instead
            # Isotropic voxels (LA): the distances in mm are those in voxels times the spacing,
            # so the surface distances (the slow part) are computed once.
            iso = spacing is not None and len(set(spacing)) == 1
            for unit, sp in (("vox", None), ("mm", spacing)):
                if unit == "mm" and sp is None:
                    continue
                diagonal = float(np.sqrt(np.sum((np.asarray(pred.shape) * np.asarray(sp or 1.0)) ** 2)))
                if unit == "mm" and iso:
                    hd = torch.as_tensor(scores["hd95_vox"])[None] * float(sp[0])
                    asd = torch.as_tensor(scores["asd_vox"])[None] * float(sp[0])
                else:
                    hd = compute_hausdorff_distance(p, y, include_background=False, percentile=95, spacing=sp)
                    asd = compute_average_surface_distance(p, y, include_background=False, symmetric=True,
                                                           spacing=sp)
                for name, value in ((f"hd95_{unit}", hd[0].numpy()), (f"asd_{unit}", asd[0].numpy())):
                    value = np.where(np.isfinite(value) & ~undefined, value, np.nan)
                    scores[name] = value
                    scores[f"{name}_pen"] = np.where(undefined, diagonal, value)
    return scores


def summarise(per_case: list[dict], class_names: list[str]) -> dict:
    """Mean over cases per class (NaN-aware), then over classes."""
    fg = class_names[1:]
    out: dict = {"n_cases": len(per_case)}
    if not per_case:
        return out
    for metric in per_case[0]["scores"]:
        arr = np.stack([c["scores"][metric] for c in per_case])  # (cases, classes)
        if metric == "empty":
            counts = arr.sum(axis=0).astype(int)
            out["n_empty"] = int(counts.sum())  # volume-classes without a defined distance
            out["n_empty_per_class"] = {name: int(v) for name, v in zip(fg, counts)}
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per_class = np.nanmean(arr, axis=0)
        entry = {name: _num(v) for name, v in zip(fg, per_class)}
        entry["mean"] = _num(np.nanmean(per_class)) if np.isfinite(per_class).any() else None
        out[metric] = entry
    return out


def _num(v) -> float | None:
    v = float(v)
    return None if math.isnan(v) else v


def evaluate_cases(model, cases: list[Case], num_classes: int, class_names: list[str], size: int,
                   device: torch.device, distances: bool = True, batch: int = 32,
                   autocast=None, keep_predictions: bool | Collection[str] = False,
                   window: dict | None = None) -> dict:
    """Scores of `cases`. 2D data: slices resized to `size`. 3D data: `window` gives the
    sliding window, dict(patch=..., stride=..., downsample=...). keep_predictions: True
    keeps every case's prediction in `_predictions`, a collection of case ids those cases'
    (a few, for pictures, without holding every volume of a 3D val set)."""
    def kept(case_id: str) -> bool:
        return keep_predictions is True or (not isinstance(keep_predictions, bool) and case_id in keep_predictions)

    per_case = []
    for case in cases:
        if window is not None:
            pred = predict_volume(model, case, window["patch"], window["stride"], window["downsample"],
                                  device, batch, autocast)
        else:
            pred = predict_case(model, case, size, device, batch, autocast)
        row = {"id": case.id, "scores": case_scores(pred, case.label, num_classes, case.spacing, distances)}
        if kept(case.id):
            row["prediction"] = pred
        per_case.append(row)
    summary = summarise(per_case, class_names)
    summary["cases"] = [
        {"id": c["id"], **{m: {n: _num(v) for n, v in zip(class_names[1:], s)} for m, s in c["scores"].items()}}
        for c in per_case
    ]
    if keep_predictions:
        summary["_predictions"] = {c["id"]: c["prediction"] for c in per_case if "prediction" in c}
    return summary
