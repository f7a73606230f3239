"""Training speed when other processes share the cores: idle, one busy core, two busy cores.

    python -m benchmarks.shared_cores [--iterations 8] [--size 128] [--batch 4] [--out FILE]

Each measurement is one `crossmatch-lite train` process (the acdc_cpu recipe on the built-in
synthetic hearts, train.threads=0: one thread per core) timed while 0, 1 or 2 other
processes each keep one core busy (a Python loop), under three OpenMP waiting rules:
the package's default (threads spin 10,000 turns, then sleep: GOMP_SPINCOUNT=10000),
libgomp's own default (300,000 turns) and passive waiting (no spin). The
figure is seconds per iteration from the run's own metrics (training only, no start-up
and no evaluation). Results are printed as a table and written as JSON with the CPU model.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .bench_step import cpu_model


def _spin(stop) -> None:
    """Keep one core busy until told to stop."""
    x = 0
    while not stop.is_set():
        x = (x * 1103515245 + 12345) % 2**31


# name -> the environment of the timed process (an empty value counts as unset)
WAITING = {"bounded spin (default)": {"GOMP_SPINCOUNT": "10000", "OMP_WAIT_POLICY": ""},
           "libgomp default": {"GOMP_SPINCOUNT": "", "OMP_WAIT_POLICY": ""},
           "passive": {"GOMP_SPINCOUNT": "", "OMP_WAIT_POLICY": "PASSIVE"}}


def _train(waiting: dict, iterations: int, size: int, batch: int) -> float:
    """Seconds per training iteration of one fresh run, as its metrics.jsonl records them."""
    with tempfile.TemporaryDirectory() as out:
        sets = [f"data.size={size}", f"train.batch_size={batch}", f"train.iterations={iterations}",
                "data.name=toy_acdc", "train.threads=0", "train.val_every=100000", "train.log_every=1",
                "train.progress=false", "train.tensorboard=false", "eval.distances=false",
                "eval.precise_bn_batches=0"]
        cmd = [sys.executable, "-m", "crossmatch_lite", "train", "--config", "configs/acdc_cpu.yaml", "--out", out]
        for s in sets:
            cmd += ["--set", s]
        env = {**os.environ, **waiting}
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        rows = [json.loads(ln) for ln in (Path(out) / "metrics.jsonl").read_text().splitlines() if ln.strip()]
        secs = [r["seconds"] for r in rows if "seconds" in r]
        # From the end of the first iteration (warm-up) to the last.
        return (secs[-1] - secs[0]) / max(1, len(secs) - 1)


def measure(busy: int, waiting: dict, iterations: int, size: int, batch: int) -> float:
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(busy)]
    for p in spinners:
        p.start()
    try:
        time.sleep(0.5 if busy else 0)
        return _train(waiting, iterations, size, batch)
    finally:
        stop.set()
        for p in spinners:
            p.join()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    args = ap.parse_args(argv)
    rows = []
    for busy in (0, 1, 2):
        for name, env in WAITING.items():
            s = measure(busy, env, args.iterations, args.size, args.batch)
            rows.append({"busy_cores": busy, "waiting": name, "s_per_iteration": round(s, 3)})
            print(f"{busy} busy core(s), {name:22s}: {s:.3f} s/iteration", flush=True)
    result = {"cpu": cpu_model(), "cores": os.cpu_count(),
              "iterations": args.iterations, "size": args.size, "batch": args.batch, "rows": rows}
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
