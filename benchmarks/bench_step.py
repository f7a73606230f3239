"""Seconds per CrossMatch iteration of ours (`Trainer.train_step`), and of its variants.

    python -m benchmarks.bench_step --batch 4 --size 128 --repeats 5
    python -m benchmarks.bench_step --batch 12 --size 256 --repeats 2 --variant bf16=train.amp=bf16
    python -m benchmarks.bench_step --batch 4 --size 128 --compare-threads   # 1 thread vs one per core

The comparison with the official code is benchmarks/official_acdc_speed.py and
benchmarks/official_la_speed.py, which run the unmodified official scripts. Here, the
default configuration and each `--variant` run in this process on the same data, with the
same thread settings; their timed iterations are interleaved (a, b, b, a, ...) so that
changing machine load hits all alike, and each variant's ratio to the default is the
median of per-pair ratios. The first iteration of each is a warm-up that also counts the
FLOPs (forward + backward, torch.utils.flop_counter) and is not timed.

Reported per loop: median (and min/max) s/iteration, images/s (labeled + unlabeled +
CutMix-source images drawn per iteration), peak memory (CPU: resident-set growth during
a step, sampled; CUDA: torch.cuda.max_memory_allocated), GFLOP per iteration and the
achieved GFLOP/s; plus a 2048-cube fp32 matmul rate as the hardware ceiling and the load
average. On CUDA also the share of an iteration during which the GPU runs no kernel
(profiled). Results go to benchmarks/results/<device>_b<B>_s<S>[...].json.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from crossmatch_lite.config import load_config
from crossmatch_lite.data import load_data
from crossmatch_lite.run.files import atomic_write_text
from crossmatch_lite.run.runtime import configure_threads, cpu_info
from crossmatch_lite.train import Trainer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"


# ---------------------------------------------------------------- machine facts
# The flags that decide how fast a step runs: vector width, and native bf16 (train.amp=auto).
SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_model() -> str:
    return cpu_info()[0] or platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    have = cpu_info()[1]
    return [f for f in SPEED_FLAGS if f in have]


def hardware_info(device: torch.device) -> dict:
    """What the numbers were measured on; every results file carries it."""
    info = {"cpu": cpu_model(), "cores": os.cpu_count(),
            "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
            "flags": cpu_flags(), "gpu": None}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2 ** 30, 1),
                    gpu_capability=f"{props.major}.{props.minor}", cuda=torch.version.cuda,
                    cudnn=torch.backends.cudnn.version())
    return info


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def sgemm_gflops(device: torch.device, n: int = 2048, reps: int = 5) -> tuple[float, float | None]:
    """Best-of-reps fp32 n x n x n matmul rate: the ceiling the conv layers could approach.

    Returns (wall-clock GFLOP/s, GFLOP per process CPU second / threads); on a loaded
    machine the second is the per-core rate the process got while it ran (CPU only).
    """
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    torch.mm(a, b)
    sync(device)
    best, best_cpu = float("inf"), float("inf")
    for _ in range(reps):
        c0, t0 = time.process_time(), time.perf_counter()
        torch.mm(a, b)
        sync(device)
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    flop = 2 * n ** 3 / 1e9
    per_core = flop / best_cpu if device.type == "cpu" and best_cpu > 0 else None
    return flop / best, per_core


# ---------------------------------------------------------------- memory
class RssPeak:
    """Peak resident-set size of this process while the block runs, sampled every `dt` s.

    ru_maxrss only ever grows over the process lifetime, so with two loops interleaved
    in one process it cannot attribute a peak; sampling the RSS can.
    """

    def __init__(self, dt: float = 0.01):
        import psutil
        self.proc, self.dt = psutil.Process(), dt

    def __enter__(self):
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.dt):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        self.growth = self.peak - self.start


def gpu_idle_share(fn, device: torch.device) -> float | None:
    """Share of fn's wall time in which no CUDA kernel runs (single stream: kernels do not overlap)."""
    try:
        from torch.autograd import DeviceType
        from torch.profiler import ProfilerActivity, profile
        sync(device)
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            fn()
            sync(device)
        wall_us = (time.perf_counter() - t0) * 1e6
        spans = sorted((e.time_range.start, e.time_range.end) for e in prof.events()
                       if e.device_type == DeviceType.CUDA)
        busy, end = 0.0, -1.0
        for s, e in spans:  # union of kernel intervals
            if e > end:
                busy += e - max(s, end)
                end = e
        return max(0.0, 1.0 - busy / wall_us)
    except Exception as e:  # the profiler is optional: never let it sink the benchmark
        print(f"  (GPU idle share not measured: {e})", file=sys.stderr)
        return None


