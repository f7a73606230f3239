"""Where an iteration's time goes: torch.profiler op table of ours.

    python -m benchmarks.profile_step --batch 4 --size 128 --threads 1 [--iterations 5] [--set train.amp=bf16]

Prints the top operators by self CPU time of `--iterations` iterations of each (after one
warm-up), with each operator's share of the profiled time.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.profiler import ProfilerActivity, profile

from crossmatch_lite.data import load_data
from crossmatch_lite.train import Trainer

from .bench_step import make_config


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--data", default="acdc")
    ap.add_argument("--root", default="data/ACDC", help="prepared ACDC (default %(default)s)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--iterations", type=int, default=1, help="iterations profiled together")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    cfg = make_config(args, device)
    data = load_data(cfg.data, seed=cfg.train.seed)
    loops = {"ours": Trainer(cfg, tempfile.mkdtemp(), data=data).train_step}
    for name, step in loops.items():
        step()
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        t0 = time.perf_counter()
        with profile(activities=acts) as prof:
            for _ in range(args.iterations):
                step()
        wall = time.perf_counter() - t0
        ops = prof.key_averages()
        total = sum(e.self_cpu_time_total for e in ops)
        print(f"\n=== {name}: {wall / args.iterations:.2f} s per iteration (profiled, {args.iterations} iterations, "
              f"{torch.get_num_threads()} threads) ===")
        for e in sorted(ops, key=lambda e: -e.self_cpu_time_total)[:args.top]:
            print(f"{e.key[:48]:48s} {e.self_cpu_time_total / 1e6 / args.iterations:8.3f} s/it "
                  f"{100 * e.self_cpu_time_total / total:5.1f} %  ({e.count // args.iterations} calls/it)")


if __name__ == "__main__":
    main()
