"""Seconds per ACDC training iteration: the unmodified official loop against our `Trainer.train_step`.

    git clone https://github.com/AiEson/CrossMatch ../CrossMatch     # measured at 59772e0
    pip install torchvision==VERSION        # the build that matches your torch (see below)
    python -m benchmarks.official_acdc_speed --official ../CrossMatch --batch 4 --size 128 \\
        [--device cpu|cuda] [--iterations 20] [--warmup N] [--rounds 2] [--threads 1] [--official-workers N]

The official side is the unmodified `ACDC/train_cross_match.py` of that checkout (imported
through benchmarks/official.py; nothing of it is copied here), run as its scripts/train.sh
runs it for 3 labeled patients (configs/acdc.yaml, eta 0.3), with `--size` and `--batch`
written into a copy of that config as crop_size and batch_size, on the checkout's own ACDC
files (slice files, splits), with its own ACDCDataset views (torchvision's ColorJitter, PIL
blur, CutMix boxes) and its three DataLoaders of 3 x batch workers each. Its working folder
is the checkout's ACDC folder (it reads splits/ and dataset/ from there); its TensorBoard
file goes to a temporary folder. Patched at run time, nothing of the step (with `--device cuda` only the set-up of
its one-process group: NCCL on GPU 0; `.cuda()`, SyncBatchNorm and DDP stay the script's):
- `.cuda()` is a no-op (benchmarks/official.py); torchvision is the installed one, so the
  official views need a torchvision that imports beside your torch (e.g. torch 2.14.1 with
  torchvision 0.29.1); both sides then run in that environment;
- distributed: `setup_distributed` starts a one-process gloo group on 127.0.0.1 instead of
  NCCL on a GPU; `SyncBatchNorm.convert_sync_batchnorm` leaves the model as it is
  (SyncBatchNorm needs a GPU, and with one process it computes plain BatchNorm);
  `DistributedDataParallel` is built without device_ids (a CPU module). The samplers, the
  barrier and DDP's gradient all-reduce stay;
- only with `--official-workers N`: each training DataLoader gets at most N workers instead
  of 3 x batch. At batch 12 / crop 256 the unmodified 36 workers and the main process do not
  fit in 23 GiB (the kernel killed the main process at 10.8 GB resident), so that size is
  measured with a cap, and the results file records it.
The script has no iteration limit (epochs only): a global optimizer post-step hook takes the
time stamps and stops it after the last timed iteration.

Our side is `crossmatch_lite.train.Trainer` with configs/acdc_cpu.yaml at the same size and
batch, reading the same checkout's volume files (data.root; the same 3 labeled patients),
data in memory, no loader workers, on `--device`; once with train.amp=off (fp32, as the
official) and once with the default auto (bf16 on CUDA and on a CPU with native bf16), each
in its own process.

Sides run one after another, each in a fresh subprocess with `--threads` torch threads in
its main process (the official loader workers use one each, as DataLoader sets them), and
`--rounds` times in turn (official, ours fp32, ours auto, official, ...), so a change of
load hits every side. After the warm-up (3 iterations for ours; for the official loop 3
more than its loaders prefetch, 2 x 3 x batch, so that its timed iterations wait for
batches made while they run, as in a long run), each of `--iterations` is timed: the
official one as the wall time between the ends of consecutive optimizer steps (loading,
pasting, four network calls, backward, step), ours as `Trainer.train_step()`. CPU time is
the process's own plus its children's (the official loader workers, prefetching included).
On CUDA every time stamp follows a `torch.cuda.synchronize()`, so an iteration's time
includes its kernels. Memory: the proportional set size (PSS: shared pages split between
the processes sharing them) of the side's process tree after its last timed iteration, the
main process's peak RSS and, on CUDA, `torch.cuda.max_memory_allocated`. Writes
benchmarks/results/acdc_speed_<device>_b<batch>_s<size>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import socket
import statistics
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .bench_step import cpu_flags, cpu_model
from .official import checkout_commit, official_code
from .timing import cpu_seconds, run_side_process, window

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
CONFIG = ROOT / "configs" / "acdc_cpu.yaml"
DATA = Path("dataset/datasets/ACDC")  # in the checkout's ACDC folder: data/*.h5, data/slices/*.h5
SPLIT = "splits/acdc/3"  # train.sh's 3-labeled-patient lists
SIDES = {"official": "official (fp32)", "ours_fp32": "ours, amp=off (fp32)", "ours_auto": "ours, amp=auto"}


# ---------------------------------------------------------------- memory
def tree_pss_mb() -> float | None:
    """PSS of this process and its children in MiB (None without psutil)."""
    try:
        import psutil
    except ImportError:
        return None
    me = psutil.Process()
    total = 0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            pass
    return total / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def peak_gpu_mb(device: str) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else None


def stamp(device: str) -> float:
    """A time stamp after the GPU's queued work has finished (on CUDA), so kernels count."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
    return time.perf_counter()


