"""Two measurements on real FIVES photographs for docs/results.md ("FIVES: a 19-photograph
sample"): what scoring one test photograph at its native 2048 x 2048 costs, and the figure
of a test photograph's predictions.

    python -m benchmarks.fives_sample scoring --run RUN --root FIVES [--cases 2]
    python -m benchmarks.fives_sample vessels --runs RUN [RUN ...] --root FIVES
    python -m benchmarks.fives_sample figure --runs SUPERVISED_RUN CROSSMATCH_RUN --root FIVES \\
        --case test/30_A --out docs/figures/fives_sample_overlay.png

`scoring` loads the run's chosen model, then for each of the first test photographs prints
the CPU seconds of reading the pair, predicting it (resized to data.size, logits resized
back to 2048 x 2048: `evaluate.predict_case`, the path of the run's scores), its Dice, and
HD95/ASD on top, with the process's peak resident memory after each, one torch thread.
`vessels` scores each run's chosen model on the test photographs with MONAI's confusion-matrix
measures that FIVES papers report beside Dice (sensitivity, specificity, per photograph at
2048 x 2048, then the mean), one line per run; clDice is left out: MONAI has it only as a
soft training loss, and no maintained library computes it as a metric.
`figure` draws the photograph, its mask and each run's prediction, whole (shrunk 4 times
for the page; masks shrunk by a 4 x 4 maximum so that thin vessels stay visible) and in the
512 x 512 window at native resolution where the mask has the most vessel pixels.
"""
from __future__ import annotations

import argparse
import io
import resource
import time
from pathlib import Path

import numpy as np
import torch

from crossmatch_lite.data.fives import find_root, pairs, read_pair, to_case
from crossmatch_lite.evaluate import case_scores, predict_case
from crossmatch_lite.predict import Predictor

SHRINK, WINDOW = 4, 512


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def scoring(run: Path, root: Path, cases: int) -> None:
    torch.set_num_threads(1)
    predictor = Predictor.from_run(run)
    print(f"{run}: data.size {predictor.size}; model loaded, peak RSS {peak_mb():.0f} MB")
    files = pairs(find_root(root))
    for cid in [c for c in files if c.startswith("test/")][:cases]:
        t0 = time.process_time()
        case = to_case(cid, *read_pair(*files[cid]))
        t1 = time.process_time()
        pred = predict_case(predictor.model, case, predictor.size, predictor.device, autocast=predictor.autocast)
        t2 = time.process_time()
        dice = case_scores(pred, case.label, 2, None, distances=False)["dice"][0]
        t3 = time.process_time()
        case_scores(pred, case.label, 2, None, distances=True)
        t4 = time.process_time()
        print(f"{cid} {case.image.shape[-1]}x{case.image.shape[-2]}: read {t1 - t0:.2f} s, predict {t2 - t1:.2f} s, "
              f"Dice {t3 - t2:.2f} s (Dice {dice:.3f}), Dice + HD95/ASD {t4 - t3:.2f} s CPU; "
              f"peak RSS {peak_mb():.0f} MB")


def vessels(runs: list[Path], root: Path) -> None:
    from monai.metrics import compute_confusion_matrix_metric, get_confusion_matrix

    torch.set_num_threads(1)
    files = pairs(find_root(root))
    cases = [to_case(c, *read_pair(*files[c])) for c in files if c.startswith("test/")]
    for run in runs:
        p = Predictor.from_run(run)
        matrices = []
        for case in cases:
            pred = torch.from_numpy(predict_case(p.model, case, p.size, p.device, autocast=p.autocast)[0].astype(bool))
            label = torch.from_numpy(case.label[0].astype(bool))
            matrices.append(get_confusion_matrix(pred[None, None].float(), label[None, None].float()))
        m = torch.cat(matrices)  # (cases, 1, 4): tp, fp, tn, fn
        sens, spec = (compute_confusion_matrix_metric(k, m).mean().item() for k in ("sensitivity", "specificity"))
        print(f"{run}: {len(cases)} test photographs, sensitivity {100 * sens:.1f}, specificity {100 * spec:.1f}")


def _window(mask: np.ndarray) -> tuple[slice, slice]:
    """The WINDOW x WINDOW tile (on a WINDOW / 2 grid) with the most vessel pixels."""
    h, w = mask.shape
    step = WINDOW // 2
    corners = [(y, x) for y in range(0, h - WINDOW + 1, step) for x in range(0, w - WINDOW + 1, step)]
    y, x = max(corners, key=lambda c: mask[c[0]:c[0] + WINDOW, c[1]:c[1] + WINDOW].sum())
    return slice(y, y + WINDOW), slice(x, x + WINDOW)


def _shrunk(a: np.ndarray) -> np.ndarray:
    """(..., H, W) -> (..., H / SHRINK, W / SHRINK) by the block maximum."""
    *lead, h, w = a.shape
    return a.reshape(*lead, h // SHRINK, SHRINK, w // SHRINK, SHRINK).max(axis=(-1, -3))


def figure(runs: list[Path], root: Path, cid: str, out: Path) -> None:
    from crossmatch_lite.run.files import atomic_write_bytes
    from crossmatch_lite.tutorial.figures import apply_style, image_grid

    apply_style()
    case = to_case(cid, *read_pair(*pairs(find_root(root))[cid]))
    image, label = case.image[0], case.label[0]
    masks = [("mask", label)]
    for run in runs:
        p = Predictor.from_run(run)
        pred = predict_case(p.model, case, p.size, p.device, autocast=p.autocast)[0]
        dice = case_scores(pred[None], case.label, 2, None, distances=False)["dice"][0]
        masks.append((f"{_run_name(run)}: Dice {100 * dice:.1f}", pred))
    ys, xs = _window(label)
    whole = image.reshape(3, image.shape[1] // SHRINK, SHRINK, image.shape[2] // SHRINK, SHRINK).mean(axis=(2, 4))
    panels = [[(whole, None, f"{cid}, whole (shrunk {SHRINK}x)")] + [(whole, _shrunk(m), t) for t, m in masks],
              [(image[:, ys, xs], None, f"{WINDOW} x {WINDOW} native")] + [(image[:, ys, xs], m[ys, xs], t)
                                                                           for t, m in masks]]
    fig = image_grid(panels, f"FIVES {cid}: vessel mask and predictions at 2048 x 2048", ["background", "vessel"])
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(out, buf.getvalue())
    print(f"wrote {out}")


def _run_name(run: Path) -> str:
    import yaml

    cfg = yaml.safe_load((run / "config.yaml").read_text())
    return "supervised" if not cfg["perturb"]["image"]["enabled"] else "CrossMatch"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("scoring")
    s.add_argument("--run", type=Path, required=True)
    s.add_argument("--root", type=Path, required=True)
    s.add_argument("--cases", type=int, default=2)
    v = sub.add_parser("vessels")
    v.add_argument("--runs", type=Path, nargs="+", required=True)
    v.add_argument("--root", type=Path, required=True)
    f = sub.add_parser("figure")
    f.add_argument("--runs", type=Path, nargs="+", required=True)
    f.add_argument("--root", type=Path, required=True)
    f.add_argument("--case", default="test/30_A")
    f.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    if args.cmd == "scoring":
        scoring(args.run, args.root, args.cases)
    elif args.cmd == "vessels":
        vessels(args.runs, args.root)
    else:
        figure(args.runs, args.root, args.case, args.out)


if __name__ == "__main__":
    main()
