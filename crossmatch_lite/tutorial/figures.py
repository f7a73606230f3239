"""Every figure of the project: notebooks, ablation reports and README pictures.

Each function takes arrays or tables and returns a titled, self-contained matplotlib
figure; `save_figure` writes it as PNG and SVG, `show` saves it and displays it once in a
notebook. Nothing here trains or reads run folders (see `tables.py` and `predict.py`).
"""
from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Sequence

import matplotlib
import numpy as np

from ..run.files import atomic_write_bytes

# Class colours: background transparent, then RV/lesion, Myo, LV (colour-blind safe); the
# last one marks ignored pixels (below the confidence threshold) in notebook 04.
CLASS_COLORS = ["#00000000", "#0072B2", "#E69F00", "#009E73", "#CC79A7"]
BOX_COLOR = "#D55E00"


# ---------------------------------------------------------------- style, saving, display
def apply_style() -> None:
    import seaborn as sns

    sns.set_theme(context="notebook", style="whitegrid", palette="colorblind")
    matplotlib.rcParams.update({
        "figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
        "axes.titleweight": "bold", "figure.titleweight": "bold",
        "svg.hashsalt": "crossmatch_lite",  # stable SVG ids, so re-rendered figures diff cleanly
    })


def _render(fig, ext: str) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format=ext, metadata={"Date": None} if ext == "svg" else None)
    return buf.getvalue()


def save_figure(fig, out_dir: str | os.PathLike, name: str) -> list[Path]:
    """Write `name`.png and `name`.svg under out_dir (created); returns both paths."""
    paths = []
    for ext in ("png", "svg"):
        path = Path(out_dir) / f"{name}.{ext}"
        atomic_write_bytes(path, _render(fig, ext))
        paths.append(path)
    return paths


def as_image(fig):
    """The figure as an IPython PNG image. Displaying PNG bytes works under every kernel
    backend (papermill, nbval, Jupyter Book, JupyterLab); a bare `Figure` object shows up as
    text where the inline backend was never switched on."""
    from IPython.display import Image

    return Image(data=_render(fig, "png"))


def display_figure(fig, save_to: tuple[str | os.PathLike, str] | None = None) -> None:
    """Display `fig` once as PNG (optionally also saving it as (out_dir, name)) and close it."""
    import matplotlib.pyplot as plt

    if save_to is not None:
        save_figure(fig, *save_to)
    try:
        from IPython.display import display

        display(as_image(fig))
    except ImportError:  # plain Python: the saved files are the output
        pass
    plt.close(fig)


def show(fig, out_dir: str | Path, name: str) -> None:
    """Save `fig` as PNG + SVG under out_dir, display it once, and close it.

    Returns None on purpose: a figure cell then shows the figure and nothing else."""
    display_figure(fig, (out_dir, name))


