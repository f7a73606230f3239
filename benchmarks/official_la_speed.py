"""Seconds per LA (3D) training iteration: the official loop against our `Trainer.train_step`.

    git clone https://github.com/AiEson/CrossMatch ../CrossMatch     # measured at 59772e0
    python -m benchmarks.official_la_speed --official ../CrossMatch [--iterations 20] \\
        [--warmup 3] [--data data/LA]

The official side is the unmodified `LA/code/train_cross_match.py` of that checkout
(imported through benchmarks/official.py; nothing of it is copied here), run with train.sh's
command line for 8 labels (AdamW, base_lr 1e-3, conf_thresh 0.75) on the real LA volumes
(`--data`: `<ID>/mri_norm2.h5` and the list files), with its own LAHeart datasets, torchio
strong views and DataLoaders (num_workers = 2 x batch = 4 per loader, three loaders, as the
script sets them; its labeled list is repeated to 80 - 8 = 72 items, so an epoch is 36
iterations and the workers, started in the first warm-up iteration, are not re-created
within 35 timed ones). What is patched at run time:
- `.cuda()` no-ops and stubs for tensorboardX / torchvision / medpy (benchmarks/official.py);
- the VNet: the official class narrowed to n_filters=4 (channels 4-64, as our la_cpu),
  handed to the script through a module copy (`hand_in_vnet`), default initialisation;
- the patch: the script's module-level `patch_size = (112, 112, 80)` reaches the datasets
  only through `RandomCrop(patch_size)`, so `dataloaders.la_heart.RandomCrop` is replaced by
  a subclass that crops la_cpu's patch (48x48x32), and the default `img_size` of the
  official `obtain_cutmix_box` (which its dataset calls without one) is set to the same;
- the list files: the script reads them from the hard-coded
  `../data/2018LA_Seg_Training Set/`, a link to `--data` in a temporary directory that is
  also its working directory (it copies "." and writes checkpoints under ../model/).

Our side is `crossmatch_lite.train.Trainer` with configs/la_cpu.yaml (`train.threads=1`),
once with `train.amp=off` (fp32, as the official) and once with the default `auto` (bf16
on a CPU with native bf16). la_cpu trains on volumes shrunk by 2, the official reads
them at full size: that changes only the source its crops are taken from, not the step's
compute (the same patch goes through the same network).

Each side runs in its own subprocess with torch.set_num_threads(1) in the main process
(the official loader workers set 1 thread themselves). After `--warmup` iterations, each
of `--iterations` iterations is timed: the official one as the wall time between the ends
of consecutive optimizer steps (loading, pasting, four network calls, backward, step; a
global optimizer post-step hook), ours as `Trainer.train_step()`. CPU time is the process's
own plus its children's (reaped: getrusage; alive: psutil), so the official figure includes
its 12 loader workers (their prefetching included). The official loop and ours run one
after another, not interleaved: on a busy machine the load can differ between them (the
load average before and after each is recorded); our two amp settings share one process,
one copy of the data, and alternate step by step. Writes benchmarks/results/la_speed_cpu.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from .bench_step import cpu_flags, cpu_model
from .official import checkout_commit, hand_in_vnet, official_code
from .timing import cpu_seconds, run_side_process, window

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
CONFIG = ROOT / "configs" / "la_cpu.yaml"
PATCH = (48, 48, 32)  # configs/la_cpu.yaml data.patch
N_FILTERS = 4  # configs/la_cpu.yaml model.channels [4, 8, 16, 32, 64]
COMMAND = ["--exp", "speed", "--conf_thresh", "0.75", "--label_num", "8",
           "--optimizer", "AdamW", "--base_lr", "0.001"]  # train.sh, 8 labels
LISTS = "2018LA_Seg_Training Set"  # the script's hard-coded list directory


# ---------------------------------------------------------------- the official loop
def narrow_official(load) -> None:
    """The official VNet at la_cpu's width and its datasets cropping la_cpu's patch."""
    la_heart, vnet = load("dataloaders.la_heart"), load("networks.vnet")

    class NarrowVNet(vnet.VNet):
        def __init__(self, *a, **k):
            k["n_filters"] = N_FILTERS
            super().__init__(*a, **k)

    class PatchCrop(la_heart.RandomCrop):
        def __init__(self, output_size, with_sdf=False):
            super().__init__(PATCH, with_sdf)

    hand_in_vnet(vnet, NarrowVNet)
    la_heart.RandomCrop = PatchCrop
    box = la_heart.obtain_cutmix_box
    box.__defaults__ = (PATCH,) + box.__defaults__[1:]


def run_script(code: Path, data: Path, iterations: int) -> dict:
    """The script's globals after `iterations` iterations, run in a temporary folder laid
    out as it expects (it reads ../data/<LISTS>/ and writes ../model/)."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "data").mkdir()
        (Path(tmp) / "data" / LISTS).symlink_to(data.resolve(), target_is_directory=True)
        run = Path(tmp) / "run"
        run.mkdir()
        cwd, argv = os.getcwd(), sys.argv
        os.chdir(run)
        # the loop breaks once iter_num > max_iterations: max_iterations + 1 iterations
        sys.argv = ["train_cross_match.py", "--root_path", str(data.resolve()),
                    "--max_iterations", str(iterations - 1)] + COMMAND
        try:
            import runpy
            return runpy.run_path(str(code / "train_cross_match.py"), run_name="__main__")
        finally:
            os.chdir(cwd)
            sys.argv = argv


