"""Training speed when other processes share the cores: idle, one busy core, two busy cores.

    python -m benchmarks.shared_cores [--iterations 20] [--size 128] [--batch 4] [--out FILE]

Each measurement is one `crossmatch-lite train` process (the acdc_cpu recipe on the built-in
synthetic hearts, bf16 + channels-last where the CPU has native bf16) timed while 0, 1 or 2
other processes each keep one core busy (a Python loop), under four settings:
- the package default: train.threads=0 (threads follow the cores other processes leave
  free, re-checked every 5 s) and a bounded OpenMP spin (GOMP_SPINCOUNT=10000);
- one thread per core, fixed, with that bounded spin;
- one thread per core with libgomp's own spin (300,000 turns before a waiting thread sleeps);
- one thread.
The figure is the median of the run's per-iteration seconds from its own metrics (training
only: no start-up, no evaluation), so it is the steady state after the thread count has
settled; the mean and the thread counts the run logged are recorded too. Results are
printed as a table and written as JSON with the CPU model.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from crossmatch_lite.run.runtime import available_cores

from .bench_step import cpu_flags, cpu_model


def _spin(stop) -> None:
    """Keep one core busy until told to stop."""
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2**31


# name -> (train.threads, the environment of the timed process; an empty value counts as unset)
BOUNDED = {"GOMP_SPINCOUNT": "10000", "OMP_WAIT_POLICY": ""}
SETTINGS = {"follows free cores (default)": (0, BOUNDED),
            "one per core, bounded spin": (-1, BOUNDED),
            "one per core, libgomp spin": (-1, {"GOMP_SPINCOUNT": "", "OMP_WAIT_POLICY": ""}),
            "one thread": (1, BOUNDED)}


def _train(threads: int, env: dict, iterations: int, size: int, batch: int) -> dict:
    """Per-iteration seconds of one fresh run, as its metrics.jsonl records them."""
    with tempfile.TemporaryDirectory() as out:
        sets = [f"data.size={size}", f"train.batch_size={batch}", f"train.iterations={iterations}",
                "data.name=toy_acdc", f"train.threads={threads}", "train.val_every=100000", "train.log_every=1",
                "train.progress=false", "train.tensorboard=false", "eval.distances=false",
                "eval.precise_bn_batches=0"]
        cmd = [sys.executable, "-m", "crossmatch_lite", "train", "--config", "configs/acdc_cpu.yaml", "--out", out]
        for s in sets:
            cmd += ["--set", s]
        subprocess.run(cmd, check=True, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        rows = [json.loads(ln) for ln in (Path(out) / "metrics.jsonl").read_text().splitlines() if ln.strip()]
    rows = [r for r in rows if "seconds" in r]
    # From the end of the first iteration (warm-up) on.
    steps = [b["seconds"] - a["seconds"] for a, b in zip(rows, rows[1:])]
    return {"median": statistics.median(steps), "mean": statistics.fmean(steps),
            "threads": sorted({r.get("threads", threads) for r in rows})}


def measure(busy: int, threads: int, env: dict, iterations: int, size: int, batch: int) -> dict:
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
    for p in spinners:
        p.start()
    try:
        time.sleep(0.5 if busy else 0)
        return _train(threads, env, iterations, size, batch)
    finally:
        stop.set()
        for p in spinners:
            p.join()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = ap.parse_args(argv)
    cores = available_cores()
    rows = []
    for busy in (0, 1, 2):
        for name, (threads, env) in SETTINGS.items():
            t = measure(busy, cores if threads < 0 else threads, env, args.iterations, args.size, args.batch)
            rows.append({"busy_cores": busy, "setting": name, "s_per_iteration": round(t["median"], 3),
                         "mean_s_per_iteration": round(t["mean"], 3), "threads_logged": t["threads"]})
            print(f"{busy} busy core(s), {name:30s}: {t['median']:.3f} s/iteration (median; mean {t['mean']:.3f}, "
                  f"threads {t['threads']})", flush=True)
    result = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": cores, "torch": torch.__version__,
              "iterations": args.iterations, "size": args.size, "batch": args.batch, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