# ---------------------------------------------------------------- the official loop
class _Done(Exception):
    """Raised by the post-step hook after the last timed iteration: stops the script."""


@contextmanager
def capped_workers(cap: int | None):
    """DataLoaders built inside get at most `cap` workers (None: as the script asks)."""
    import torch.utils.data as tud

    loader = tud.DataLoader

    class Capped(loader):
        def __init__(self, *args, num_workers=0, **kwargs):
            super().__init__(*args, num_workers=min(num_workers, cap), **kwargs)

    if cap is not None:
        tud.DataLoader = Capped
    try:
        yield
    finally:
        tud.DataLoader = loader


def official_workers(batch: int, cap: int | None) -> int:
    """Workers of each official training DataLoader: 3 x batch, or the cap."""
    return 3 * batch if cap is None else min(3 * batch, cap)


@contextmanager
def one_process_distributed(device: str = "cpu"):
    """The official script's distributed set-up, as one process: on the CPU with gloo and
    the GPU-only parts (DDP's device_ids, SyncBatchNorm) left out; on CUDA with NCCL on
    GPU 0 and everything else as the script has it."""
    import torch
    import torch.distributed as dist

    def cpu_ddp(module, *args, **kwargs):
        kwargs.pop("device_ids", None)
        kwargs.pop("output_device", None)
        return ddp(module, *args, **kwargs)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), LOCAL_RANK="0", RANK="0", WORLD_SIZE="1")
    ddp, convert = torch.nn.parallel.DistributedDataParallel, torch.nn.SyncBatchNorm.__dict__["convert_sync_batchnorm"]
    if device == "cpu":
        torch.nn.parallel.DistributedDataParallel = cpu_ddp
        torch.nn.SyncBatchNorm.convert_sync_batchnorm = classmethod(lambda cls, module, process_group=None: module)

    def setup_distributed(backend="nccl", port=None):  # the official signature; (rank, world size)
        if device == "cuda":
            torch.cuda.set_device(0)
        dist.init_process_group("nccl" if device == "cuda" else "gloo", world_size=1, rank=0)
        return 0, 1

    try:
        yield setup_distributed
    finally:
        torch.nn.parallel.DistributedDataParallel = ddp
        torch.nn.SyncBatchNorm.convert_sync_batchnorm = convert
        if dist.is_initialized():
            dist.destroy_process_group()


