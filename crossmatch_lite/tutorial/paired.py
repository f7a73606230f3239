"""Committed results files drawn for the notebooks: per-seed values, paired differences
between variants with t-based 95 % intervals (a forest plot), CPU minutes beside Dice, and
supervised-versus-CrossMatch pairs per seed.

Everything is read through `results.read_results` and `results.table_rows`, and the
intervals come from `results.paired_delta`, so a figure shows the same numbers as the
tables of docs/results.md. Nothing here trains.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from .figures import new_figure
from .results import Col, paired_delta, read_results, table_rows, value


def rows_of(path: str | Path, evaluation: tuple[str, str] = ("best", "running")) -> list[dict]:
    """The table rows (results.table_rows) of one evaluation (checkpoint, BatchNorm)."""
    header, records = read_results(path)
    return [r for r in table_rows(header, records) if (r.get("checkpoint"), r.get("bn")) == tuple(evaluation)]


def find_label(rows: list[dict], wanted: str) -> str | None:
    """The row label that is `wanted`, else the first that contains it (case-insensitive):
    'crossmatch' finds "`acdc_cpu` (CrossMatch)" as well as "crossmatch"."""
    labels = [r["label"] for r in rows]
    if wanted in labels:
        return wanted
    return next((lab for lab in labels if wanted.lower() in lab.lower()), None)


def seed_table(rows: list[dict], metric: str = "test_dice") -> "pd.DataFrame":  # noqa: F821
    """One row per (label, seed) of the per-run rows: label, seed, metric, CPU minutes."""
    import pandas as pd

    out = [{"label": r["label"], "seed": run["seed"], metric: run.get(metric),
            "cpu_minutes": None if run.get("cpu_seconds") is None else run["cpu_seconds"] / 60}
           for r in rows if "runs" in r for run in r["runs"]]
    return pd.DataFrame(out, columns=["label", "seed", metric, "cpu_minutes"])


def differences(rows: list[dict], reference: str, metric: str = "test_dice") -> "pd.DataFrame":  # noqa: F821
    """Each other label minus `reference`, paired by seed: mean, 95 % t interval (lo, hi;
    None with one pair), the number of pairs and the per-seed differences."""
    import pandas as pd

    ref = next((r for r in rows if r["label"] == reference and "runs" in r), None)
    if ref is None:
        raise ValueError(f"no per-seed row {reference!r} among {[r['label'] for r in rows]}")
    theirs = {run["seed"]: run.get(metric) for run in ref["runs"]}
    out = []
    for r in rows:
        if r is ref or "runs" not in r:
            continue
        delta = paired_delta(r, metric, rows, reference)
        if delta is None:
            continue
        per_seed = [run[metric] - theirs[run["seed"]] for run in r["runs"]
                    if run.get(metric) is not None and theirs.get(run["seed"]) is not None]
        out.append({"label": r["label"], "mean": delta[0], "lo": delta[1], "hi": delta[2], "n": len(per_seed),
                    "per_seed": per_seed})
    return pd.DataFrame(out, columns=["label", "mean", "lo", "hi", "n", "per_seed"])


def plot_forest(path: str | Path, references: Sequence[str] = ("crossmatch", "supervised"),
                title: str | None = None, metric: str = "test_dice"):
    """Per reference (found with `find_label`), a forest plot of every other variant minus
    it: the paired mean (dot), its 95 % t interval (line; none with one seed) and the
    per-seed differences (small dots); last panel: each variant's mean Dice against its
    mean CPU minutes of training. References a file lacks are left out."""
    rows = rows_of(path)
    refs = [lab for lab in (find_label(rows, w) for w in references) if lab]
    if not refs:
        raise ValueError(f"{path}: none of the labels {list(references)} among {[r['label'] for r in rows]}")
    order = [r["label"] for r in rows if "runs" in r]
    fig, axes = new_figure(1, len(refs) + 1, figsize=(4.6 * len(refs) + 4.6, 0.45 * len(order) + 1.8))
    for ax, ref in zip(axes[0], refs):
        d = differences(rows, ref, metric).set_index("label").reindex([lab for lab in order if lab != ref])
        ys = np.arange(len(d))[::-1]
        for y, (lab, r) in zip(ys, d.iterrows()):
            if np.isnan(r["mean"]):
                continue
            if r["lo"] is not None and not np.isnan(r["lo"]):
                ax.plot([r["lo"], r["hi"]], [y, y], color="#0072B2", lw=2)
            ax.plot(r["per_seed"], [y] * len(r["per_seed"]), "o", color="grey", ms=3.5, alpha=0.8)
            ax.plot([r["mean"]], [y], "D", color="#0072B2", ms=6)
        ax.axvline(0, color="k", lw=0.8, ls="--")
        ax.set_yticks(ys, d.index)
        ax.set(xlabel=f"Δ test Dice vs {ref} (points)", title=f"minus {ref}")
    ax = axes[0][-1]
    seeds = seed_table(rows, metric)
    means = seeds.groupby("label", sort=False)[[metric, "cpu_minutes"]].mean()
    ax.scatter(means["cpu_minutes"], means[metric], color="#D55E00")
    for lab, r in means.iterrows():
        ax.annotate(lab, (r["cpu_minutes"], r[metric]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set(xlabel="CPU minutes of training (mean per run)", ylabel="test Dice (%)", title="cost and Dice")
    n_seeds = seeds.groupby("label")["seed"].nunique()
    fig.suptitle(title or f"{Path(path).stem}: paired differences by seed, 95 % t intervals "
                 f"({n_seeds.min()}-{n_seeds.max()} seeds)")
    return fig


def plot_pairs(entries: Sequence[tuple[str, str | Path, str, str]], metric: str = "test_dice"):
    """Per entry (title, results file, baseline label, method label): the two labels' mean
    test Dice (± sd over seeds) side by side, with a line per seed joining its two runs
    where the file holds per-seed runs."""
    fig, axes = new_figure(1, len(entries), figsize=(3.6 * len(entries), 3.8), sharey=False)
    for ax, (title, path, base, method) in zip(axes[0], entries):
        rows = rows_of(path)
        header, _ = read_results(path)
        labels = [find_label(rows, base), find_label(rows, method)]
        if None in labels:
            raise ValueError(f"{path}: no rows {base!r} and {method!r} among {[r['label'] for r in rows]}")
        picked = [next(r for r in rows if r["label"] == lab) for lab in labels]
        stats = [value(r, Col("", "pm", metric), rows, header) for r in picked]
        for x, (mean, sd) in enumerate(stats):
            ax.bar(x, mean, color=["#999999", "#0072B2"][x], alpha=0.6)
            if sd is not None:
                ax.errorbar(x, mean, yerr=sd, color="k", capsize=4)
        if all("runs" in r for r in picked):
            by_seed = [{run["seed"]: run[metric] for run in r["runs"]} for r in picked]
            for seed in sorted(set(by_seed[0]) & set(by_seed[1])):
                ax.plot([0, 1], [by_seed[0][seed], by_seed[1][seed]], "o-", color="k", ms=3, lw=0.8)
        ax.set_xticks([0, 1], ["baseline", "CrossMatch"])
        low = min(s[0] - (s[1] or 0) for s in stats)
        ax.set(title=title, ylabel="test Dice (%)", ylim=(max(0, low - 15), 100))
    fig.suptitle("Real data (committed results): baseline vs CrossMatch, lines join runs of one seed")
    return fig