# ---------------------------------------------------------------- the two loops
def make_config(args, device: torch.device):
    sets = [f"data.name={args.data}", f"data.size={args.size}", f"train.batch_size={args.batch}",
            f"train.threads={args.threads}", f"train.device={device}", "train.progress=false",
            f"train.compile={'true' if args.compile else 'false'}"]
    if args.data == "acdc":
        sets.append(f"data.root={args.root}")
    return load_config(str(ROOT / "configs" / "crossmatch.yaml"), sets + list(args.set))


class Runner:
    """One loop under test: a name, a step function and its measurements."""

    def __init__(self, name, step, device, images_per_it, count_flops=True):
        self.name, self.step, self.device = name, step, device
        self.images_per_it = images_per_it
        # FlopCounterMode around a torch.compile'd first call would count (or break) the
        # compilation instead of the step; compiled runners take the count of their eager twin.
        self.count_flops = count_flops
        self.times, self.mem, self.flops = [], [], None
        self.cpu_times = []  # process CPU seconds (all threads): a load-robust measure of work
        self.first_step_s = None

    def warmup_and_count(self):
        """The first step, untimed for the table; its wall time (torch.compile's compilation,
        where on) is kept as first_step_s."""
        t0 = time.perf_counter()
        if not self.count_flops:
            self.step()
            sync(self.device)
        else:
            with FlopCounterMode(display=False) as fc:
                self.step()
            sync(self.device)
            self.flops = fc.get_total_flops()
        self.first_step_s = time.perf_counter() - t0

    def timed(self):
        gc.collect()
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            sync(self.device)
            t0 = time.perf_counter()
            self.step()
            sync(self.device)
            self.times.append(time.perf_counter() - t0)
            self.mem.append(torch.cuda.max_memory_allocated(self.device))
        else:
            with RssPeak() as rss:
                c0, t0 = time.process_time(), time.perf_counter()
                self.step()
                self.times.append(time.perf_counter() - t0)
                self.cpu_times.append(time.process_time() - c0)
            self.mem.append(rss.growth)

    def summary(self) -> dict:
        med = statistics.median(self.times)
        gflop = self.flops / 1e9 if self.flops else None
        out = {
            "s_per_it_median": round(med, 4),
            "s_per_it_min": round(min(self.times), 4),
            "s_per_it_max": round(max(self.times), 4),
            "s_per_it_all": [round(t, 4) for t in self.times],
            "images_per_s": round(self.images_per_it / med, 2),
            "gflop_per_it": round(gflop, 2) if gflop else None,
            "achieved_gflop_s": round(gflop / med, 2) if gflop else None,
            "achieved_gflop_s_best": round(gflop / min(self.times), 2) if gflop else None,
            "peak_mem_mib": round(max(self.mem) / 2 ** 20, 1),
            "peak_mem_kind": "cuda max_memory_allocated" if self.device.type == "cuda"
            else "RSS growth during a step (sampled every 10 ms)",
        }
        if self.first_step_s is not None:
            out["first_step_s"] = round(self.first_step_s, 2)
        if self.cpu_times:
            out["cpu_s_per_it_median"] = round(statistics.median(self.cpu_times), 4)
        return out


def build_runners(args, device, cfg, data, tmp):
    """ours and its --variant configurations, sharing the data."""
    trainer = Trainer(cfg, tmp, data=data)
    b = cfg.train.batch_size
    bu = cfg.train.unlabeled_batch_size or b
    images = b + 2 * bu  # x, u, and the CutMix source m
    runners = [Runner("ours", trainer.train_step, device, images, count_flops=not cfg.train.compile)]
    for spec in args.variant:
        name, _, sets = spec.partition("=")
        vcfg = make_config(argparse.Namespace(**{**vars(args), "set": list(args.set) + sets.split(",")}), device)
        runners.append(Runner(f"ours[{name}]", Trainer(vcfg, tmp, data=data).train_step, device, images,
                              count_flops=not vcfg.train.compile))
    return trainer, runners


# How the per-loop figures are obtained; copied into every results file.
MEASUREMENT = {
    "cuda": {
        "s_per_it": "wall clock of one train step between torch.cuda.synchronize calls",
        "peak_mem": "torch.cuda.max_memory_allocated over one step (reset before it)",
        "gpu_idle_share": "1 - (union of CUDA kernel intervals from torch.profiler) / wall time of "
                          "one profiled step: time the GPU runs nothing (waiting on data, Python, "
                          "launches, host syncs); ours builds its views on the GPU",
    },
    "cpu": {
        "s_per_it": "wall clock of one train step",
        "peak_mem": "growth of the resident set during a step, sampled every 10 ms",
        "gpu_idle_share": "not applicable",
    },
}


