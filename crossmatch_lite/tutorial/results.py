"""Results files, and the tables of docs/results.md and README.md rendered from them.

A results file (docs/results/<name>.jsonl) holds one JSON object per line:

    {"kind": "header", "layout": ..., "about": ...}   first line: the table's layout, and what
                                                      its rows are and where they come from;
                                                      "baseline" (a label, or {label: label})
                                                      for the paired-difference column;
                                                      "order" (labels) for the rows
    {"kind": "run", ...}        one finished run, appended from its run folder by `add`:
                                label, config, overrides, seed, split, evaluations
                                {"best_running": {"test_dice": 83.8, ...}, ...}, CPU and wall
                                seconds, device, hardware, torch, commit, date
    {"kind": "aggregate", ...}  one table row as published, for runs whose per-run values are
                                not in the repository: label, checkpoint, bn and metrics
                                {"test_dice": [mean, sd], "test_dice_RV": mean,
                                 "test_n_empty": [per seed], "test_dice_delta": [d, lo, hi]}

Dice and Jaccard are in %, distances in the unit their key names. Runs of one label are
averaged over their seeds (mean ± sd, sd with n - 1). In docs/results.md each generated
table sits between `<!-- results: results/<name>.jsonl -->` and `<!-- /results -->`, and
tests/test_results.py fails when a table and its file disagree. README's short table is
rendered the same way from docs/results/summary.yaml, a list of entries
{row, file, evaluation: [checkpoint, bn], hardware, supervised, crossmatch[, supervised_note]}
naming two labels of a results file; its cells are those labels' test Dice.

    python -m crossmatch_lite.tutorial.results render [--write]   # print, or rewrite the docs
    python -m crossmatch_lite.tutorial.results check              # exit 1 on a stale table
    python -m crossmatch_lite.tutorial.results add RUN --to docs/results/isic_cpu.jsonl \\
        --config configs/isic_cpu.yaml                            # append a finished run
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DOCS = (Path("docs/results.md"), Path("docs/ablations.md"), Path("README.md"))
MARKER = re.compile(r"<!-- results: (?P<file>\S+) -->\n(?P<body>.*?)<!-- /results -->", re.S)
# Either marker alone: a doc's markers must pair up, or a rewrite would swallow the text between them.
_ANY_MARKER = re.compile(r"<!-- results: (?P<file>\S+) -->|<!-- /results -->")


@dataclass(frozen=True)
class Col:
    header: str
    kind: str  # label, checkpoint, bn, pm, pm_pen, mean, delta, per_seed, minutes, seeds
    key: str = ""
    bold: str = ""  # "all" rows, or "official" (best checkpoint, running statistics) rows
    against: str = ""  # delta: the label it is paired with (default: the header's baseline)


EVALS_4 = [("best", "running"), ("latest", "running"), ("best", "precise"), ("latest", "precise")]
# name -> (columns, evaluations shown for runs, rows grouped by "run" or by "evaluation")
LAYOUTS = {
    "quick_grid": ([Col("variant", "label"), Col("Dice", "pm", "test_dice"),
                    Col("Δ vs supervised (paired, 95 % CI)", "delta", "test_dice"),
                    Col("RV", "mean", "test_dice_RV"), Col("Myo", "mean", "test_dice_Myo"),
                    Col("LV", "mean", "test_dice_LV")], [("best", "running")], "run"),
    "acdc_cpu": ([Col("run", "label"), Col("checkpoint", "checkpoint"), Col("BatchNorm", "bn"),
                  Col("val Dice", "pm", "val_dice"), Col("test Dice", "pm", "test_dice", "official"),
                  Col("Δ test Dice vs supervised (paired, 95 % CI)", "delta", "test_dice"),
                  Col("RV", "pm", "test_dice_RV"), Col("Myo", "pm", "test_dice_Myo"),
                  Col("LV", "pm", "test_dice_LV"), Col("HD95 mm (penalised)", "pm_pen", "test_hd95_mm"),
                  Col("ASD mm (penalised)", "pm_pen", "test_asd_mm"), Col("empty", "per_seed", "test_n_empty"),
                  Col("CPU min", "minutes", "cpu_seconds")], EVALS_4, "run"),
    "la_cpu": ([Col("run", "label"), Col("checkpoint", "checkpoint"), Col("BatchNorm", "bn"),
                Col("val Dice", "pm", "val_dice"), Col("test Dice", "pm", "test_dice", "official"),
                Col("Jaccard", "pm", "test_jaccard"), Col("HD95 vox", "pm", "test_hd95_vox"),
                Col("ASD vox", "pm", "test_asd_vox"), Col("HD95 mm", "pm", "test_hd95_mm"),
                Col("ASD mm", "pm", "test_asd_mm")], EVALS_4[:3], "evaluation"),
    "isic_cpu": ([Col("run", "label"), Col("checkpoint", "checkpoint"), Col("BatchNorm", "bn"),
                  Col("val Dice", "pm", "val_dice"), Col("test Dice", "pm", "test_dice", "official"),
                  Col("Δ test Dice vs supervised (paired, 95 % CI)", "delta", "test_dice"),
                  Col("Jaccard", "pm", "test_jaccard"), Col("HD95 px (penalised)", "pm_pen", "test_hd95_vox"),
                  Col("ASD px (penalised)", "pm_pen", "test_asd_vox"), Col("empty", "per_seed", "test_n_empty"),
                  Col("CPU min", "minutes", "cpu_seconds")], EVALS_4, "run"),
    "fives_sample": ([Col("run", "label"), Col("checkpoint", "checkpoint"), Col("BatchNorm", "bn"),
                      Col("val Dice", "pm", "val_dice"), Col("test Dice", "pm", "test_dice", "official"),
                      Col("Δ test Dice vs supervised (paired, 95 % CI)", "delta", "test_dice"),
                      Col("Jaccard", "pm", "test_jaccard"), Col("HD95 px (penalised)", "pm_pen", "test_hd95_vox"),
                      Col("ASD px (penalised)", "pm_pen", "test_asd_vox"), Col("empty", "per_seed", "test_n_empty"),
                      Col("CPU min", "minutes", "cpu_seconds")], [EVALS_4[0], EVALS_4[2]], "run"),
    "isic_budget": ([Col("size, batch, iterations", "label"), Col("val Dice", "pm", "val_dice", "all"),
                     Col("test Dice", "pm", "test_dice"), Col("CPU min", "minutes", "cpu_seconds")],
                    [("best", "running")], "run"),
    # The ablation grids: every variant paired with supervised and with CrossMatch, per-image
    # failures (test images below 50 % Dice, summed over seeds) and the cost beside the Dice.
    "isic_grid": ([Col("variant", "label"), Col("seeds", "seeds"), Col("Dice", "pm", "test_dice"),
                   Col("Δ vs supervised (paired, 95 % CI)", "delta", "test_dice"),
                   Col("Δ vs CrossMatch (paired, 95 % CI)", "delta", "test_dice", against="crossmatch"),
                   Col("images < 50 Dice (per seed)", "per_seed", "test_n_fail50"),
                   Col("HD95 px", "pm", "test_hd95_vox"), Col("CPU min", "minutes", "cpu_seconds")],
                  [("best", "running")], "run"),
    "acdc_grid": ([Col("variant", "label"), Col("seeds", "seeds"), Col("Dice", "pm", "test_dice"),
                   Col("Δ vs supervised (paired, 95 % CI)", "delta", "test_dice"),
                   Col("Δ vs CrossMatch (paired, 95 % CI)", "delta", "test_dice", against="crossmatch"),
                   Col("RV", "mean", "test_dice_RV"), Col("Myo", "mean", "test_dice_Myo"),
                   Col("LV", "mean", "test_dice_LV"), Col("HD95 mm", "pm", "test_hd95_mm"),
                   Col("CPU min", "minutes", "cpu_seconds")], [("best", "running")], "run"),
}


# ------------------------------------------------------------------ files
class ResultsError(ValueError):
    """A results file, doc or run folder that cannot be used; the message names it and says why."""


def parse_results(text: str, path: str | Path) -> tuple[dict, list[dict]]:
    """(header, records) of a results file's text; a line that is not a JSON object is
    refused with its line number in the file (blank lines counted)."""
    lines = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ResultsError(f"{path}, line {number}: not JSON ({e.msg} at column {e.colno}); each line holds "
                               "one JSON object: fix or remove that line") from None
        if not isinstance(obj, dict):
            raise ResultsError(f"{path}, line {number}: a JSON {type(obj).__name__}, not an object; each line "
                               "holds one JSON object")
        lines.append(obj)
    if not lines or lines[0].get("kind") != "header" or lines[0].get("layout") not in LAYOUTS:
        raise ResultsError(f"{path}: the first line must be a header naming a layout ({', '.join(LAYOUTS)})")
    return lines[0], lines[1:]


def read_results(path: str | Path) -> tuple[dict, list[dict]]:
    """(header, records) of a results file."""
    return parse_results(Path(path).read_text(), path)


def append_record(path: str | Path, record: dict) -> None:
    """Add one run record: the whole file is rewritten atomically (a last line without its
    newline keeps its own line) and what was written is parsed again."""
    from ..run.files import atomic_write_text

    path = Path(path)
    text = path.read_text()
    header, records = parse_results(text, path)  # refuses a file that is not a results file
    same = [r for r in records if r.get("kind") == "run" and r.get("label") == record["label"]
            and r.get("seed") == record["seed"]]
    if same:
        raise ResultsError(f"{path} already holds {record['label']} seed {record['seed']} (run "
                           f"{same[0].get('run')}); remove that line first to replace it")
    new = text + ("" if text.endswith("\n") else "\n") + json.dumps(record, ensure_ascii=False) + "\n"
    if parse_results(new, path)[1][-1] != json.loads(json.dumps(record)):
        raise ResultsError(f"{path}: the record would not read back as written; the file was left as it was")
    atomic_write_text(path, new)
    if path.read_text() != new:
        raise ResultsError(f"{path} does not hold what was written (another process changed it?); check it")


# ------------------------------------------------------------------ rows
def table_rows(header: dict, records: list[dict]) -> list[dict]:
    """Aggregates as they are; runs grouped by label and evaluation, seeds sorted."""
    _, evals, major = LAYOUTS[header["layout"]]
    rows = [dict(r) for r in records if r.get("kind") == "aggregate"]
    runs = sorted((r for r in records if r.get("kind") == "run"), key=lambda r: r["seed"])
    labels = list(dict.fromkeys(r["label"] for r in runs))  # first seen, unless the header orders them
    order = header.get("order", [])
    labels.sort(key=lambda lab: order.index(lab) if lab in order else len(order))
    keys = [(lab, ev) for lab in labels for ev in evals] if major == "run" else \
        [(lab, ev) for ev in evals for lab in labels]
    for label, (ckpt, bn) in keys:
        mine = [{**r["evaluations"][f"{ckpt}_{bn}"], "seed": r["seed"], "cpu_seconds": r.get("cpu_seconds")}
                for r in runs if r["label"] == label and f"{ckpt}_{bn}" in r["evaluations"]]
        if mine:
            rows.append({"label": label, "checkpoint": ckpt, "bn": bn, "runs": mine})
    return rows


def _values(row: dict, key: str) -> list:
    return [r[key] for r in row["runs"] if r.get(key) is not None]


def t_half_width(sd: float, n: int) -> float:
    """Half-width of the 95 % t interval of a mean of n values with standard deviation sd."""
    from scipy import stats

    return float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n))


def paired_delta(row: dict, key: str, rows: list[dict], baseline: str | dict | None) -> list | None:
    """Mean paired difference to the baseline's run of the same seed, with a 95 % t interval.

    `baseline` is the header's: one label for every row, or {label: its baseline's label}
    (e.g. CrossMatch at 10 % against supervised at 10 %)."""
    if isinstance(baseline, dict):
        baseline = baseline.get(row["label"])
    base = next((r for r in rows if r["label"] == baseline and r.get("checkpoint") == row["checkpoint"]
                 and r.get("bn") == row["bn"] and "runs" in r), None)
    if base is None or base is row:
        return None
    theirs = {r["seed"]: r.get(key) for r in base["runs"]}
    diffs = [r[key] - theirs[r["seed"]] for r in row["runs"] if theirs.get(r["seed"]) is not None]
    if len(diffs) < 2:
        return [float(np.mean(diffs)), None, None] if diffs else None
    d, half = np.mean(diffs), t_half_width(float(np.std(diffs, ddof=1)), len(diffs))
    return [float(d), float(d - half), float(d + half)]


def value(row: dict, col: Col, rows: list[dict], header: dict):
    """A column's value for one row: stored (aggregate) or computed over the row's runs."""
    if col.kind in ("label", "checkpoint", "bn"):
        return row.get(col.kind, "")
    if "metrics" in row:
        return row["metrics"].get(col.key + "_delta" if col.kind == "delta" else col.key)
    if col.kind == "delta":
        return paired_delta(row, col.key, rows, col.against or header.get("baseline"))
    if col.kind == "seeds":
        return len(row["runs"])
    vals = _values(row, col.key)
    if not vals:
        return None
    if col.kind == "per_seed":  # one entry per run, None where a run lacks the value
        return [r.get(col.key) for r in row["runs"]]
    if col.kind in ("mean", "minutes"):
        return float(np.mean(vals))
    return [float(np.mean(vals)), float(np.std(vals, ddof=1)) if len(vals) > 1 else None]


# ------------------------------------------------------------------ formatting
def _num(v) -> str:
    return f"{v:.1f}"


def _signed(v: float) -> str:
    return ("+" if v >= 0 else "−") + _num(abs(v))


def _pm(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, (list, tuple)):
        return _num(v[0]) + (f" ± {_num(v[1])}" if len(v) > 1 and v[1] is not None else "")
    return _num(v)


def _delta(v) -> str:
    if v is None:
        return "–"
    return _signed(v[0]) + (f" [{_signed(v[1])}, {_signed(v[2])}]" if v[1] is not None else "")


def cell(col: Col, row: dict, rows: list[dict], header: dict) -> str:
    v = value(row, col, rows, header)
    if col.kind in ("label", "checkpoint", "bn", "seeds"):
        text = str(v)
    elif col.kind == "pm_pen":
        pen = value(row, Col("", "pm", col.key + "_pen"), rows, header)
        text = "–" if v is None and pen is None else f"{_pm(v)} ({_pm(pen)})"
    elif col.kind == "delta":
        text = _delta(v)
    elif col.kind == "per_seed":
        text = "–" if v is None else "/".join("–" if x is None else str(int(x)) for x in v)
    elif col.kind == "minutes":
        text = "–" if v is None else _num(v / 60)
    else:
        text = _pm(v)
    official = row.get("checkpoint") == "best" and row.get("bn") == "running"
    bold = col.bold == "all" or (col.bold == "official" and official)
    return f"**{text}**" if bold and text != "–" else text


def render_summary(path: Path) -> str:
    """README's short table: per entry of the summary file, test Dice of its two labels' rows."""
    import yaml

    lines = ["| data and budget | evaluation | seeds | hardware | supervised | CrossMatch |", "|" + "---|" * 6]
    for e in yaml.safe_load(path.read_text()):
        header, records = read_results(path.parent / e["file"])
        rows = table_rows(header, records)
        ckpt, bn = e["evaluation"]
        found = {}
        for side in ("supervised", "crossmatch"):
            found[side] = next((r for r in rows if r["label"] == e[side] and r["checkpoint"] == ckpt
                                and r["bn"] == bn), None)
            if found[side] is None:
                raise ValueError(f"{path}: {e['file']} has no row {e[side]!r} at {ckpt}, {bn}")
        cm = found["crossmatch"]
        seeds = sorted(r["seed"] for r in cm["runs"]) if "runs" in cm else cm["seeds"]
        dice = {side: _pm(value(r, Col("", "pm", "test_dice"), rows, header)) for side, r in found.items()}
        note = f" ({e['supervised_note']})" if e.get("supervised_note") else ""
        lines.append(f"| {e['row']} | {ckpt}, {bn} | {', '.join(map(str, seeds))} | {e['hardware']} | "
                     f"{dice['supervised']}{note} | **{dice['crossmatch']}** |")
    return "\n".join(lines) + "\n"


def render_file(path: str | Path) -> str:
    """The markdown table of one results file (a one-line note while it has no rows)."""
    if Path(path).suffix == ".yaml":
        return render_summary(Path(path))
    header, records = read_results(path)
    columns = LAYOUTS[header["layout"]][0]
    rows = table_rows(header, records)
    if not rows:
        return f"_Not yet run at the preset's budget: no rows in `{Path(path).name}`._\n"
    lines = ["| " + " | ".join(c.header for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(c, r, rows, header) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the doc
def tables(text: str, doc: str | Path) -> list[re.Match]:
    """The marked tables of a doc, after checking that its markers pair up: an opening
    marker followed by its own line and then a closing one, never nested, never alone.
    Anything else is refused naming the doc and the line, so no rewrite deletes text."""
    opened = None
    for m in _ANY_MARKER.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if m["file"] is not None and opened is not None:
            raise ResultsError(f"{doc}, line {line}: a results marker opens inside the one of line {opened[0]} "
                               f"({opened[1]}); add the missing `<!-- /results -->` before line {line}")
        if m["file"] is None and opened is None:
            raise ResultsError(f"{doc}, line {line}: a closing `<!-- /results -->` without an opening marker; "
                               "remove it or add its `<!-- results: FILE -->`")
        if m["file"] is not None and not text.startswith("\n", m.end()):
            raise ResultsError(f"{doc}, line {line}: the marker `{m[0]}` must end its line")
        opened = (line, m["file"]) if m["file"] is not None else None
    if opened is not None:
        raise ResultsError(f"{doc}, line {opened[0]}: the results marker of {opened[1]} is never closed; add "
                           "`<!-- /results -->` after its table")
    return list(MARKER.finditer(text))


def render_doc(text: str, base: Path, doc: str | Path = "the doc") -> str:
    """The doc with every marked table rendered again from its results file; the result
    is checked to hold the same marked tables, in the same order."""
    tables(text, doc)
    new = MARKER.sub(lambda m: f"<!-- results: {m['file']} -->\n{render_file(base / m['file'])}"
                               f"<!-- /results -->", text)
    if [m["file"] for m in tables(new, doc)] != [m["file"] for m in MARKER.finditer(text)]:
        raise ResultsError(f"{doc}: a rendered table changed the doc's markers; the doc was left as it was")
    return new


def stale_tables(doc: str | Path = DOCS[0]) -> list[str]:
    """The results files whose table in the doc differs from what they render."""
    doc = Path(doc)
    text = doc.read_text()
    return [m["file"] for m in tables(text, doc) if m["body"] != render_file(doc.parent / m["file"])]


# ------------------------------------------------------------------ a run folder -> a record
MACHINE_KEYS = {"data.root", "data.cache", "train.seed", "train.threads", "train.device", "train.progress"}


def flat_metrics(part: dict) -> dict:
    """{"dice": {"RV": .5, "mean": .6}, "n_empty": 3} -> {"dice": 60.0, "dice_RV": 50.0, "n_empty": 3}."""
    out = {}
    for metric, entry in part.items():
        if metric == "n_empty" and isinstance(entry, int):
            out[metric] = entry
        if not isinstance(entry, dict) or "mean" not in entry:
            continue
        scale = 100.0 if metric in ("dice", "jaccard") else 1.0
        for cls, v in entry.items():
            if v is not None:
                out[metric if cls == "mean" else f"{metric}_{cls}"] = round(scale * v, 4)
    return out


def n_failures(part: dict, below: float = 0.5) -> int | None:
    """Cases whose Dice, averaged over the foreground classes they score, is below `below`:
    the per-image failures that a mean hides. None when the summary has no per-case scores."""
    cases = part.get("cases")
    if not cases or "dice" not in cases[0]:
        return None
    scores = [[v for v in c["dice"].values() if v is not None] for c in cases]
    return sum(1 for s in scores if s and float(np.mean(s)) < below)


def overrides_of(run_cfg: dict, preset: str | Path) -> list[str]:
    """The keys where the run differs from its preset, as --set arguments (machine keys left out)."""
    import yaml

    from ..config import flatten, load_config, to_dict

    base = flatten(to_dict(load_config(preset)))
    ours = flatten(run_cfg)
    return [f"{k}={yaml.safe_dump(ours[k], default_flow_style=True).strip().removesuffix('...').strip()}"
            for k in base if k in ours and ours[k] != base[k] and k not in MACHINE_KEYS]


def run_record(run: Path, preset: str | Path, label: str | None = None, hardware: str | None = None,
               commit: str | None = None) -> dict:
    """One results-file record from a finished run folder (summary.json, config.yaml, split.json)."""
    import datetime

    import torch
    import yaml

    _finished(run)
    summary = json.loads((run / "summary.json").read_text())
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    split = json.loads((run / "split.json").read_text()) if (run / "split.json").exists() else {}
    overrides = overrides_of(cfg, preset)
    evaluations = {ev: {f"{part}_{k}": v for part in ("val", "test") for k, v in flat_metrics(res[part]).items()}
                   for ev, res in summary["evaluations"].items()}
    for ev, res in summary["evaluations"].items():
        failures = n_failures(res["test"])
        if failures is not None:
            evaluations[ev]["test_n_fail50"] = failures
    return {"kind": "run", "label": label or " ".join([f"`{Path(preset).stem}`", *overrides]),
            "config": Path(preset).as_posix(), "overrides": overrides, "seed": cfg["train"]["seed"],
            "dataset": summary["dataset"], "split": split.get("split_source", "default"),
            "sizes": {k: len(split[k]) for k in ("labeled", "unlabeled", "val", "test") if k in split},
            # A grid cell's run folder is cells/<id>/run: the cell id names it.
            "run": run.name if run.name != "run" else f"{run.parent.name}/run",
            "iterations": summary["iterations"], "best_iteration": summary["best_iteration"],
            "headline": summary["headline"], "evaluations": evaluations,
            "cpu_seconds": summary.get("train_cpu_seconds"), "wall_seconds": summary.get("train_seconds"),
            "device": summary.get("device"), "hardware": hardware or machine(), "torch": torch.__version__,
            "commit": commit or git_commit(), "date": datetime.date.today().isoformat()}


def _finished(run: Path) -> None:
    """Refuse, naming what is missing, a folder that is not a finished run."""
    if not run.is_dir():
        raise ResultsError(f"{run}: no such run folder; pass the --out of a finished `train` run")
    for name, why in (("config.yaml", "not a run folder"), ("summary.json", "the run has not finished: run its "
                                                                            "`train` command again to finish it")):
        if not (run / name).is_file():
            raise ResultsError(f"{run} has no {name}: {why}")
    try:
        json.loads((run / "summary.json").read_text())
    except ValueError as e:
        raise ResultsError(f"{run / 'summary.json'} is not JSON ({e}); evaluate the run again to rewrite it") from None


def machine() -> str:
    """CPU model, its bf16 instructions and the cores this process may use, e.g.
    'AMD EPYC (AVX512-BF16, no AMX), 2 cores': bf16 autocast runs natively only with them,
    so CPU times compare only between machines that agree on both."""
    import platform

    from ..run.runtime import NATIVE_BF16_FLAGS, available_cores, cpu_info

    model, flags = cpu_info()
    has = [("" if name in flags else "no ") + label for name, label in NATIVE_BF16_FLAGS.items()]
    bf16 = f" ({', '.join(has)})" if flags else ""
    return f"{model or platform.processor() or 'unknown CPU'}{bf16}, {available_cores()} cores"


def git_commit() -> str | None:
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


# ------------------------------------------------------------------ command line
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="crossmatch-lite results", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("render", help="print the tables, or rewrite them in the docs with --write")
    r.add_argument("--doc", type=Path, action="append", help="one doc (default: docs/results.md, docs/ablations.md and README.md)")
    r.add_argument("--write", action="store_true")
    c = sub.add_parser("check", help="exit 1 when a table of a doc differs from its results file")
    c.add_argument("--doc", type=Path, action="append", help="one doc (default: docs/results.md, docs/ablations.md and README.md)")
    a = sub.add_parser("add", help="append a finished run folder's summary to a results file")
    a.add_argument("run", type=Path)
    a.add_argument("--to", type=Path, required=True, help="the results file (docs/results/<name>.jsonl)")
    a.add_argument("--config", required=True, help="the preset the run was started from")
    a.add_argument("--label", help="the row's label (default: the preset and the run's overrides)")
    a.add_argument("--hardware", help="where the run trained (default: this machine)")
    a.add_argument("--commit", help="the commit it trained at (default: this checkout's HEAD)")
    args = ap.parse_args(argv)
    try:
        if args.cmd == "add":
            return _add(args)
        return _render_or_check(args.cmd, args.doc or list(DOCS), args.write if args.cmd == "render" else False)
    except KeyError as err:  # a summary entry or record without a field it needs
        print(f"crossmatch-lite results: an entry lacks the field {err}; see --help for the format", file=sys.stderr)
        return 2
    except (ValueError, OSError) as err:  # a malformed or missing results file: one line, no traceback
        print(f"crossmatch-lite results: {err}", file=sys.stderr)
        return 2


def _add(args) -> int:
    if not args.to.is_file():
        raise ResultsError(f"{args.to}: no such results file; start one with its header line (see --help), or "
                           "pass an existing docs/results/<name>.jsonl")
    if not Path(args.config).is_file():
        raise ResultsError(f"--config {args.config}: no such preset; pass the preset the run was started from")
    read_results(args.to)  # a malformed file is refused before the run is read
    record = run_record(args.run, args.config, args.label, args.hardware, args.commit)
    append_record(args.to, record)
    print(f"added {record['label']} seed {record['seed']} to {args.to}; then: render --write")
    return 0


def _render_or_check(cmd: str, docs: list[Path], write: bool) -> int:
    from ..run.files import atomic_write_text

    if cmd == "check":
        stale = [(doc, name) for doc in docs for name in stale_tables(doc)]
        for doc, name in stale:
            print(f"{doc}: the table of {name} differs from the file; run `render --write`", file=sys.stderr)
        return 1 if stale else 0
    for doc in docs:
        text = doc.read_text()
        if write:
            atomic_write_text(doc, render_doc(text, doc.parent, doc))
            continue
        for m in tables(text, doc):
            print(f"{doc}: {m['file']}:\n{render_file(doc.parent / m['file'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
