"""How many seeds a grid needs: the smallest paired difference that n seeds can show.

For two variants trained at the same seeds, the paired differences d_1..d_n of their test
Dice have mean d and standard deviation s. The 95 % t interval is

    d ± t_{0.975, n-1} · s / sqrt(n)

so an observed difference is "shown" (its interval excludes zero) when |d| exceeds that
half-width h(n). A true difference δ is found with 80 % power when

    δ ≥ (t_{0.975, n-1} + t_{0.80, n-1}) · s / sqrt(n)

(the usual normal approximation with t quantiles). Both depend on s, which only the seeds
already run can estimate: with two or three seeds that estimate is itself rough, so read the
table as an order of magnitude, and prefer the larger s when in doubt.

    python -m crossmatch_lite.tutorial.power docs/results/isic_grid.jsonl [--seeds 3 5 8]
"""
from __future__ import annotations

import argparse
import itertools
import sys

import numpy as np
from scipy import stats

from .results import read_results, t_half_width


def paired_sd(a: dict[int, float], b: dict[int, float]) -> tuple[int, float | None]:
    """(number of shared seeds, sd of the paired differences a - b); sd None below 2 seeds."""
    shared = sorted(set(a) & set(b))
    diffs = [a[s] - b[s] for s in shared]
    return len(diffs), (float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None)


def shown(sd: float, n: int) -> float:
    """Half-width of the 95 % t interval of a mean of n paired differences with sd `sd`."""
    return t_half_width(sd, n)


def detectable(sd: float, n: int, power: float = 0.8) -> float:
    """The true paired difference that n seeds find at 95 % with the given power."""
    return float((stats.t.ppf(0.975, n - 1) + stats.t.ppf(power, n - 1)) * sd / np.sqrt(n))


def seed_scores(path, metric: str = "test_dice", evaluation: str = "best_running") -> dict[str, dict[int, float]]:
    """label -> {seed: metric} of a results file's runs."""
    _, records = read_results(path)
    out: dict[str, dict[int, float]] = {}
    for r in records:
        if r.get("kind") == "run" and evaluation in r["evaluations"]:
            out.setdefault(r["label"], {})[r["seed"]] = r["evaluations"][evaluation][metric]
    return out


def power_table(path, seeds=(3, 5, 8)) -> list[dict]:
    """One row per pair of labels with >= 2 shared seeds: paired sd, h(n) and δ80(n)."""
    scores = seed_scores(path)
    rows = []
    for a, b in itertools.combinations(scores, 2):
        n, sd = paired_sd(scores[a], scores[b])
        if sd is None:
            continue
        d = float(np.mean([scores[a][s] - scores[b][s] for s in set(scores[a]) & set(scores[b])]))
        rows.append({"a": a, "b": b, "n": n, "mean": d, "sd": sd,
                     **{f"shown_{k}": shown(sd, k) for k in seeds}, **{f"found80_{k}": detectable(sd, k) for k in seeds}})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m crossmatch_lite.tutorial.power", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a results file, e.g. docs/results/isic_grid.jsonl")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3, 5, 8])
    args = ap.parse_args(argv)
    try:
        rows = power_table(args.results, args.seeds)
    except (OSError, ValueError) as err:
        print(f"power: {err}", file=sys.stderr)
        return 2
    ks = args.seeds
    print("| a − b | seeds | mean | paired sd | " + " | ".join(f"shown at {k}" for k in ks) + " | "
          + " | ".join(f"found (80 %) at {k}" for k in ks) + " |")
    print("|" + "---|" * (4 + 2 * len(ks)))
    for r in rows:
        print(f"| {r['a']} − {r['b']} | {r['n']} | {r['mean']:+.2f} | {r['sd']:.2f} | "
              + " | ".join(f"{r[f'shown_{k}']:.2f}" for k in ks) + " | "
              + " | ".join(f"{r[f'found80_{k}']:.2f}" for k in ks) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