def interleaved(runners, repeats):
    for r in range(repeats):
        order = runners if r % 2 == 0 else runners[::-1]
        for run in order:
            run.timed()
            print(f"  rep {r + 1}/{repeats} {run.name:>12}: {run.times[-1]:.3f} s", file=sys.stderr, flush=True)


def pair_ratios(a: Runner, b: Runner) -> list[float]:
    return [tb / ta for ta, tb in zip(a.times, b.times)]


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=5, help="timed iterations of each loop after the warm-up")
    ap.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    ap.add_argument("--data", default="acdc", help="acdc (real slices) or toy_acdc")
    ap.add_argument("--root", default="data/ACDC",
                    help="prepared ACDC (python -m data_download acdc --dest data/ACDC); default %(default)s")
    ap.add_argument("--threads", type=int, default=0, help="train.threads (0: one per core)")
    ap.add_argument("--compile", action="store_true", help="torch.compile our model (CUDA)")
    ap.add_argument("--compare-threads", action="store_true",
                    help="time ours with 1 thread against train.threads=0, interleaved (CPU)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=KEY=VAL[,KEY=VAL]",
                    help="time extra configurations of ours next to the default one, e.g. "
                         "cl=train.channels_last=on or bf16=train.amp=bf16 (repeatable)")
    ap.add_argument("--no-flops", action="store_true", help="skip the FLOP count (plain warm-up)")
    ap.add_argument("--no-sgemm", action="store_true", help="skip the matmul ceiling (quick dry runs)")
    ap.add_argument("--warmup", type=int, default=0,
                    help="untimed iterations after the first one (torch.compile re-compiles for "
                         "each new input shape; cuDNN picks its algorithms on first use)")
    ap.add_argument("--set", action="append", default=[], help="extra config overrides key=value")
    ap.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<auto>.json)")
    return ap.parse_args(argv)


def time_threads(args, device, data, tmp) -> dict:
    """--compare-threads: ours with 1 thread against one per core, interleaved."""
    runners = []
    for n in (1, 0):
        c = make_config(argparse.Namespace(**{**vars(args), "threads": n}), device)
        trainer = Trainer(c, tmp, data=data)
        label = f"threads={n}" + (f" ({torch.get_num_threads()})" if n == 0 else "")

        def step(trainer=trainer, n=n):
            configure_threads(n)  # the setting is process-wide: re-apply before each step
            trainer.train_step()
        runners.append(Runner(label, step, device, args.batch * 3))
    for r in runners:
        r.step()  # warm-up
    interleaved(runners, args.repeats)
    configure_threads(0)
    threads = {r.name: r.summary() for r in runners}
    threads["speedup_one_per_core_vs_1"] = round(statistics.median(pair_ratios(runners[1], runners[0])), 3)
    return {"threads": threads, "interop_threads": torch.get_num_interop_threads()}


def time_loops(args, device, cfg, data, tmp) -> dict:
    """Ours and its --variant configurations."""
    _, runners = build_runners(args, device, cfg, data, tmp)
    result = {"threads_used": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
              "train_flags": {"amp": cfg.train.amp, "channels_last": cfg.train.channels_last,
                              "compile": cfg.train.compile}}
    for r in runners:
        if args.no_flops:
            r.count_flops = False
        r.warmup_and_count()
        for _ in range(args.warmup):
            r.step()
        sync(device)
    interleaved(runners, args.repeats)
    result["loops"] = {r.name: r.summary() for r in runners}
    result["measurement"] = MEASUREMENT[device.type]
    for r in runners[1:]:
        if r.name.startswith("ours["):
            result["loops"][r.name]["speedup_vs_ours_default"] = round(
                statistics.median(pair_ratios(r, runners[0])), 3)
    if device.type == "cuda":
        for r in runners:
            result["loops"][r.name]["gpu_idle_share"] = gpu_idle_share(r.step, device)
    return result