def run_official(official: Path, data: Path, warmup: int, iterations: int) -> dict:
    import torch
    from torch.optim.optimizer import register_optimizer_step_post_hook

    total = warmup + iterations
    stamps: list[float] = []
    marks: dict = {}

    def after_step(optimizer, args, kwargs):
        stamps.append(time.perf_counter())
        if len(stamps) == warmup:
            marks["start"] = (cpu_seconds(), os.getloadavg())
        elif len(stamps) == total:
            marks["end"] = (cpu_seconds(), os.getloadavg())

    hook = register_optimizer_step_post_hook(after_step)
    torch.set_num_threads(1)
    code = official / "LA" / "code"
    try:
        with official_code(code) as load:
            narrow_official(load)
            g = run_script(code.resolve(), data, total)
    finally:
        hook.remove()
    if g["iter_num"] != total or len(stamps) != total:
        raise RuntimeError(f"the official script ran {g['iter_num']} iterations, not {total}")
    times = [b - a for a, b in zip(stamps[warmup - 1:], stamps[warmup:])]
    loaders = [g[k] for k in ("trainloader_l", "trainloader_u", "trainloader_u_mix")]
    out = window(times, marks["start"][0], marks["end"][0], marks["start"][1], marks["end"][1])
    out.update(patch=list(g["trainloader_l"].dataset.transform.transforms[1].output_size),
               params=sum(p.numel() for p in g["net"].parameters()),
               num_workers=[dl.num_workers for dl in loaders],
               iterations_per_epoch=len(g["trainloader_l"]), optimizer=type(g["optimizer"]).__name__,
               torch_threads=torch.get_num_threads())
    return out


# ---------------------------------------------------------------- ours
AMPS = {"ours_fp32": "off", "ours_auto": "auto"}


def run_ours(data: Path, warmup: int, iterations: int) -> dict:
    """Both amp settings in one process on one copy of the data (loaded once), their timed
    steps interleaved (fp32, auto, fp32, ...) so that changing load hits both alike; CPU
    time per step from time.process_time (no children here)."""
    import torch

    from crossmatch_lite.config import load_config
    from crossmatch_lite.data import load_data
    from crossmatch_lite.train import Trainer

    cfgs = {k: load_config(CONFIG, [f"data.root={data.resolve()}", "train.threads=1", f"train.amp={amp}",
                                    "train.device=cpu"]) for k, amp in AMPS.items()}
    first = next(iter(cfgs.values()))
    loaded = load_data(first.data, seed=first.train.seed)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {k: Trainer(c, Path(tmp) / k, data=loaded) for k, c in cfgs.items()}
        for _ in range(warmup):
            for t in trainers.values():
                t.train_step()
        times = {k: [] for k in trainers}
        cpu = {k: 0.0 for k in trainers}
        load0 = os.getloadavg()
        for _ in range(iterations):
            for k, t in trainers.items():
                w, c = time.perf_counter(), time.process_time()
                t.train_step()
                times[k].append(time.perf_counter() - w)
                cpu[k] += time.process_time() - c
        load1 = os.getloadavg()
    for k, t in trainers.items():
        r = window(times[k], {"main": 0.0, "children": 0.0}, {"main": cpu[k], "children": 0.0}, load0, load1)
        r.update(patch=list(t.cfg.data.patch), downsample=t.cfg.data.downsample, amp=AMPS[k],
                 params=sum(p.numel() for p in t.model.parameters()),
                 bf16=t.bf16, precision=t.precision_why, torch_threads=torch.get_num_threads())
        out[k] = r
    return out


