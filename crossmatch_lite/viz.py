"""Plumbing and figures shared by the tutorial notebooks in notebooks/.

The notebooks stay thin: they explain, call the package, and draw with the helpers below.
Nothing here changes how a model trains; it resolves paths and parameters the way every
notebook does, reads run folders, and turns arrays into titled, self-contained figures
(each one saved as PNG and SVG through `plotting.save_figure`).
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from .config import Config, load_config
from .plotting import CLASS_COLORS, apply_style, overlay, save_figure
from .smoke import scaled, smoke_mode

__all__ = [
    "project_root", "resolve_config_path", "resolve_out_dir", "convenience_overrides",
    "notebook_config", "prepare_run_dir", "read_metrics", "show", "plot_training_curves",
    "LiveCurves", "metrics_frame", "pick_slices", "plot_predictions", "image_grid",
    "class_legend", "dropout_disagreement", "draw_crossmatch_graph", "plot_grid_results", "grid_frame",
    "trained", "dice_frame", "plot_dice_comparison", "plot_val_comparison", "plot_terms", "case_dice",
    "apply_style", "overlay", "save_figure", "scaled", "smoke_mode", "new_figure", "CLASS_COLORS",
]


# ---------------------------------------------------------------- paths and parameters
def project_root() -> Path | None:
    """The checkout that holds this package (the folder with configs/), if there is one."""
    root = Path(__file__).resolve().parent.parent
    return root if (root / "configs").is_dir() else None


def resolve_config_path(path: str | Path) -> Path:
    """A preset or resolved config file, found as given (relative to the working directory),
    then relative to notebooks/ and to the project root, then as a bare preset name
    ("crossmatch" -> configs/crossmatch.yaml). Papermill runs a notebook with the notebook's
    folder as working directory, a user may start Jupyter at the project root: both work."""
    p = Path(path)
    candidates = [p]
    root = project_root()
    if root is not None and not p.is_absolute():
        candidates += [root / "notebooks" / p, root / p, root / "configs" / p,
                       root / "configs" / f"{p.name}.yaml"]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"config {path!s} not found (tried {tried}); presets live in configs/, "
                            "e.g. configs/crossmatch.yaml")


def resolve_out_dir(out_dir: str | Path) -> Path:
    """Absolute paths as given; relative ones under the project root (so runs land in the
    git-ignored runs/ wherever Jupyter was started), or the working directory outside a checkout."""
    p = Path(out_dir)
    if p.is_absolute():
        return p
    root = project_root()
    return (root / p) if root is not None else p.resolve()


def convenience_overrides(dataset: str | None = None, data_root: str | None = None,
                          labeled: float | None = None, iterations: int | None = None,
                          seed: int | None = None, size: int | None = None,
                          batch_size: int | None = None, validations: int = 6) -> list[str]:
    """The notebooks' short parameters as `key=value` overrides (None or "" leaves a key alone).

    `train.val_every` is set so that the run validates `validations` times: a short run still
    draws a validation curve and picks its best checkpoint on val."""
    out = []
    if dataset:
        out.append(f"data.name={dataset}")
    if data_root:
        out.append(f"data.root={data_root}")
    if labeled is not None:
        out.append(f"data.labeled={labeled}")
    if size:
        out.append(f"data.size={int(size)}")
    if batch_size:
        out.append(f"train.batch_size={int(batch_size)}")
    if seed is not None:
        out.append(f"train.seed={int(seed)}")
    if iterations:
        out.append(f"train.iterations={int(iterations)}")
        out.append(f"train.val_every={max(1, int(iterations) // max(1, int(validations)))}")
    return out


def notebook_config(config: str | Path, overrides: Iterable[str] = (),
                    convenience: Iterable[str] = ()) -> Config:
    """Load a preset, apply the convenience overrides, then the user's (which win), then
    switch the progress bar off (papermill logs and nbval would fill with it)."""
    return load_config(resolve_config_path(config), [*convenience, *overrides, "train.progress=false"])


def prepare_run_dir(out_dir: str | Path, resume: bool = True) -> Path:
    """Resolve the run folder; with resume=False an earlier run there is removed first
    (only a folder that looks like a run: it holds config.yaml)."""
    out = resolve_out_dir(out_dir)
    if not resume and (out / "config.yaml").exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def read_metrics(run_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """metrics.jsonl split into training rows and validation rows."""
    path = Path(run_dir) / "metrics.jsonl"
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []
    return [r for r in rows if "loss" in r], [r for r in rows if "val_dice" in r]


# ---------------------------------------------------------------- figures
def show(fig, out_dir: str | Path, name: str) -> list[Path]:
    """Save `fig` as PNG + SVG under out_dir, display it once, and close it."""
    import matplotlib.pyplot as plt

    paths = save_figure(fig, out_dir, name)
    try:
        from IPython.display import display

        display(fig)
    except ImportError:  # plain Python: the saved files are the output
        pass
    plt.close(fig)
    return paths


def new_figure(nrows: int = 1, ncols: int = 1, figsize=None, **kw):
    """A figure that pyplot does not auto-display at the end of a cell (we display it once)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize or (4.2 * ncols, 3.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


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
    ax_m.plot(it, [r.get("lr", np.nan) / max(r.get("lr", 1) for r in train_rows[:1]) if train_rows else np.nan
                   for r in train_rows], color="C7", ls="--", label="lr / initial lr")
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
        fig = plot_training_curves(self.train_rows, self.val_rows, self.title)
        if self._handle is None:
            self._handle = display(fig, display_id=True)
        else:
            self._handle.update(fig)


def metrics_frame(summary: dict, split: str = "test"):
    """One row per metric (Dice %, Jaccard %, HD95, ASD), one column per class plus mean."""
    import pandas as pd

    part = summary.get(split, summary)
    rows = {}
    for metric, entry in part.items():
        if not isinstance(entry, dict) or "mean" not in entry:
            continue
        scale = 100.0 if metric in ("dice", "jaccard") else 1.0
        label = f"{metric} (%)" if scale == 100.0 else metric
        rows[label] = {k: (None if v is None else round(scale * v, 2)) for k, v in entry.items()}
    df = pd.DataFrame.from_dict(rows, orient="index")
    cols = [c for c in df.columns if c != "mean"] + (["mean"] if "mean" in df.columns else [])
    return df[cols]


def pick_slices(cases, n: int = 4) -> list[tuple[int, int]]:
    """(case index, slice index) of n slices from different cases, each its case's slice with
    the most foreground, so that the pictures show the structures rather than empty apex slices."""
    picks = []
    for i, c in enumerate(cases[: max(n, 1) * 3]):
        fg = (np.asarray(c.label) > 0).reshape(len(c.label), -1).sum(1)
        picks.append((int(fg.max()), i, int(fg.argmax())))
    picks.sort(key=lambda t: (-t[0], t[1]))
    return sorted((i, z) for _, i, z in picks[:n])


def class_legend(fig, class_names: Sequence[str]) -> None:
    from matplotlib.patches import Patch

    handles = [Patch(color=CLASS_COLORS[k], label=name) for k, name in enumerate(class_names) if k > 0]
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=8, frameon=False)


