"""Command line: `crossmatch-lite train|evaluate|predict|keys|download|grid|book|results` (also
`python -m crossmatch_lite ...`)."""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from .config import ConfigError, key_rows, keys_table, load_config
from .data import DataError
from .predict import PredictError, Predictor, input_files, predict_files
from .run.checkpoints import CheckpointError
from .run.files import atomic_write_json
from .run.folder import RunLocked, RunMismatch
from .train import RunRefused, Trainer, TrainingDiverged


def _print_metrics(title: str, m: dict) -> None:
    if "dice" not in m:
        print(f"{title}: no cases")
        return
    parts = [f"{k} {100 * v:.2f}" for k, v in m["dice"].items() if k != "mean" and v is not None]
    mean = m["dice"]["mean"]
    line = f"{title}: Dice {100 * mean:.2f} ({', '.join(parts)})" if mean is not None else f"{title}: Dice n/a"
    for key in ("hd95_mm", "asd_mm", "hd95_vox", "asd_vox"):
        if isinstance(m.get(key), dict) and m[key].get("mean") is not None:
            line += f", {key} {m[key]['mean']:.2f}"
    n_empty = _n_empty(m)
    if n_empty is not None:
        line += f" (n_empty {n_empty}: class/case pairs with no distance, left out of the means)"
    print(line + f" over {m['n_cases']} cases")


def _n_empty(m: dict) -> int | None:
    """Where the result has it: top level, or inside a distance entry."""
    if isinstance(m.get("n_empty"), int):
        return m["n_empty"]
    for key in ("hd95_mm", "hd95_vox", "hd95"):
        entry = m.get(key)
        if isinstance(entry, dict) and isinstance(entry.get("n_empty"), int):
            return entry["n_empty"]
    return None


def _user_errors() -> tuple:
    """Failures whose message says what to do: printed as one line, no traceback."""
    return (FileNotFoundError, DataError, CheckpointError, RunMismatch, RunLocked, RunRefused,
            TrainingDiverged)


def cmd_train(args) -> int:
    cfg = load_config(args.config, args.set)
    trainer = None
    try:
        trainer = Trainer(cfg, args.out)
        summary = trainer.run()
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. --out on a read-only disk or under a file: the user's to fix
        print(f"error: cannot write the run folder {args.out}: {e.strerror or e}"
              + (f" ({e.filename})" if e.filename else ""), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        saved = trainer.iteration_saved if trainer is not None else 0
        where = f"{Path(args.out) / 'latest.pt'} holds iteration {saved}" if saved else "no checkpoint was written yet"
        print(f"\ninterrupted: {where}; run the same command again to resume", file=sys.stderr)
        return 130
    if summary.get("stopped"):  # train.max_minutes: the trainer said where it stopped
        return 75  # EX_TEMPFAIL: not done, run again (a job queue can tell it from success)
    _print_metrics("val (best.pt)", summary["val"])
    _print_metrics("test (best.pt)", summary["test"])
    print(f"run folder: {args.out}")
    return 0


def cmd_evaluate(args) -> int:
    run = Path(args.run)
    overrides = [f"data.split_file={args.split_file}"] if args.split_file else []
    try:
        trainer = Trainer.from_run(run, args.checkpoint, overrides=[*overrides, *args.set])
    except _user_errors() as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    cfg, data = trainer.cfg, trainer.data
    cases = data.val_cases if args.split == "val" else data.test_cases
    for bn in (("running", "precise") if args.bn == "both" else (args.bn,)):
        result = trainer.evaluate(cases, distances=cfg.eval.distances, model=trainer.eval_model(bn))
        name = f"eval_{args.split}_{args.checkpoint}_{bn}" + (f"_{Path(args.split_file).stem}" if args.split_file else "")
        atomic_write_json(run / f"{name}.json", result)
        _print_metrics(f"{args.split} ({args.checkpoint}.pt, {bn} BatchNorm statistics)", result)
        print(f"written: {run / (name + '.json')}")
    return 0


def cmd_keys(args) -> int:
    """Every key with its default, its choices or range, and what it does."""
    if args.markdown:
        print(keys_table())
        return 0
    for key, default, allowed, doc in key_rows():
        print(f"{key} = {default!r}" + (f"  ({allowed})" if allowed else "") + f"  # {doc}")
    return 0


def cmd_predict(args) -> int:
    try:
        predictor = Predictor.from_run(args.run, args.checkpoint, args.bn)
        files = input_files(args.input)
        # Refuses an --out it cannot create or write once, before any file is read.
        failed = predict_files(predictor, files, Path(args.out), overlay=args.overlay)
    except (*_user_errors(), PredictError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(files) - failed} of {len(files)} file(s) segmented into {args.out}"
          + (f"; {failed} could not be used (named above)" if failed else ""))
    return min(failed, 125)  # the exit status counts the failures (shells keep 126+ for themselves)


# The front door also opens the project's other tools; each is imported only when asked
# for, so `train` never loads the download, grid or book machinery.
TOOLS = {"download": ("data_download.__main__", "fetch and prepare a real dataset (acdc, isic2018, la, check)"),
         "grid": ("ablations.cli", "run, inspect or report an ablation grid (run, status, report)"),
         "book": ("crossmatch_lite.tutorial.book", "build the tutorial book (build [--smoke])"),
         "results": ("crossmatch_lite.tutorial.results", "results files -> docs/results.md (render, check, add)")}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="crossmatch-lite", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train", help="train a preset and evaluate its best-on-val checkpoint")
    t.add_argument("--config", default="configs/crossmatch.yaml", help="YAML preset (default: %(default)s)")
    t.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set distill.eta=0.3 (repeatable)")
    t.add_argument("--out", required=True, help="run folder; re-running with the same folder resumes")
    t.set_defaults(func=cmd_train)
    e = sub.add_parser("evaluate", help="re-evaluate a finished or interrupted run")
    e.add_argument("--run", required=True, help="a run folder written by `train`")
    e.add_argument("--split", choices=("test", "val"), default="test")
    e.add_argument("--split-file", default=None, help="JSON split whose val/test lists to evaluate")
    e.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    e.add_argument("--bn", choices=("running", "precise", "both"), default="both",
                   help="BatchNorm statistics: running (as trained, official) or precise (recomputed)")
    e.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key, e.g. --set data.root=/elsewhere")
    e.set_defaults(func=cmd_evaluate)
    r = sub.add_parser("predict", help="segment images or volumes the run never saw")
    r.add_argument("--run", required=True, help="a run folder written by `train`")
    r.add_argument("--input", required=True, help="a file, a folder or a quoted glob")
    r.add_argument("--out", required=True, help="folder for the masks")
    r.add_argument("--checkpoint", choices=("best", "latest"), default="best")
    r.add_argument("--bn", choices=("running", "precise"), default=None,
                   help="BatchNorm statistics (default: the run's eval.bn, as its headline score)")
    r.add_argument("--overlay", action="store_true", help="2D: also write <name>_overlay.png")
    r.set_defaults(func=cmd_predict)
    k = sub.add_parser("keys", help="list every config key with its default")
    k.add_argument("--markdown", action="store_true", help="as the table of docs/configuration.md")
    k.set_defaults(func=cmd_keys)
    for name, (_, about) in TOOLS.items():
        sub.add_parser(name, help=about, add_help=False)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in TOOLS:
        return importlib.import_module(TOOLS[argv[0]][0]).main(argv[1:])
    args = _parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as err:
        print(f"config error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
