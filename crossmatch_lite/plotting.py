"""One figure style for notebooks and ablation reports, and a saver that writes PNG + SVG.

Figures are titled and labelled so that each stands alone in a report.
"""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib
import numpy as np

# Class colours: background transparent, then RV/lesion, Myo, LV (colour-blind safe).
CLASS_COLORS = ["#00000000", "#0072B2", "#E69F00", "#009E73", "#CC79A7"]


def apply_style() -> None:
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
        "axes.titleweight": "bold", "figure.titleweight": "bold",
        "svg.hashsalt": "crossmatch_lite",  # stable SVG ids, so re-rendered figures diff cleanly
    })


def save_figure(fig, out_dir: str | os.PathLike, name: str) -> list[Path]:
    """Write `name`.png and `name`.svg under out_dir (created); returns both paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "svg"):
        p = out / f"{name}.{ext}"
        tmp = out / f".{name}.tmp.{ext}"
        fig.savefig(tmp, format=ext, metadata={"Date": None} if ext == "svg" else None)
        os.replace(tmp, p)
        paths.append(p)
    return paths


def overlay(ax, image: np.ndarray, label: np.ndarray | None = None, title: str | None = None,
            alpha: float = 0.45) -> None:
    """Show a (C,H,W) or (H,W) image with a class-coloured mask on top."""
    from matplotlib.colors import ListedColormap

    img = np.asarray(image, dtype=np.float32)
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    if label is not None:
        k = int(max(label.max(), 1)) + 1
        cmap = ListedColormap(CLASS_COLORS[:k])
        ax.imshow(np.asarray(label), cmap=cmap, vmin=0, vmax=k - 1, alpha=alpha, interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_axis_off()