def plot_predictions(cases, predictions: dict[str, dict[str, np.ndarray]], slices, class_names,
                     title: str = "Test predictions", dice: dict[str, dict[str, float]] | None = None):
    """Rows: chosen slices; columns: image, ground truth, then one column per model.

    predictions: model name -> {case id: (Z, H, W) prediction}; dice (optional): model name ->
    {case id: mean Dice of that case}, shown in the panel titles."""
    names = list(predictions)
    fig, axes = new_figure(len(slices), 2 + len(names), figsize=(2.4 * (2 + len(names)), 2.5 * len(slices) + 0.4))
    for r, (ci, z) in enumerate(slices):
        case = cases[ci]
        img = case.image[z]
        overlay(axes[r][0], img, None, f"{case.id} slice {z}")
        overlay(axes[r][1], img, case.label[z], "ground truth")
        for j, name in enumerate(names):
            t = name
            if dice and case.id in dice.get(name, {}):
                t += f" (case Dice {100 * dice[name][case.id]:.0f}%)"
            overlay(axes[r][2 + j], img, predictions[name][case.id][z], t)
    class_legend(fig, class_names)
    fig.suptitle(title)
    return fig


def case_dice(summary: dict) -> dict[str, float]:
    """case id -> mean foreground Dice, from an `evaluate`/summary entry with 'cases'."""
    out = {}
    for c in summary.get("cases", []):
        vals = [v for v in c.get("dice", {}).values() if v is not None]
        out[c["id"]] = float(np.mean(vals)) if vals else float("nan")
    return out