def new_figure(nrows: int = 1, ncols: int = 1, figsize=None, **kw):
    """A figure that pyplot does not auto-display at the end of a cell (we display it once)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize or (4.2 * ncols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def _np(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, without importing torch here
        return x.detach().float().cpu().numpy()
    return np.asarray(x)


# ---------------------------------------------------------------- images and masks
def overlay(ax, image, label=None, title: str | None = None, alpha: float = 0.45) -> None:
    """Show a (C,H,W) or (H,W) image with a class-coloured mask on top."""
    from matplotlib.colors import ListedColormap

    img = _np(image).astype(np.float32)
    if img.ndim == 3:
        img = img[0] if img.shape[0] == 1 else np.moveaxis(img, 0, -1)
    ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=1)
    if label is not None:
        label = _np(label)
        k = int(max(label.max(), 1)) + 1
        ax.imshow(label, cmap=ListedColormap(CLASS_COLORS[:k]), vmin=0, vmax=k - 1, alpha=alpha,
                  interpolation="nearest")
    if title:
        ax.set_title(title, fontsize=9)
    ax.set_axis_off()


IGNORED = len(CLASS_COLORS) - 1  # the label value drawn in the "ignored" colour


def class_legend(fig, class_names: Sequence[str], ignored: bool = False) -> None:
    """Foreground class colours (and, with `ignored`, the colour of pixels below the
    confidence threshold) as one legend row under the figure."""
    from matplotlib.patches import Patch

    handles = [Patch(color=CLASS_COLORS[k], label=name) for k, name in enumerate(class_names) if k > 0]
    if ignored:
        handles.append(Patch(color=CLASS_COLORS[IGNORED], label="ignored (below the threshold)"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)


def image_grid(panels: Sequence[Sequence[tuple]], title: str, class_names: Sequence[str] | None = None,
               box_color: str = BOX_COLOR, ignored: bool = False):
    """A grid of overlays. panels[row][col] = (image (C,H,W)|(H,W), label or None, title[, box]),
    where an optional box (H, W) {0,1} mask is outlined (CutMix boxes); `ignored` adds the
    colour of label value IGNORED to the legend."""
    nrows, ncols = len(panels), max(len(r) for r in panels)
    fig, axes = new_figure(nrows, ncols, figsize=(2.3 * ncols, 2.4 * nrows + (0.4 if class_names else 0)))
    for r, row in enumerate(panels):
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(row) or row[c] is None:
                ax.set_axis_off()
                continue
            image, label, sub = row[c][:3]
            overlay(ax, image, label, sub)
            if len(row[c]) > 3 and row[c][3] is not None and _np(row[c][3]).any():
                ax.contour(_np(row[c][3]), levels=[0.5], colors=[box_color], linewidths=1.2)
    if class_names:
        class_legend(fig, class_names, ignored)
    fig.suptitle(title)
    return fig


def teacher_panels(images, truths, labels, confidences, thresholds: Sequence[float], class_names: Sequence[str],
                   title: str):
    """One row per unlabeled image: the image with its true mask (hidden from training),
    the teacher's pseudo-label, its confidence (with a colour bar), then the pseudo-label
    kept at each threshold (ignored pixels in their own colour, with the kept share).

    images: (B, C, H, W); truths, labels: (B, H, W) class ids; confidences: (B, H, W) in [0, 1]."""
    import torch

    ncols = 3 + len(thresholds)
    fig, axes = new_figure(len(images), ncols, figsize=(2.3 * ncols + 0.6, 2.4 * len(images) + 0.5))
    for r in range(len(images)):
        conf = _np(confidences[r])
        overlay(axes[r][0], images[r], truths[r], "true mask (hidden)")
        overlay(axes[r][1], images[r], labels[r], "pseudo-label")
        im = axes[r][2].imshow(conf, cmap="viridis", vmin=0, vmax=1)
        axes[r][2].set_title("confidence", fontsize=9)
        axes[r][2].set_axis_off()
        fig.colorbar(im, ax=axes[r][2], fraction=0.046, pad=0.03)
        for j, t in enumerate(thresholds):
            keep = torch.as_tensor(conf >= t)
            kept = torch.where(keep, torch.as_tensor(_np(labels[r])).long(), IGNORED)
            overlay(axes[r][3 + j], images[r], kept, f"c ≥ {t:g}: {100 * float(keep.float().mean()):.0f} % kept")
    class_legend(fig, class_names, ignored=True)
    fig.suptitle(title)
    return fig


def is_volume(case) -> bool:
    """True for a 3D case ((C, X, Y, Z) image, (X, Y, Z) label, slices along the last axis),
    False for 2D data's stack of slices ((Z, C, H, W) image, (Z, H, W) label)."""
    shape, lshape = np.shape(case.image), np.shape(case.label)
    return len(shape) == 4 and tuple(shape[1:]) == tuple(lshape) and shape[0] != lshape[0]