# ---------------------------------------------------------------- driver
SIDES = {"official": "official (fp32)", "ours_fp32": "ours, amp=off (fp32)", "ours_auto": "ours, amp=auto"}


def table(res: dict) -> str:
    rows = ["| side | median s/it | IQR s/it | mean s/it | CPU s/it (workers) |", "|---|---|---|---|---|"]
    for key, label in SIDES.items():
        r = res["sides"].get(key)
        if r is None:
            continue
        if key == "ours_auto":
            label += " (bf16)" if r["bf16"] else " (fp32)"
        rows.append(f"| {label} | {r['median_s']:.3f} | {r['iqr_s'][0]:.3f}–{r['iqr_s'][1]:.3f} | "
                    f"{r['mean_s']:.3f} | {r['cpu_s_per_it']:.3f} ({r['cpu_children_s_per_it']:.3f}) |")
    return "\n".join(rows)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, required=True, help="a checkout of AiEson/CrossMatch")
    p.add_argument("--iterations", type=int, default=20, help="timed iterations per side (a multiple of 4)")
    p.add_argument("--warmup", type=int, default=3, help="untimed iterations first")
    p.add_argument("--data", type=Path, default=ROOT / "data" / "LA", help="LA: <ID>/mri_norm2.h5 and *.list")
    p.add_argument("--sides", default="official,ours", help="official,ours or one of them")
    p.add_argument("--out", type=Path, default=RESULTS / "la_speed_cpu.json")
    p.add_argument("--part", choices=["official", "ours"], help=argparse.SUPPRESS)  # one side, in a subprocess
    p.add_argument("--part-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.warmup < 1 or args.iterations < 1:
        p.error("--warmup and --iterations must be at least 1")
    return args


def run_side(args, side: str) -> dict:
    """One side in its own process (a fresh interpreter: no state shared with the other)."""
    argv = ["--official", str(args.official.resolve()), "--data", str(args.data.resolve()),
            "--warmup", str(args.warmup), "--iterations", str(args.iterations), "--part", side]
    return run_side_process("benchmarks.official_la_speed", argv, ROOT,
                            f"{side}: {args.warmup} + {args.iterations} iterations")


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.part:
        if args.part == "official":
            r = {"official": run_official(args.official, args.data, args.warmup, args.iterations)}
        else:
            r = run_ours(args.data, args.warmup, args.iterations)
        args.part_out.write_text(json.dumps(r))
        return

    import torch

    res = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "torch": torch.__version__,
           "python": platform.python_version(), "official_commit": checkout_commit(args.official),
           "commit": checkout_commit(ROOT),
           "warmup": args.warmup, "iterations": args.iterations, "patch": list(PATCH), "n_filters": N_FILTERS,
           "note": ("official: full-size volumes, 3 DataLoaders x 4 workers (re-created every 36 iterations); "
                    "ours: la_cpu volumes shrunk by 2 (only the crop source differs), data in memory, no workers; "
                    "official and ours run one after another in separate processes (ours: fp32 and auto "
                    "interleaved in one), 1 torch thread in each main process"),
           "sides": {}}
    for side in [s for s in args.sides.split(",") if s]:
        res["sides"].update(run_side(args, side))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"{res['cpu']}, {res['cores']} cores, torch {res['torch']}; patch {PATCH}, n_filters {N_FILTERS}; "
          f"{args.iterations} timed iterations after {args.warmup}")
    print(table(res))
    loads = [v for r in res["sides"].values() for v in (r["loadavg_before"][0], r["loadavg_after"][0])]
    print(f"load average (1 min) during the runs: {min(loads):.2f}–{max(loads):.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