def image_grid(panels: Sequence[Sequence[tuple]], title: str, class_names: Sequence[str] | None = None,
               box_color: str = "#D55E00"):
    """A grid of overlays. panels[row][col] = (image (C,H,W)|(H,W), label or None, title[, box]),
    where an optional box (H, W) {0,1} mask is outlined (CutMix boxes)."""
    nrows, ncols = len(panels), max(len(r) for r in panels)
    fig, axes = new_figure(nrows, ncols, figsize=(2.3 * ncols, 2.4 * nrows + (0.4 if class_names else 0)))
    for r, row in enumerate(panels):
        for c in range(ncols):
            ax = axes[r][c]
            if c >= len(row) or row[c] is None:
                ax.set_axis_off()
                continue
            image, label, sub = row[c][:3]
            overlay(ax, _np(image), None if label is None else _np(label), sub)
            if len(row[c]) > 3 and row[c][3] is not None and _np(row[c][3]).any():
                ax.contour(_np(row[c][3]), levels=[0.5], colors=[box_color], linewidths=1.2)
    if class_names:
        class_legend(fig, class_names)
    fig.suptitle(title)
    return fig


def _np(x) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            return x.detach().float().cpu().numpy()
    except ImportError:
        pass
    return np.asarray(x)


# ---------------------------------------------------------------- feature perturbation
def dropout_disagreement(model, images, rates: Sequence[float], repeats: int = 4, seed: int = 0) -> dict:
    """How often channel dropout on the encoder features flips the predicted class.

    For each rate, decodes `images` through `unet.drop_features(features, rate)` `repeats`
    times and returns, per rate, the share of pixels whose argmax differs from the clean
    decoding, and the mean max-softmax confidence (both averaged over images and repeats)."""
    import torch

    from .unet import drop_features

    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)
    model.eval()
    out = {"rate": [], "flipped": [], "confidence": []}
    with torch.no_grad():
        feats = model.encode(images)
        clean = model.decode(feats).argmax(1)
        for rate in rates:
            flips, conf = [], []
            for _ in range(repeats):
                p = model.decode(drop_features(feats, rate)).softmax(1)
                flips.append((p.argmax(1) != clean).float().mean().item())
                conf.append(p.amax(1).mean().item())
            out["rate"].append(float(rate))
            out["flipped"].append(float(np.mean(flips)))
            out["confidence"].append(float(np.mean(conf)))
    torch.set_rng_state(gen_state)
    return out


# ---------------------------------------------------------------- the loss graph
def draw_crossmatch_graph(ax, eta: float = 0.3) -> None:
    """The teacher -> student graph of every CrossMatch loss term, as boxes and arrows."""
    from matplotlib.patches import FancyBboxPatch

    nodes = {  # name: (x, y, text, colour)
        "pw": (0.12, 0.50, "p_w\nclean, weak view\n(teacher)", "#009E73"),
        "pww": (0.42, 0.82, "p_w^weak\nDropout2d 0.25", "#56B4E9"),
        "pws": (0.42, 0.18, "p_w^strong\nDropout2d 0.75", "#0072B2"),
        "ps1": (0.42, 0.50, "p_s1, p_s2\nstrong image views", "#E69F00"),
        "ps2w": (0.82, 0.82, "p_s2^weak", "#CC79A7"),
        "ps2s": (0.82, 0.18, "p_s2^strong", "#CC79A7"),
    }
    for x, y, text, colour in nodes.values():
        ax.add_patch(FancyBboxPatch((x - 0.1, y - 0.07), 0.2, 0.14, boxstyle="round,pad=0.01",
                                    fc=colour, ec="k", alpha=0.35))
        ax.text(x, y, text, ha="center", va="center", fontsize=8)
    edges = [  # teacher, student, label, style
        ("pw", "ps1", "L_s1, L_s2", "k"),
        ("pw", "pww", "a", "#009E73"), ("pw", "pws", "b", "#009E73"),
        ("pw", "ps2w", "c", "#009E73"), ("pw", "ps2s", "d", "#009E73"),
        ("pww", "ps2w", "e (cross)", "#D55E00"), ("pws", "ps2s", "f (cross)", "#D55E00"),
    ]
    for t, s, label, colour in edges:
        (x0, y0), (x1, y1) = nodes[t][:2], nodes[s][:2]
        start, end = (x0 + 0.1, y0), (x1 - 0.1, y1)
        ax.annotate("", xy=end, xytext=start, arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.4))
        frac = 0.62 if t == "pw" and s.startswith("ps2") else 0.5
        mx, my = start[0] + frac * (end[0] - start[0]), start[1] + frac * (end[1] - start[1])
        ax.text(mx, my + 0.025, label, color=colour, fontsize=9, ha="center", fontweight="bold",
                bbox=dict(fc="white", ec="none", alpha=0.8, pad=0.5))
    ax.text(0.5, -0.04, f"L_kd = (1 - eta) (a+b+c+d)/4 + eta (e+f)/2, eta = {eta};   "
            "L = (L_x + 0.25 L_s1 + 0.25 L_s2 + 0.5 L_kd) / 2", ha="center", fontsize=9)
    ax.text(0.5, 1.03, "arrows point from teacher (detached, argmax, confidence-masked) to student",
            ha="center", fontsize=8, style="italic")
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.08, 1.08)
    ax.set_axis_off()