def display_window(image, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Intensities rescaled to [0, 1] between two percentiles (z-scored MRI for display)."""
    img = _np(image).astype(np.float32)
    lo, hi = np.percentile(img, [low, high])
    return np.clip((img - lo) / max(float(hi - lo), 1e-6), 0.0, 1.0)


def case_slice(case, z: int, prediction=None) -> tuple:
    """(image (C,H,W), label (H,W)[, prediction (H,W)]) of slice z of a case: z indexes the
    first axis of 2D data's stack and the last (axial) axis of a 3D volume, whose image is
    windowed to [0, 1] for display."""
    if is_volume(case):
        image, label = display_window(case.image[..., z]), np.asarray(case.label)[..., z]
        pred = None if prediction is None else np.asarray(prediction)[..., z]
    else:
        image, label = case.image[z], case.label[z]
        pred = None if prediction is None else prediction[z]
    return (image, label) if prediction is None else (image, label, pred)


def slice_title(case, z: int) -> str:
    """'<case>, slice z'; a 2D case of one image (a photograph) has no slice to name."""
    return case.id if not is_volume(case) and len(case.label) == 1 else f"{case.id}, slice {z}"


def pick_slices(cases, n: int = 4) -> list[tuple[int, int]]:
    """(case index, slice index) for the first n cases, each at the middle of the slices that
    hold foreground: a mid-ventricle slice shows every structure, where the slice with the
    most foreground is the base (ventricles large, myocardium open) and the ends are empty.
    3D volumes are sliced along their last (axial) axis."""
    picks = []
    for i, c in enumerate(cases[:n]):
        label = np.asarray(c.label)
        if is_volume(c):
            label = np.moveaxis(label, -1, 0)
        fg = np.flatnonzero((label > 0).reshape(len(label), -1).any(1))
        picks.append((i, int(fg[len(fg) // 2]) if len(fg) else len(label) // 2))
    return picks


def plot_predictions(cases, predictions: dict[str, dict[str, np.ndarray]], slices, class_names,
                     title: str = "Test predictions", dice: dict[str, dict[str, float]] | None = None):
    """Rows: chosen slices; columns: image, ground truth, then one column per model.

    predictions: model name -> {case id: (Z, H, W) prediction, or (X, Y, Z) for 3D}; dice (optional): model name ->
    {case id: mean Dice of that case}, shown in the panel titles."""
    names = list(predictions)
    fig, axes = new_figure(len(slices), 2 + len(names), figsize=(2.4 * (2 + len(names)), 2.5 * len(slices) + 0.4))
    for r, (ci, z) in enumerate(slices):
        case = cases[ci]
        img, label = case_slice(case, z)
        overlay(axes[r][0], img, None, slice_title(case, z))
        overlay(axes[r][1], img, label, "ground truth")
        for j, name in enumerate(names):
            t = name
            if dice and case.id in dice.get(name, {}):
                t += f" (case Dice {100 * dice[name][case.id]:.0f}%)"
            overlay(axes[r][2 + j], img, case_slice(case, z, predictions[name][case.id])[2], t)
    class_legend(fig, class_names)
    fig.suptitle(title)
    return fig


def feature_maps(maps: dict[str, np.ndarray], title: str):
    """Rows: named sets of feature maps (C, H, W), e.g. clean / weak / strong dropout;
    columns: channels. One colour scale for all panels, so dropped channels read as black."""
    names = list(maps)
    n = min(len(m) for m in maps.values())
    fig, axes = new_figure(len(names), n, figsize=(2.25 * n, 2.3 * len(names)))
    vmax = float(max(np.abs(_np(m)).max() for m in maps.values()))
    for r, name in enumerate(names):
        for c in range(n):
            axes[r][c].imshow(_np(maps[name][c]), cmap="magma", vmin=0, vmax=vmax)
            axes[r][c].set_title(f"{name}, channel {c}", fontsize=8)
            axes[r][c].set_axis_off()
    fig.suptitle(title)
    return fig


# ---------------------------------------------------------------- training curves
LOSS_KEYS = ("loss", "x", "s", "kd")
LOSS_LABELS = {"loss": "total L", "x": "supervised L_x", "s": "image consistency L_s",
               "kd": "distillation L_kd"}


def plot_training_curves(train_rows: Sequence[dict], val_rows: Sequence[dict] = (), title: str = "Training"):
    """Loss terms, pseudo-label mask ratio and validation Dice against iteration."""
    fig, axes = new_figure(1, 3, figsize=(13, 3.6))
    ax_l, ax_m, ax_v = axes[0]
    it = [r["iteration"] for r in train_rows]
    for k in LOSS_KEYS:
        if any(k in r for r in train_rows):
            ax_l.plot(it, [r.get(k, np.nan) for r in train_rows], label=LOSS_LABELS[k])
    ax_l.set(title="Loss terms", xlabel="iteration", ylabel="loss")
    if train_rows:
        ax_l.legend(fontsize=8)
    ratio = [r.get("mask_ratio", np.nan) for r in train_rows]
    if np.isfinite(np.asarray(ratio, dtype=float)).any():
        ax_m.plot(it, ratio, color="C4", label="confident pixels")
    lr0 = train_rows[0].get("lr", 1) if train_rows else 1
    ax_m.plot(it, [r.get("lr", np.nan) / lr0 for r in train_rows], color="C7", ls="--", label="lr / initial lr")
    ax_m.set(title="Pseudo-label mask ratio and lr", xlabel="iteration", ylabel="fraction", ylim=(-0.02, 1.02))
    ax_m.legend(fontsize=8)
    if val_rows:
        vi = [r["iteration"] for r in val_rows]
        ax_v.plot(vi, [100 * r["val_dice"] for r in val_rows], "o-", color="k", label="mean")
        for k in sorted({k for r in val_rows for k in r if k.startswith("val_dice_")}):
            ax_v.plot(vi, [100 * (r.get(k) or 0) for r in val_rows], ".--", label=k[len("val_dice_"):])
        ax_v.legend(fontsize=8)
    ax_v.set(title="Validation Dice", xlabel="iteration", ylabel="Dice (%)", ylim=(-2, 102))
    fig.suptitle(title)
    return fig


class LiveCurves:
    """An `on_log` callback that redraws the training curves in place while a run trains.

    It redraws on every validation row (and every `every` training rows), updating one
    display, so a papermill/nbval notebook keeps a single output instead of hundreds."""

    def __init__(self, title: str = "Training (live)", every: int = 50):
        self.title, self.every = title, every
        self.train_rows: list[dict] = []
        self.val_rows: list[dict] = []
        self._handle = None
        self._since = 0

    def __call__(self, row: dict) -> None:
        (self.val_rows if "val_dice" in row else self.train_rows).append(row)
        self._since += 1
        if "val_dice" in row or self._since >= self.every:
            self.draw()

    def draw(self) -> None:
        self._since = 0
        try:
            from IPython.display import display
        except ImportError:
            return
        import matplotlib.pyplot as plt

        fig = plot_training_curves(self.train_rows, self.val_rows, self.title)
        image = as_image(fig)
        plt.close(fig)
        if self._handle is None:
            self._handle = display(image, display_id=True)
        else:
            self._handle.update(image)


def plot_val_comparison(val_rows: dict[str, Sequence[dict]], title: str = "Validation Dice during training"):
    """One validation-Dice curve per run; val_rows: run name -> its validation rows."""
    fig, axes = new_figure(1, 1, figsize=(6.5, 3.6))
    ax = axes[0][0]
    for name, rows in val_rows.items():
        ax.plot([r["iteration"] for r in rows], [100 * r["val_dice"] for r in rows], "o-", label=name)
    ax.set(title=title, xlabel="iteration", ylabel="mean val Dice (%)")
    ax.legend()
    return fig


# ---------------------------------------------------------------- scores and loss terms
def plot_dice_comparison(dice: "pd.DataFrame", title: str = "Test Dice"):  # noqa: F821
    """Grouped bars: Dice (%) per class and mean, one colour per run (rows of `dice`, as
    `tables.dice_frame` gives them)."""
    import seaborn as sns

    df = dice.reset_index(names="run").melt(id_vars="run", var_name="class", value_name="Dice (%)")
    fig, axes = new_figure(1, 1, figsize=(6.5, 3.6))
    ax = axes[0][0]
    sns.barplot(data=df, x="class", y="Dice (%)", hue="run", ax=ax)
    for cont in ax.containers:
        ax.bar_label(cont, fmt="%.1f", fontsize=7)
    ax.set(title=title, xlabel="", ylim=(0, 100))
    # Outside the axes: inside, the legend hides the labels of the tallest bars.
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), frameon=False, title="run")
    return fig


def plot_terms(terms_by_run: dict[str, dict[str, float]], title: str = "Loss terms on one batch",
               xlabels: dict[str, str] | None = None):
    """Horizontal bars of loss-term values. Without `xlabels`: one axis, one colour per run
    (runs whose values share a unit, e.g. by hand vs crossmatch_step). With `xlabels` (run ->
    its axis label): one panel per run, each on its own scale (e.g. hard Dice vs soft KL terms)."""
    import pandas as pd
    import seaborn as sns

    df = pd.DataFrame(terms_by_run).reset_index(names="term").melt(id_vars="term", var_name="run",
                                                                  value_name="value")
    n_terms = len(df["term"].unique())
    if not xlabels:
        fig, axes = new_figure(1, 1, figsize=(7, 0.35 * n_terms + 1.6))
        sns.barplot(data=df, y="term", x="value", hue="run", ax=axes[0][0], orient="h")
        axes[0][0].set(title=title, xlabel="loss value", ylabel="")
        return fig
    fig, axes = new_figure(1, len(terms_by_run), figsize=(4.2 * len(terms_by_run), 0.35 * n_terms + 1.6),
                           sharey=True)
    for ax, (run, colour) in zip(axes[0], zip(terms_by_run, sns.color_palette())):
        sns.barplot(data=df[df["run"] == run], y="term", x="value", ax=ax, orient="h", color=colour)
        ax.set(title=run, xlabel=xlabels.get(run, "loss value"), ylabel="")
    fig.suptitle(title)
    return fig


def plot_curve(x, series: dict[str, Sequence[float]], title: str, xlabel: str, ylabel: str,
               marks: dict[str, float] | None = None, figsize=(5.5, 3.6)):
    """Lines of y against x, one per series, with optional dashed vertical marks (name: x)."""
    fig, axes = new_figure(1, 1, figsize=figsize)
    ax = axes[0][0]
    for name, y in series.items():
        ax.plot(x, y, "o-", label=name)
    for name, pos in (marks or {}).items():
        ax.axvline(pos, ls="--", color="grey")
        ax.text(pos, ax.get_ylim()[1], name, ha="center", va="bottom", fontsize=8)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return fig


def plot_target_bars(targets: dict[str, np.ndarray], class_names: Sequence[str], title: str):
    """Grouped bars of class distributions (hard one-hot and soft targets of one pixel)."""
    fig, axes = new_figure(1, 1, figsize=(7, 3.4))
    ax = axes[0][0]
    width = 0.8 / len(targets)
    k = len(class_names)
    for j, (name, p) in enumerate(targets.items()):
        ax.bar(np.arange(k) + j * width, _np(p), width, label=name)
    ax.set_xticks(np.arange(k) + 0.4 - width / 2, class_names)
    ax.set(title=title, ylabel="probability")
    ax.legend(fontsize=8)
    return fig


# ---------------------------------------------------------------- the loss graph
def draw_crossmatch_graph(eta: float = 0.3):
    """The teacher -> student graph of every CrossMatch loss term, as boxes and arrows,
    labelled with the symbols of docs/method.md and notebooks 04 and 04b (matplotlib mathtext)."""
    from matplotlib.patches import FancyBboxPatch

    fig, axes = new_figure(1, 1, figsize=(10, 5.4))
    ax = axes[0][0]
    nodes = {  # name: (x, y, text, colour)
        "pw": (0.12, 0.50, "$p_w$\nclean, weak view $u^w$\n(teacher)", "#009E73"),
        "pww": (0.42, 0.82, "$p_w^{0.25}$\nweak stream", "#56B4E9"),
        "pws": (0.42, 0.18, "$p_w^{0.75}$\nstrong stream", "#0072B2"),
        "ps1": (0.42, 0.50, "$p_{s_1}, p_{s_2}$\nstrong image views", "#E69F00"),
        "ps2w": (0.82, 0.82, "$p_{s_2}^{0.25}$", "#CC79A7"),
        "ps2s": (0.82, 0.18, "$p_{s_2}^{0.75}$", "#CC79A7"),
    }
    for x, y, text, colour in nodes.values():
        ax.add_patch(FancyBboxPatch((x - 0.1, y - 0.07), 0.2, 0.14, boxstyle="round,pad=0.01",
                                    fc=colour, ec="k", alpha=0.35))
        ax.text(x, y, text, ha="center", va="center", fontsize=9)
    edges = [  # teacher, student, label, style
        ("pw", "ps1", "$\\mathcal{L}_{s_1}, \\mathcal{L}_{s_2}$", "k"),
        ("pw", "pww", "$a$", "#009E73"), ("pw", "pws", "$b$", "#009E73"),
        ("pw", "ps2w", "$c$", "#009E73"), ("pw", "ps2s", "$d$", "#009E73"),
        ("pww", "ps2w", "$e$ (cross)", "#D55E00"), ("pws", "ps2s", "$f$ (cross)", "#D55E00"),
    ]
    for t, s, label, colour in edges:
        (x0, y0), (x1, y1) = nodes[t][:2], nodes[s][:2]
        start, end = (x0 + 0.1, y0), (x1 - 0.1, y1)
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.4))
        frac = 0.62 if t == "pw" and s.startswith("ps2") else 0.5
        mx, my = start[0] + frac * (end[0] - start[0]), start[1] + frac * (end[1] - start[1])
        ax.text(mx, my + 0.025, label, color=colour, fontsize=10, ha="center", fontweight="bold",
                bbox=dict(fc="white", ec="none", alpha=0.8, pad=0.5))
    ax.text(0.5, -0.05, "$\\mathcal{L}_{kd} = (1-\\eta)\\,\\frac{a+b+c+d}{4} + \\eta\\,\\frac{e+f}{2}$, "
            f"$\\eta = {eta:g}$;   "
            "$\\mathcal{L} = (\\mathcal{L}_x + 0.25\\,\\mathcal{L}_{s_1} + 0.25\\,\\mathcal{L}_{s_2}"
            " + 0.5\\,\\mathcal{L}_{kd})\\,/\\,2$", ha="center", fontsize=10)
    ax.text(0.5, 1.03, "arrows point from teacher (detached, argmax, confidence ≥ τ) to student; "
            "superscripts: feature-dropout rate", ha="center", fontsize=8, style="italic")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.1, 1.08)
    ax.set_axis_off()
    fig.suptitle("CrossMatch: teacher → student pairs of every unlabeled loss term")
    return fig


# ---------------------------------------------------------------- ablation grids
def grid_bar(d, variant: str, paired: str | None, name: str):
    """Mean test Dice per variant (± sd over the paired axis, one dot per cell); d has the
    columns variant, setting, value (a fraction) for class "mean"."""
    import seaborn as sns

    d = d.assign(**{"Dice (%)": 100 * d["value"]})
    settings = list(dict.fromkeys(d["setting"]))
    many = len(settings) > 1
    fig, axes = new_figure(1, 1, figsize=(max(5, 1.3 * d[variant].nunique() * max(1, len(settings)) ** 0.5 + 2), 4))
    ax = axes[0][0]
    sns.barplot(d, x=variant, y="Dice (%)", hue="setting" if many else variant, errorbar="sd", capsize=0.15,
                ax=ax, legend=many, palette="colorblind", dodge=many)
    if many:
        sns.stripplot(d, x=variant, y="Dice (%)", hue="setting", dodge=True, palette=["black"] * len(settings),
                      size=3.5, ax=ax, legend=False)
    else:
        sns.stripplot(d, x=variant, y="Dice (%)", color="black", size=3.5, ax=ax)
    ax.set_title(f"{name}: mean test Dice per {variant}"
                 + (f" (± sd over {paired}s, dots = {paired}s)" if paired else ""), fontsize=10)
    ax.tick_params(axis="x", rotation=30)
    ax.set_xlabel(variant)
    return fig


def grid_heatmaps(groups: list[tuple[str, "pd.DataFrame"]], variant: str, col: str):  # noqa: F821
    """One annotated heatmap of mean test Dice (variant x col) per group (subtitle, table)."""
    import seaborn as sns

    width = max(1, max(t.shape[1] for _, t in groups))
    fig, axes = new_figure(1, len(groups), figsize=(2.2 + 1.4 * width * len(groups),
                                                    0.5 * max(t.shape[0] for _, t in groups) + 1.8))
    for ax, (sub, table) in zip(axes[0], groups):
        sns.heatmap(100 * table, annot=True, fmt=".1f", cmap="viridis", cbar_kws={"label": "test Dice (%)"}, ax=ax)
        ax.set_title(f"mean test Dice: {variant} x {col}" + (f"\n{sub}" if sub else ""), fontsize=10)
    return fig


def grid_per_class(d, variant: str, title: str, setting: str | None = "setting"):
    """Test Dice per class (bars: mean ± sd over cells), one colour per variant, one panel
    per setting (when `setting` names a column with several values)."""
    import seaborn as sns

    d = d.assign(**{"Dice (%)": 100 * d["value"]})
    settings = list(dict.fromkeys(d[setting])) if setting and setting in d else [None]
    g = sns.catplot(d, x="class", y="Dice (%)", hue=variant, col=setting if settings != [None] else None,
                    kind="bar", errorbar="sd", capsize=0.1, height=3.8, aspect=1.2 if len(settings) > 1 else 1.6,
                    col_wrap=min(3, len(settings)) if settings != [None] else None, palette="colorblind")
    if settings != [None]:
        g.set_titles("{col_name}")
    g.figure.suptitle(title, y=1.03)
    return g.figure


def grid_curves(m, variant: str, settings: list[str], title: str):
    """Training loss (log scale) and validation Dice per variant (mean ± sd over cells),
    one column per setting; m: metrics.jsonl rows with variant and setting columns."""
    import seaborn as sns

    fig, axes = new_figure(2, len(settings), figsize=(5.2 * len(settings) + 1.5, 6.5), sharex="col")
    for j, s in enumerate(settings):
        ms = m[m["setting"] == s]
        train = ms[ms["loss"].notna()] if "loss" in ms else ms.iloc[0:0]
        val = ms[ms["val_dice"].notna()] if "val_dice" in ms else ms.iloc[0:0]
        suffix = f" ({s})" if len(settings) > 1 else ""
        if len(train):
            sns.lineplot(train, x="iteration", y="loss", hue=variant, errorbar="sd", ax=axes[0][j],
                         palette="colorblind", legend=j == len(settings) - 1)
        axes[0][j].set_title("training loss" + suffix, fontsize=10)
        axes[0][j].set_yscale("log")
        if len(val):
            val = val.assign(**{"val Dice (%)": 100 * val["val_dice"]})
            sns.lineplot(val, x="iteration", y="val Dice (%)", hue=variant, errorbar="sd", marker="o",
                         ax=axes[1][j], palette="colorblind", legend=False)
        axes[1][j].set_title("validation Dice" + suffix, fontsize=10)
    if axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1))
    fig.suptitle(title)
    return fig


def grid_qualitative(images, labels, predictions: dict[str, list], titles: list[str], title: str):
    """Rows: ground truth, then one row per variant; columns: the same test slices.

    images/labels: one (C,H,W)/(H,W) array per column; predictions: variant -> one (H,W)
    map per column; titles: one per column (case and slice)."""
    names = ["ground truth", *predictions]
    k = len(images)
    fig, axes = new_figure(len(names), k, figsize=(2.1 * k + 0.6, 2.1 * len(names) + 0.4))
    for j in range(k):
        overlay(axes[0][j], images[j], labels[j], title=titles[j])
        for i, v in enumerate(predictions, start=1):
            overlay(axes[i][j], images[j], predictions[v][j])
    for i, name in enumerate(names):
        ax = axes[i][0]
        ax.set_axis_on()
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_ylabel(name, fontsize=10, fontweight="bold")
        for sp in ax.spines.values():
            sp.set_visible(False)
    fig.suptitle(title, fontsize=11)
    return fig


def plot_grid_results(df, metric: str | None = None, by: str | None = None, title: str = "Ablation grid"):
    """Bar chart (mean and spread over seeds, one dot per cell) of one metric per variant.

    df: a wide table, one row per cell (`tables.grid_frame` of a results.csv); metric: a
    numeric column (default: the first with 'dice' in its name, test first); by: the column
    naming the variant (default: 'variant', else the first text column)."""
    import seaborn as sns
    from pandas.api.types import is_numeric_dtype

    if metric is None:
        numeric = [c for c in df.columns if is_numeric_dtype(df[c])]
        pref = [c for c in numeric if "test" in c.lower() and "dice" in c.lower()]
        pref = pref or [c for c in numeric if "dice" in c.lower()]
        if not pref:
            raise ValueError(f"no Dice column among {list(df.columns)}; pass metric=")
        metric = pref[0]
    if by is None:
        text = [c for c in df.columns if not is_numeric_dtype(df[c]) and c != "cell"]
        by = "variant" if "variant" in df.columns else (text[0] if text else df.columns[0])
    values = df[metric].astype(float)
    scale = 100.0 if values.max() <= 1.0 else 1.0
    plot_df = df.assign(_y=values * scale)
    order = plot_df.groupby(by)["_y"].mean().sort_values().index.tolist()
    fig, axes = new_figure(1, 1, figsize=(max(5.0, 1.1 * len(order) + 2), 3.8))
    ax = axes[0][0]
    sns.barplot(data=plot_df, x=by, y="_y", order=order, ax=ax, errorbar="sd", color="#0072B2", alpha=0.8)
    sns.stripplot(data=plot_df, x=by, y="_y", order=order, ax=ax, color="k", size=4)
    ax.set(xlabel=by, ylabel=f"{metric}{' (%)' if scale == 100.0 else ''}", title=title)
    ax.tick_params(axis="x", rotation=30)
    return fig
