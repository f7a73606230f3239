"""Regenerate the committed ISIC 2018 split (splits/isic_*.txt) from a list of training ids.

The official ISIC 2018 Task 1 release has no labeled/unlabeled/val/test split for
semi-supervised work, and a Training-only download has no val or test at all, so the
split is carved once from the training ids (7:1:2 with a fixed seed) and shipped with the
package: every run, on every machine, then trains and scores on the same images.

    python -m crossmatch_lite.data.make_isic_split PATH/TO/train.h5            # prepared file
    python -m crossmatch_lite.data.make_isic_split PATH/TO/ISIC2018_Task1_Training_GroundTruth.zip

The shipped lists were carved from the 2,000 training ids that are also the ISIC 2017
Part 1 training set (docs/data.md): 1,400 train, 200 val, 400 test; labeled 5 % (70) and
10 % (140) of train, the 5 % set inside the 10 % set.
"""
from __future__ import annotations

import argparse
import re
import zipfile
from pathlib import Path

import numpy as np

SPLIT_SEED = 2018
SHARES = {"train": 0.7, "val": 0.1}  # test: the rest (0.2)
LABELED = {"5pct": 0.05, "10pct": 0.10}
OUT = Path(__file__).with_name("splits")
_ID = re.compile(r"(ISIC_\d+)")


def read_ids(path: Path) -> list[str]:
    """Training ids from a prepared train.h5 or from the official ground-truth (or input) zip."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            ids = {m.group(1) for n in zf.namelist() if (m := _ID.search(n.rsplit("/", 1)[-1]))}
    else:
        import h5py
        with h5py.File(path, "r") as f:
            ids = set(f["ids"].asstr()[:])
    if not ids:
        raise SystemExit(f"{path}: no ISIC_<id> names inside; is this train.h5 or a Task 1 training zip?")
    return sorted(ids)


def carve(ids: list[str], seed: int = SPLIT_SEED) -> dict[str, list[str]]:
    """train/val/test by one seeded permutation of the sorted ids; the labeled sets are
    prefixes of one seeded permutation of train, so the smaller lies inside the larger."""
    ids = sorted(ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_train, n_val = (int(round(share * len(ids))) for share in SHARES.values())
    parts = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    out = {name: sorted(ids[i] for i in idx) for name, idx in parts.items()}
    lab_order = np.random.default_rng(seed + 1).permutation(len(out["train"]))
    for tag, share in LABELED.items():
        n = int(round(share * len(out["train"])))
        out[f"labeled_{tag}"] = sorted(out["train"][i] for i in lab_order[:n])
    return out


def write_lists(split: dict[str, list[str]], total: int, out: Path = OUT, seed: int = SPLIT_SEED) -> None:
    for name, ids in split.items():
        head = (f"# ISIC 2018 Task 1, {name} ({len(ids)} ids): carved 7:1:2 from {total} training ids "
                f"with seed {seed} by python -m crossmatch_lite.data.make_isic_split (docs/data.md)")
        (out / f"isic_{name}.txt").write_text("\n".join([head, *ids]) + "\n")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, help="a prepared train.h5 or the official Task 1 training zip")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for isic_*.txt (default: the package's)")
    ap.add_argument("--seed", type=int, default=SPLIT_SEED)
    args = ap.parse_args(argv)
    ids = read_ids(args.source)
    split = carve(ids, args.seed)
    write_lists(split, len(ids), args.out, args.seed)
    print(", ".join(f"{k} {len(v)}" for k, v in split.items()) + f" written to {args.out}")


if __name__ == "__main__":
    main()
