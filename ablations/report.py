"""Tables and figures of a grid results folder, from the files alone (no training).

    results.csv   one row per cell x split x metric x class (axes as columns)
    cells.csv     one row per cell: state, attempts, time, error
    summary.csv   per setting and variant: mean and std over seeds of test metrics, and the
    summary.md    paired-over-seeds difference to the baseline with its 95 % t interval
    figures/      dice_bar, dice_heatmap, per_class_dice, training_curves, qualitative (PNG+SVG)

Figures are drawn by `crossmatch_lite.tutorial.figures`; this module only cuts the tables for them.

Axes are sorted into three roles: the *variant* axis (named `variant`, else the first
bundle axis, else the first axis), the *paired* axis (usually `seed`), and the rest,
whose values together make a *setting* (e.g. "labeled=3").
"""
from __future__ import annotations

import json
import math
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd


from crossmatch_lite.tutorial import figures as figs
from crossmatch_lite.tutorial.figures import save_figure
from crossmatch_lite.run.files import atomic_write_json, atomic_write_text
from crossmatch_lite.data import load_data
from crossmatch_lite.train import Trainer
from crossmatch_lite.predict import predict_cases
from crossmatch_lite.tutorial.tables import read_metrics
from .grid import cell_hash
from .runner import cell_dir, read_manifest, read_status

METRICS = ("dice", "jaccard", "hd95_vox", "asd_vox", "hd95_mm", "asd_mm")
CI_LEVEL = 0.95


# ---------------------------------------------------------------------------- roles
def roles(manifest: dict) -> tuple[str, str | None, list[str]]:
    axes = manifest["axes"]
    names = [a["name"] for a in axes]
    if "variant" in names:
        variant = "variant"
    else:
        bundles = [a["name"] for a in axes if a["key"] is None]
        variant = bundles[0] if bundles else names[0]
    paired = manifest.get("paired")
    paired = paired if paired in names and paired != variant else None
    setting = [n for n in names if n not in (variant, paired)]
    return variant, paired, setting


def _setting_label(row, setting: list[str]) -> str:
    return ", ".join(f"{k}={row[k]}" for k in setting) if setting else "all"


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_") or "all"


# ---------------------------------------------------------------------------- tables
def load_cells(out: Path, manifest: dict) -> list[dict]:
    """Each manifest cell with its status and summary; a folder whose config no longer
    hashes to its id is refused, so results of different configs never mix."""
    from crossmatch_lite.config import load_config

    cells = []
    for c in manifest["cells"]:
        cdir = cell_dir(out, c["id"])
        st = read_status(cdir)
        entry = {"id": c["id"], "axes": c["axes"], "dir": cdir, "status": st, "summary": None}
        if st.get("state") == "done" and (cdir / "summary.json").exists():
            try:
                cfg = load_config(cdir / "config.yaml")
                if cell_hash(cfg) != c["id"]:
                    raise ValueError(f"config hashes to {cell_hash(cfg)}")
                entry["summary"] = json.loads((cdir / "summary.json").read_text())
                entry["config"] = cfg
            except Exception as e:  # noqa: BLE001
                print(f"warning: cell {c['id']} left out of the report: {e}", file=sys.stderr)
        cells.append(entry)
    return cells


def results_table(cells: list[dict], axis_names: list[str]) -> pd.DataFrame:
    rows = []
    for c in cells:
        s = c["summary"]
        if not s:
            continue
        for split in ("test", "val"):
            m = s.get(split) or {}
            for metric in METRICS:
                for cls, v in (m.get(metric) or {}).items():
                    rows.append({"cell": c["id"], **c["axes"], "split": split, "metric": metric,
                                 "class": cls, "value": v})
    cols = ["cell", *axis_names, "split", "metric", "class", "value"]
    return pd.DataFrame(rows, columns=cols)


def cells_table(cells: list[dict], axis_names: list[str]) -> pd.DataFrame:
    rows = []
    for c in cells:
        st, s = c["status"], c["summary"] or {}
        rows.append({"cell": c["id"], **c["axes"], "state": st.get("state", "pending"),
                     "attempts": st.get("attempts", 0), "seconds": st.get("seconds"),
                     "train_seconds": s.get("train_seconds"), "best_iteration": s.get("best_iteration"),
                     "test_dice": ((s.get("test") or {}).get("dice") or {}).get("mean"),
                     "code": st.get("code"), "notebook_sha": st.get("notebook_sha"),
                     "error": (st.get("error") or "").splitlines()[0] if st.get("error") else ""})
    return pd.DataFrame(rows, columns=["cell", *axis_names, "state", "attempts", "seconds", "train_seconds",
                                       "best_iteration", "test_dice", "code", "notebook_sha", "error"])


def _t_quantile(n: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.5 + CI_LEVEL / 2, n - 1))