# ---------------------------------------------------------------- comparisons
def trained(cfg: Config, run_dir: str | Path, data=None, on_log: Callable | None = None):
    """Train (or resume, or reuse a finished run in run_dir) and return (trainer, summary) with
    the best-on-validation checkpoint loaded into trainer.model."""
    from .checkpoints import load_checkpoint
    from .train import Trainer

    trainer = Trainer(cfg, run_dir, data=data, on_log=on_log)
    summary = trainer.run()
    best = Path(run_dir) / "best.pt"
    if best.exists():
        trainer.model.load_state_dict(load_checkpoint(best, trainer.device)["model"])
    trainer.model.eval()
    return trainer, summary


def dice_frame(summaries: dict[str, dict], split: str = "test"):
    """Rows: runs; columns: Dice (%) per class and mean."""
    import pandas as pd

    return pd.DataFrame({name: {k: (None if v is None else 100 * v) for k, v in s[split]["dice"].items()}
                         for name, s in summaries.items()}).T


def plot_dice_comparison(summaries: dict[str, dict], split: str = "test", title: str = "Test Dice"):
    """Grouped bars: Dice (%) per class and mean, one colour per run."""
    import seaborn as sns

    df = dice_frame(summaries, split).reset_index(names="run").melt(id_vars="run", var_name="class",
                                                                    value_name="Dice (%)")
    fig, axes = new_figure(1, 1, figsize=(6.5, 3.6))
    ax = axes[0][0]
    sns.barplot(data=df, x="class", y="Dice (%)", hue="run", ax=ax)
    for cont in ax.containers:
        ax.bar_label(cont, fmt="%.1f", fontsize=7)
    ax.set(title=title, xlabel="", ylim=(0, 100))
    return fig


def plot_val_comparison(run_dirs: dict[str, str | Path], title: str = "Validation Dice during training"):
    fig, axes = new_figure(1, 1, figsize=(6.5, 3.6))
    ax = axes[0][0]
    for name, d in run_dirs.items():
        _, val = read_metrics(d)
        ax.plot([r["iteration"] for r in val], [100 * r["val_dice"] for r in val], "o-", label=name)
    ax.set(title=title, xlabel="iteration", ylabel="mean val Dice (%)")
    ax.legend()
    return fig


def plot_terms(terms_by_run: dict[str, dict[str, float]], title: str = "Loss terms on one batch"):
    """Grouped horizontal bars of loss-term values, one colour per run (e.g. hard vs soft)."""
    import pandas as pd
    import seaborn as sns

    df = pd.DataFrame(terms_by_run).reset_index(names="term").melt(id_vars="term", var_name="run",
                                                                  value_name="value")
    fig, axes = new_figure(1, 1, figsize=(7, 0.35 * len(df["term"].unique()) + 1.6))
    ax = axes[0][0]
    sns.barplot(data=df, y="term", x="value", hue="run", ax=ax, orient="h")
    ax.set(title=title, xlabel="loss value", ylabel="")
    return fig


# ---------------------------------------------------------------- ablation grids
def grid_frame(df, split: str = "test", metric: str = "dice", cls: str = "mean"):
    """The ablation runner's long results.csv (cell x split x metric x class) cut to one number per cell."""
    if {"split", "metric", "class", "value"} <= set(df.columns):
        df = df[(df["split"] == split) & (df["metric"] == metric) & (df["class"] == cls)]
        df = df.drop(columns=["split", "metric", "class"]).rename(columns={"value": f"{split}_{metric}_{cls}"})
    return df.reset_index(drop=True)


def plot_grid_results(df, metric: str | None = None, by: str | None = None, title: str = "Ablation grid"):
    """Bar chart (mean and spread over seeds, one dot per cell) of one metric per variant.

    df: the runner's results.csv (long) or any wide table; metric: a numeric column
    (default: the first with 'dice' in its name, test first); by: the column naming the
    variant (default: 'variant', else the first text column)."""
    import seaborn as sns

    from pandas.api.types import is_numeric_dtype

    df = grid_frame(df)
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