def run_official(official: Path, size: int, batch: int, warmup: int, iterations: int,
                 cap: int | None = None, device: str = "cpu") -> dict:
    """The unmodified script, stopped after warmup + iterations optimizer steps."""
    import runpy

    import torch
    import yaml
    from torch.optim.optimizer import register_optimizer_step_post_hook

    code = (official / "ACDC").resolve()
    total, stamps, marks = warmup + iterations, [], {}

    def after_step(optimizer, args, kwargs):
        stamps.append(stamp(device))
        if len(stamps) == warmup:
            marks["start"] = (cpu_seconds(), os.getloadavg())
        elif len(stamps) == total:
            marks["end"] = (cpu_seconds(), os.getloadavg())
            marks["pss_mb"] = tree_pss_mb()
            marks["params"] = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
            raise _Done

    cfg = yaml.safe_load((code / "configs" / "acdc.yaml").read_text())
    cfg.update(crop_size=size, batch_size=batch)
    hook = register_optimizer_step_post_hook(after_step)
    cwd, argv = os.getcwd(), sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "acdc.yaml").write_text(yaml.safe_dump(cfg))
        sys.argv = ["train_cross_match.py", "--config", str(Path(tmp) / "acdc.yaml"),
                    "--labeled-id-path", f"{SPLIT}/labeled.txt", "--unlabeled-id-path", f"{SPLIT}/unlabeled.txt",
                    "--save-path", str(Path(tmp) / "save"), "--eta", "0.3"]
        try:
            real = ("torchvision", "cuda") if device == "cuda" else ("torchvision",)
            with official_code(code, real=real) as load, one_process_distributed(device) as setup, \
                    capped_workers(cap):
                load("util.dist_helper").setup_distributed = setup
                os.chdir(code)
                runpy.run_path(str(code / "train_cross_match.py"), run_name="__main__")
        except _Done:
            pass
        finally:
            hook.remove()
            os.chdir(cwd)
            sys.argv = argv
    if len(stamps) != total:
        raise RuntimeError(f"the official script ran {len(stamps)} iterations, not {total} (an epoch too short?)")
    out = window([b - a for a, b in zip(stamps[warmup - 1:], stamps[warmup:])], marks["start"][0],
                 marks["end"][0], marks["start"][1], marks["end"][1])
    out.update(pss_mb=marks["pss_mb"], peak_rss_main_mb=peak_rss_mb(), peak_gpu_mb=peak_gpu_mb(device),
               params=marks["params"],
               workers=3 * official_workers(batch, cap), torch_threads=torch.get_num_threads())
    return out