def paired_difference(a: pd.Series, b: pd.Series) -> dict:
    """a - b over the seeds both have: mean, t interval, number of pairs."""
    common = a.index.intersection(b.index)
    d = (a.loc[common] - b.loc[common]).astype(float).dropna()
    n = len(d)
    if n == 0:
        return {"diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_pairs": 0}
    mean = float(d.mean())
    if n == 1:
        return {"diff": mean, "ci_low": np.nan, "ci_high": np.nan, "n_pairs": 1}
    half = _t_quantile(n) * float(d.std(ddof=1)) / math.sqrt(n)
    return {"diff": mean, "ci_low": mean - half, "ci_high": mean + half, "n_pairs": n}


def summary_table(results: pd.DataFrame, manifest: dict, metric: str = "dice", split: str = "test") -> pd.DataFrame:
    variant, paired, setting = roles(manifest)
    names = [a["name"] for a in manifest["axes"]]
    order = {a["name"]: [str(v) for v in a["values"]] for a in manifest["axes"]}
    df = results[(results["split"] == split) & (results["metric"] == metric)].copy()
    if df.empty:
        return pd.DataFrame()
    for n in names:
        df[n] = df[n].astype(str)
    group_keys = [n for n in names if n != paired]
    classes = [c for c in df["class"].unique() if c != "mean"]
    baseline = {k: str(v) for k, v in (manifest.get("baseline") or {}).items()}
    rows = []
    for key, g in df.groupby(group_keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        axes = dict(zip(group_keys, key))
        mean_vals = g[g["class"] == "mean"].set_index(paired if paired else "cell")["value"]
        row = {**axes, "setting": _setting_label(axes, setting), "n": int(mean_vals.notna().sum()),
               "mean": mean_vals.mean(), "std": mean_vals.std(ddof=1) if len(mean_vals) > 1 else np.nan}
        for cls in classes:
            row[f"{cls}_mean"] = g[g["class"] == cls]["value"].mean()
        if baseline:
            base_axes = {**axes, **baseline}
            sel = df[(df["class"] == "mean")]
            for k, v in base_axes.items():
                sel = sel[sel[k] == v]
            row["baseline"] = ", ".join(f"{k}={v}" for k, v in baseline.items())
            if base_axes == axes or sel.empty or not paired:
                row.update({"diff": np.nan, "ci_low": np.nan, "ci_high": np.nan, "n_pairs": 0})
            else:
                row.update(paired_difference(mean_vals, sel.set_index(paired)["value"]))
        rows.append(row)
    out = pd.DataFrame(rows)
    # File order of the axes, not alphabetical.
    for n in group_keys:
        out[n] = pd.Categorical(out[n], categories=order[n], ordered=True)
    return out.sort_values(setting + [variant]).reset_index(drop=True)


def _fmt(v, pct=True, sign=False) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    v = 100 * v if pct else v
    return f"{v:+.1f}" if sign else f"{v:.1f}"


def failed_cells_line(cells: list[dict]) -> str | None:
    """One line naming the failed cells and why: the table leaves them out, and a grid whose
    table looks complete must not hide that some of its cells never finished."""
    failed = [c for c in cells if c["status"].get("state") == "failed"]
    if not failed:
        return None
    named = []
    for c in failed:
        label = ", ".join(f"{k}={v}" for k, v in c["axes"].items())
        reason = ((c["status"].get("error") or "").strip().splitlines() or ["no error recorded"])[0][:160]
        named.append(f"`{c['id']}` ({label}): {reason}")
    return (f"Left out of the table: {len(failed)} failed cell(s): " + "; ".join(named)
            + ". `python -m ablations status` on this folder shows their logs; re-running the grid retries them.")


def summary_markdown(summ: pd.DataFrame, manifest: dict, cells: list[dict] | None = None) -> str:
    variant, paired, setting = roles(manifest)
    failed = failed_cells_line(cells or [])
    tail = ["", failed] if failed else []
    lines = [f"# Grid `{manifest['name']}`: test Dice (%)", "",
             f"Mean ± std over `{paired}` (n per row); Δ = paired difference to the baseline "
             f"({', '.join(f'{k}={v}' for k, v in (manifest.get('baseline') or {}).items()) or 'none'}) "
             f"with its {int(CI_LEVEL * 100)} % t interval over {paired}s.", ""]
    if summ.empty:
        return "\n".join(lines + ["No finished cells yet."] + tail) + "\n"
    classes = [c[:-5] for c in summ.columns if c.endswith("_mean") and c != "mean"]
    head = ["setting", variant, "n", "Dice", "Δ vs baseline", f"{int(CI_LEVEL * 100)} % CI", *classes]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in summ.iterrows():
        ci = (f"[{_fmt(r.get('ci_low'), sign=True)}, {_fmt(r.get('ci_high'), sign=True)}]"
              if not pd.isna(r.get("ci_low", np.nan)) else "–")
        cells = [r["setting"], str(r[variant]), str(r["n"]), f"{_fmt(r['mean'])} ± {_fmt(r['std'])}",
                 _fmt(r.get("diff", np.nan), sign=True), ci, *[_fmt(r[f"{c}_mean"]) for c in classes]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines + tail) + "\n"


# ---------------------------------------------------------------------------- figures
def _frame_for_plots(results: pd.DataFrame, manifest: dict) -> pd.DataFrame:
    variant, paired, setting = roles(manifest)
    df = results[results["split"] == "test"].copy()
    for a in manifest["axes"]:
        df[a["name"]] = pd.Categorical(df[a["name"]].astype(str), [str(v) for v in a["values"]], ordered=True)
    df["setting"] = df.apply(lambda r: _setting_label(r, setting), axis=1) if len(df) else []
    return df


def _save(fig, figdir, name) -> None:
    import matplotlib.pyplot as plt

    save_figure(fig, figdir, name)
    plt.close(fig)


def fig_bar(df, manifest, figdir):
    variant, paired, _ = roles(manifest)
    d = df[(df["metric"] == "dice") & (df["class"] == "mean")]
    _save(figs.grid_bar(d, variant, paired, manifest["name"]), figdir, "dice_bar")


def fig_heatmap(df, manifest, figdir):
    variant, paired, setting = roles(manifest)
    d = df[(df["metric"] == "dice") & (df["class"] == "mean")]
    labeled = next((a["name"] for a in manifest["axes"] if a["name"] == "labeled" or a["key"] == "data.labeled"), None)
    col = labeled if labeled in setting else "setting"
    if col == "setting" and d["setting"].nunique() == 1:  # one setting: variant x class is more telling
        d = df[(df["metric"] == "dice")].copy()
        d["class"] = pd.Categorical(d["class"], [c for c in dict.fromkeys(d["class"]) if c != "mean"] + ["mean"],
                                    ordered=True)
        col = "class"
    others = [s for s in setting if s != col]
    groups = []
    for key, g in (list(d.groupby(others, observed=True, sort=False)) if others else [((), d)]):
        key = key if isinstance(key, tuple) else (key,)
        table = g.pivot_table(index=variant, columns=col, values="value", aggfunc="mean", observed=True)
        groups.append((", ".join(f"{k}={v}" for k, v in zip(others, key)), table))
    _save(figs.grid_heatmaps(groups, variant, col), figdir, "dice_heatmap")


def fig_per_class(df, manifest, figdir):
    variant, paired, _ = roles(manifest)
    d = df[(df["metric"] == "dice") & (df["class"] != "mean")]
    title = f"{manifest['name']}: test Dice per class" + (f" (± sd over {paired}s)" if paired else "")
    _save(figs.grid_per_class(d, variant, title), figdir, "per_class_dice")


def _metrics_rows(c: dict) -> pd.DataFrame:
    train, val = read_metrics(c["dir"] / "run")
    return pd.DataFrame(train + val)


def fig_curves(cells, manifest, figdir):
    variant, paired, setting = roles(manifest)
    frames = []
    order = {a["name"]: [str(v) for v in a["values"]] for a in manifest["axes"]}
    for c in cells:
        if not c["summary"]:
            continue
        m = _metrics_rows(c)
        if m.empty:
            continue
        frames.append(m.assign(**{k: str(v) for k, v in c["axes"].items()}, setting=_setting_label(c["axes"], setting)))
    if not frames:
        return
    m = pd.concat(frames, ignore_index=True)
    m[variant] = pd.Categorical(m[variant], order[variant], ordered=True)
    title = f"{manifest['name']}: training curves" + (f" (mean ± sd over {paired}s)" if paired else "")
    _save(figs.grid_curves(m, variant, list(dict.fromkeys(m["setting"])), title), figdir, "training_curves")


def _predict_slices(c: dict, n_slices: int):
    """(images, labels, predictions, titles) of a mid-ventricle slice of the first test cases,
    predicted by the cell's best.pt through the evaluation path of its scores
    (`crossmatch_lite.predict`: the BatchNorm statistics the summary's headline used, `eval.bn`)."""
    cfg = c["config"]
    key = (json.dumps(vars(cfg.data), sort_keys=True, default=str), cfg.train.seed)
    if key not in _DATA_CACHE:
        _DATA_CACHE[key] = load_data(cfg.data, seed=cfg.train.seed)
    data = _DATA_CACHE[key]
    slices = figs.pick_slices(data.test_cases, n_slices)
    cases = [data.test_cases[i] for i, _ in slices]
    preds, _ = predict_cases(Trainer.from_run(c["dir"] / "run", "best", data=data), cases)
    cut = [figs.case_slice(case, z, preds[case.id]) for case, (_, z) in zip(cases, slices)]  # 2D or 3D
    return ([c[0] for c in cut], [c[1] for c in cut], [c[2] for c in cut],
            [figs.slice_title(case, z) for case, (_, z) in zip(cases, slices)])


_DATA_CACHE: dict = {}


def fig_qualitative(cells, manifest, figdir, n_slices: int = 4) -> None:
    variant, paired, setting = roles(manifest)
    order = {a["name"]: [str(v) for v in a["values"]] for a in manifest["axes"]}
    first_pair = order[paired][0] if paired else None
    done = [c for c in cells if c["summary"] and (c["dir"] / "run" / "best.pt").exists()]
    settings = list(dict.fromkeys(_setting_label(c["axes"], setting) for c in done))
    for s in settings:
        chosen = {}
        for c in done:
            if _setting_label(c["axes"], setting) != s:
                continue
            if paired and str(c["axes"][paired]) != first_pair:
                continue
            chosen.setdefault(str(c["axes"][variant]), c)
        variants = [v for v in order[variant] if v in chosen]
        if not variants:
            continue
        try:
            preds = {v: _predict_slices(chosen[v], n_slices) for v in variants}
        except Exception as e:  # noqa: BLE001 - e.g. the dataset is not on this machine
            print(f"warning: qualitative panel for {s} skipped: {type(e).__name__}: {e}", file=sys.stderr)
            continue
        imgs, labs, _, titles = preds[variants[0]]
        extra = f", {paired}={first_pair}" if paired else ""
        fig = figs.grid_qualitative(imgs, labs, {v: preds[v][2] for v in variants}, titles,
                                       f"{manifest['name']}: predictions of best.pt on the same test slices "
                                       f"({s}{extra}), evaluated as the scores are")
        _save(fig, figdir, "qualitative" if len(settings) == 1 else f"qualitative_{_slug(s)}")


# ---------------------------------------------------------------------------- entry
REPORT_VERSION = 2  # 2: the qualitative panel predicts through the evaluation path


def fingerprint(out: str | Path) -> str:
    """Changes whenever anything the report reads changes (manifest, cell states, summaries)."""
    import hashlib

    out = Path(out)
    h = hashlib.sha256(f"v{REPORT_VERSION}".encode())
    h.update((out / "grid.json").read_bytes())
    for c in read_manifest(out)["cells"]:
        cdir = cell_dir(out, c["id"])
        h.update(f"{c['id']}:{read_status(cdir).get('state')}".encode())
        for name in ("summary.json", "run/best.pt", "run/metrics.jsonl"):
            p = cdir / name
            if p.exists():
                st = p.stat()
                h.update(f"{name}:{st.st_mtime_ns}:{st.st_size}".encode())
    return h.hexdigest()


def up_to_date(out: str | Path) -> bool:
    out = Path(out)
    try:
        saved = json.loads((out / ".report.json").read_text())["fingerprint"]
    except (FileNotFoundError, KeyError, ValueError):
        return False
    return saved == fingerprint(out) and (out / "results.csv").exists() and (out / "summary.md").exists()


def render(out: str | Path, figures: bool = True) -> dict:
    """Write results.csv, cells.csv, summary.csv/md and figures/; return a small digest."""
    import matplotlib

    matplotlib.use("Agg")
    out = Path(out)
    manifest = read_manifest(out)
    names = [a["name"] for a in manifest["axes"]]
    cells = load_cells(out, manifest)
    results = results_table(cells, names)
    atomic_write_text(out / "results.csv", results.to_csv(index=False))
    atomic_write_text(out / "cells.csv", cells_table(cells, names).to_csv(index=False))
    summ = summary_table(results, manifest)
    atomic_write_text(out / "summary.csv", summ.to_csv(index=False))
    md = summary_markdown(summ, manifest, cells)  # printed to stdout by `run` and `report`
    atomic_write_text(out / "summary.md", md)
    made = []
    if figures and not results.empty:
        figs.apply_style()
        df = _frame_for_plots(results, manifest)
        figdir = out / "figures"
        for name, fn, arg in (("dice_bar", fig_bar, df), ("dice_heatmap", fig_heatmap, df),
                              ("per_class_dice", fig_per_class, df), ("training_curves", fig_curves, cells),
                              ("qualitative", fig_qualitative, cells)):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fn(arg, manifest, figdir)
                made.append(name)
            except Exception as e:  # noqa: BLE001 - one broken figure must not hide the others
                print(f"warning: figure {name} failed: {type(e).__name__}: {e}", file=sys.stderr)
    atomic_write_json(out / ".report.json", {"fingerprint": fingerprint(out), "figures": made})
    return {"cells": len(cells), "finished": sum(1 for c in cells if c["summary"]), "summary": summ,
            "markdown": md, "figures": made}
