"""Run folders and summaries as rows and pandas tables, for notebooks and reports.

Only `summary["<split>"]["<metric>"]` entries and `metrics.jsonl` rows are read: the
headline numbers every summary keeps, whatever else a newer trainer adds to it.
"""
from __future__ import annotations

import json
from pathlib import Path



def read_metrics(run_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """metrics.jsonl of a run folder, split into training rows and validation rows."""
    path = Path(run_dir) / "metrics.jsonl"
    rows = [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()] if path.exists() else []
    return [r for r in rows if "loss" in r], [r for r in rows if "val_dice" in r]


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


def dice_frame(summaries: dict[str, dict], split: str = "test"):
    """Rows: runs; columns: Dice (%) per class and mean."""
    import pandas as pd

    return pd.DataFrame({name: {k: (None if v is None else 100 * v) for k, v in s[split]["dice"].items()}
                         for name, s in summaries.items()}).T


def grid_frame(df, split: str = "test", metric: str = "dice", cls: str = "mean"):
    """The ablation runner's long results.csv (cell x split x metric x class) cut to one number per cell."""
    if {"split", "metric", "class", "value"} <= set(df.columns):
        df = df[(df["split"] == split) & (df["metric"] == metric) & (df["class"] == cls)]
        df = df.drop(columns=["split", "metric", "class"]).rename(columns={"value": f"{split}_{metric}_{cls}"})
    return df.reset_index(drop=True)