# ---------------------------------------------------------------- ours
def run_ours(official: Path, size: int, batch: int, amp: str, warmup: int, iterations: int,
             device: str = "cpu") -> dict:
    import torch

    from crossmatch_lite.config import load_config
    from crossmatch_lite.train import Trainer

    root = (official / "ACDC" / DATA).resolve()
    cfg = load_config(CONFIG, [f"data.root={root}", "data.cache=false", f"data.size={size}",
                               f"train.batch_size={batch}", f"train.amp={amp}", f"train.device={device}",
                               f"train.threads={torch.get_num_threads()}", "train.progress=false"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = Trainer(cfg, Path(tmp) / "run")
        for _ in range(warmup):
            trainer.train_step()
        times, cpu0, load0 = [], cpu_seconds(), os.getloadavg()
        for _ in range(iterations):
            t = stamp(device)
            trainer.train_step()
            times.append(stamp(device) - t)
        out = window(times, cpu0, cpu_seconds(), load0, os.getloadavg())
        out.update(pss_mb=tree_pss_mb(), peak_rss_main_mb=peak_rss_mb(), peak_gpu_mb=peak_gpu_mb(device),
                   params=sum(p.numel() for p in trainer.model.parameters()), amp=amp,
                   bf16=trainer.bf16, precision=trainer.precision_why, torch_threads=torch.get_num_threads())
    return out


# ---------------------------------------------------------------- driver
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, required=True, help="a checkout of AiEson/CrossMatch")
    p.add_argument("--batch", type=int, default=4, help="batch size of each of x, u and the CutMix source")
    p.add_argument("--size", type=int, default=128, help="crop size (official) = resize (ours)")
    p.add_argument("--iterations", type=int, default=20, help="timed iterations per side and round")
    p.add_argument("--warmup", type=int, help="untimed iterations first (default: 3 for ours; for the "
                   "official loop 3 more than its loaders prefetch, 2 x 3 x batch, so that the timed "
                   "iterations wait for batches made while they run)")
    p.add_argument("--official-workers", type=int, metavar="N",
                   help="at most N workers per official training DataLoader (default: 3 x batch, as the script)")
    p.add_argument("--rounds", type=int, default=2, help="times each side runs, in turn")
    p.add_argument("--threads", type=int, default=1, help="torch threads of each side's main process")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="where both sides train (default %(default)s); cuda: GPU 0")
    p.add_argument("--sides", default=",".join(SIDES), help="comma-separated subset of " + ",".join(SIDES))
    p.add_argument("--out", type=Path, help="default: benchmarks/results/acdc_speed_<device>_b<batch>_s<size>.json")
    p.add_argument("--part", choices=list(SIDES), help=argparse.SUPPRESS)  # one side, in a subprocess
    p.add_argument("--part-out", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.iterations, args.rounds, args.threads) < 1 or any(
            v is not None and v < 1 for v in (args.warmup, args.official_workers)):
        p.error("--warmup, --iterations, --rounds, --threads and --official-workers must be at least 1")
    if not (args.official / "ACDC" / "train_cross_match.py").is_file():
        p.error(f"{args.official} holds no ACDC/train_cross_match.py; pass a checkout of AiEson/CrossMatch")
    unknown = set(args.sides.split(",")) - set(SIDES)
    if unknown:
        p.error(f"unknown side(s) {', '.join(sorted(unknown))}; choose from {', '.join(SIDES)}")
    capped = f"_w{args.official_workers}" if args.official_workers else ""
    args.out = args.out or RESULTS / f"acdc_speed_{args.device}_b{args.batch}_s{args.size}{capped}.json"
    return args


def warmup_of(args, side: str) -> int:
    """Each official worker prefetches 2 batches (DataLoader's prefetch_factor) and each loader
    has 3 x batch of them (or --official-workers): timing starts once those are used up, in
    the steady state."""
    if args.warmup:
        return args.warmup
    return 2 * official_workers(args.batch, args.official_workers) + 3 if side == "official" else 3


def run_part(args) -> dict:
    import torch

    torch.set_num_threads(args.threads)
    warmup = warmup_of(args, args.part)
    if args.part == "official":
        out = run_official(args.official, args.size, args.batch, warmup, args.iterations, args.official_workers,
                           args.device)
    else:
        amp = {"ours_fp32": "off", "ours_auto": "auto"}[args.part]
        out = run_ours(args.official, args.size, args.batch, amp, warmup, args.iterations, args.device)
    return {**out, "warmup": warmup}


def run_side(args, side: str) -> dict:
    """One side in a fresh interpreter (nothing shared with the other sides)."""
    warmup = warmup_of(args, side)
    argv = ["--official", str(args.official.resolve()), "--batch", str(args.batch), "--size", str(args.size),
            "--warmup", str(warmup), "--iterations", str(args.iterations), "--threads", str(args.threads),
            "--device", args.device, "--part", side]
    if args.official_workers:
        argv += ["--official-workers", str(args.official_workers)]
    return run_side_process("benchmarks.official_acdc_speed", argv, ROOT,
                            f"{side}: {warmup} + {args.iterations} iterations")


def combine(rounds: list[dict]) -> dict:
    """One side's rounds as one window: every timed iteration, CPU time averaged, memory's maximum."""
    times = [t for r in rounds for t in r["wall_s"]]
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    out = {**rounds[-1], "iterations": len(times), "wall_s": times, "median_s": q[1], "iqr_s": [q[0], q[2]],
           "mean_s": sum(times) / len(times), "rounds": len(rounds),
           "median_s_per_round": [r["median_s"] for r in rounds],
           "loadavg_before": rounds[0]["loadavg_before"], "loadavg_after": rounds[-1]["loadavg_after"]}
    for k in ("cpu_s_per_it", "cpu_main_s_per_it", "cpu_children_s_per_it"):
        out[k] = sum(r[k] for r in rounds) / len(rounds)
    for k in ("pss_mb", "peak_rss_main_mb", "peak_gpu_mb"):
        vals = [r[k] for r in rounds if r.get(k) is not None]
        out[k] = max(vals) if vals else None
    return out