def add_ceiling(result: dict, args, device) -> None:
    """The matmul rate, and each loop's achieved rate as a share of it."""
    wall_rate, core_rate = sgemm_gflops(device) if not args.no_sgemm else (None, None)
    result["sgemm_threads"] = torch.get_num_threads()
    result["sgemm_2048_gflop_s"] = round(wall_rate, 1) if wall_rate else None
    result["sgemm_2048_gflop_per_cpu_s"] = round(core_rate, 1) if core_rate else None
    result["loadavg_after"] = loadavg()
    for loop in result.get("loops", {}).values():
        if loop.get("achieved_gflop_s") and result["sgemm_2048_gflop_s"]:
            loop["share_of_sgemm"] = round(loop["achieved_gflop_s"] / result["sgemm_2048_gflop_s"], 3)
        if loop.get("gflop_per_it") and loop.get("cpu_s_per_it_median") and result["sgemm_2048_gflop_per_cpu_s"]:
            loop["gflop_per_cpu_s"] = round(loop["gflop_per_it"] / loop["cpu_s_per_it_median"], 1)
            loop["share_of_sgemm_per_cpu_s"] = round(loop["gflop_per_cpu_s"] / result["sgemm_2048_gflop_per_cpu_s"], 3)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    if args.data != "acdc" or not (Path(args.root) / "data").is_dir():
        if args.data == "acdc":
            print(f"no ACDC data under {args.root}: using toy_acdc", file=sys.stderr)
        args.data = "toy_acdc"
    cfg = make_config(args, device)
    t0 = time.perf_counter()
    data = load_data(cfg.data, seed=cfg.train.seed)
    print(f"data {cfg.data.name} at {cfg.data.size}: {len(data.train_images)} training slices "
          f"({time.perf_counter() - t0:.1f} s to load)", file=sys.stderr)
    tmp = tempfile.mkdtemp(prefix="bench_step_")
    result = {
        "command": "python -m benchmarks.bench_step " + " ".join(sys.argv[1:] if argv is None else argv),
        "device": str(device),
        "batch": args.batch, "size": args.size, "repeats": args.repeats, "data": cfg.data.name,
        "hardware": hardware_info(device),
        "torch": torch.__version__,
        "loadavg_before": loadavg(),
    }
    if args.compare_threads:
        result.update(time_threads(args, device, data, tmp))
    else:
        result.update(time_loops(args, device, cfg, data, tmp))
    add_ceiling(result, args, device)

    print_table(result)
    out = Path(args.out) if args.out else RESULTS / default_name(args, device)
    atomic_write_text(out, json.dumps(result, indent=1) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return result


def default_name(args, device) -> str:
    name = f"{device.type}_b{args.batch}_s{args.size}"
    if args.compare_threads:
        name += "_threads"
    if args.compile:
        name += "_compile"
    if args.variant:
        name += "_variants"
    return name + ".json"


def print_table(result: dict) -> None:
    hw = result["hardware"]
    print(f"\n{hw['cpu']} ({hw['cores']} cores, {','.join(hw['flags'])})"
          + (f", GPU {hw['gpu']}" if hw["gpu"] else "") + f", torch {result['torch']}")
    print(f"batch {result['batch']}, crop {result['size']}, {result['repeats']} timed iterations each, "
          f"load average {result['loadavg_before']} -> {result['loadavg_after']}; "
          f"sgemm 2048^3 ({result['sgemm_threads']} threads): {result['sgemm_2048_gflop_s']} GFLOP/s wall, "
          f"{result['sgemm_2048_gflop_per_cpu_s']} GFLOP per CPU second")
    rows = result.get("loops") or {k: v for k, v in result.get("threads", {}).items() if isinstance(v, dict)}
    hdr = f"{'loop':<16}{'cpu s/it':>10}{'s/it med':>10}{'min':>9}{'max':>9}{'img/s':>9}{'GFLOP/it':>10}{'GFLOP/s':>9}{'peak MiB':>10}"
    print(hdr)
    print("-" * len(hdr))
    fmt = lambda v, f: ("-" if v is None else format(v, f))  # noqa: E731
    for name, s in rows.items():
        print(f"{name:<16}{fmt(s.get('cpu_s_per_it_median'), '.3f'):>10}{s['s_per_it_median']:>10.3f}{s['s_per_it_min']:>9.3f}{s['s_per_it_max']:>9.3f}"
              f"{s['images_per_s']:>9.2f}{fmt(s['gflop_per_it'], '.1f'):>10}{fmt(s['achieved_gflop_s'], '.1f'):>9}"
              f"{s['peak_mem_mib']:>10.1f}")
        if "gpu_idle_share" in s:
            print(f"{'':<16}GPU idle share {fmt(s['gpu_idle_share'], '.3f')}")
    if "threads" in result:
        print(f"one thread per core vs 1 thread: {result['threads']['speedup_one_per_core_vs_1']}x "
              "(median of interleaved pairs)")


if __name__ == "__main__":
    main()