def table(res: dict) -> str:
    gpu = res.get("device") == "cuda"
    rows = ["| side | median s/it | IQR s/it | CPU s/it (workers) | x official (median) | PSS MiB |"
            + (" peak GPU MiB |" if gpu else ""), "|---|---|---|---|---|---|" + ("---|" if gpu else "")]
    base = res["sides"].get("official", {}).get("median_s")
    for key, label in SIDES.items():
        r = res["sides"].get(key)
        if r is None:
            continue
        if key == "ours_auto":
            label += " (bf16)" if r["bf16"] else " (fp32)"
        ratio = f"{base / r['median_s']:.2f}" if base else "–"
        pss = f"{r['pss_mb']:.0f}" if r.get("pss_mb") is not None else "–"
        rows.append(f"| {label} | {r['median_s']:.3f} | {r['iqr_s'][0]:.3f}–{r['iqr_s'][1]:.3f} | "
                    f"{r['cpu_s_per_it']:.3f} ({r['cpu_children_s_per_it']:.3f}) | {ratio} | {pss} |"
                    + (f" {r['peak_gpu_mb']:.0f} |" if gpu else ""))
    return "\n".join(rows)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.part:
        args.part_out.write_text(json.dumps(run_part(args)))
        return
    if "official" in args.sides.split(","):
        try:
            import torchvision.transforms  # noqa: F401  (the official views need it)
        except Exception as e:  # ImportError, or a build that does not match this torch
            sys.exit(f"the official ACDC views need torchvision's ColorJitter, and torchvision does not import "
                     f"here ({type(e).__name__}: {e}); install the torchvision build that matches your torch")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA GPU here; use --device cpu")
    res = {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(), "torch": torch.__version__,
           "device": args.device,
           "gpu": torch.cuda.get_device_name(0) if args.device == "cuda" else None,
           "python": platform.python_version(), "official_commit": checkout_commit(args.official),
           "commit": checkout_commit(ROOT), "batch": args.batch, "size": args.size, "threads": args.threads,
           "iterations": args.iterations, "official_workers": official_workers(args.batch, args.official_workers),
           "note": ("official: the unmodified ACDC/train_cross_match.py (fp32, its slice files, 3 DataLoaders "
                    "x 3*batch workers unless official_workers caps them, one-process gloo DDP); ours: configs/acdc_cpu.yaml on the same "
                    "checkout's volume files, data in memory, no workers; each side a fresh process, "
                    "sides in turn for each round"),
           "sides": {}}
    sides = [s for s in args.sides.split(",") if s]
    per_side = {s: [] for s in sides}
    for _ in range(args.rounds):
        for side in sides:
            per_side[side].append(run_side(args, side))
    res["sides"] = {s: combine(r) for s, r in per_side.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1) + "\n")
    print(f"{res['gpu'] or res['cpu']}, {res['cores']} CPU cores, torch {res['torch']}; batch {args.batch}, size {args.size}, "
          f"{args.threads} thread(s); {args.rounds} x {args.iterations} timed iterations after "
          f"{warmup_of(args, 'official')} (official) / {warmup_of(args, 'ours_fp32')} (ours)")
    print(table(res))
    loads = [v for r in res["sides"].values() for v in (r["loadavg_before"][0], r["loadavg_after"][0])]
    print(f"load average (1 min) during the runs: {min(loads):.2f}–{max(loads):.2f}; wrote {args.out}")


if __name__ == "__main__":
    main()
