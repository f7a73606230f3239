"""Device choice, CPU threads and seeding: decided once per run, passed down explicitly."""
from __future__ import annotations

import math
import os
import random
import time
from contextlib import nullcontext

import numpy as np
import psutil
import torch

from ..config import TrainConfig
from ..dims import Dims


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"train.device={name} was asked for, but torch sees no CUDA GPU; "
                           "use train.device=cpu (or auto)")
    return dev


def _cpus() -> list[int]:
    """The CPUs this process may run on (its affinity, e.g. under taskset or a container)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _cgroup_quota() -> float | None:
    """The cores a cgroup-v2 CPU quota allows (a container started with --cpus), or None."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        return None


def available_cores() -> int:
    """The cores this process may use: its CPU affinity, capped by a container's CPU quota."""
    quota = _cgroup_quota()
    n = len(_cpus())
    return max(1, min(n, math.ceil(quota))) if quota else n


def configure_threads(n: int) -> int:
    """One intra-op thread per core: on a 2-core machine more threads only contend. (How long
    idle OpenMP threads spin is set when the package is imported: crossmatch_lite/__init__.py.)"""
    n = n if n > 0 else available_cores()
    torch.set_num_threads(n)
    return n


def _busy_cpu_seconds(cpus: list[int]) -> float:
    """CPU seconds the machine has spent busy on `cpus` since boot, all processes together
    (idle and I/O wait excluded; guest time is already inside user time)."""
    per_cpu = psutil.cpu_times(percpu=True)
    idle = ("idle", "iowait", "guest", "guest_nice")
    return sum(sum(v for k, v in per_cpu[c]._asdict().items() if k not in idle)
               for c in cpus if c < len(per_cpu))


class FreeCores:
    """Keeps torch's thread count at the cores other processes leave free (train.threads=0).

    Why: the threads of one OpenMP team wait for each other at every barrier, so a thread
    that shares its core with another busy process holds the whole team back. With one of
    two cores busy, two threads made a training step 3.3x slower than idle; one thread on
    the free core, about 1.6x (docs/speed.md, "When other processes share the cores").

    `update()` is cheap and meant to be called after every step; every `every` seconds it
    measures, over the time since the last measurement,
        others = (busy CPU seconds of this process's cores - this process's CPU seconds) / wall seconds
    and sets threads = cores - floor(others + 0.6), at least 1: a core counts as taken when
    other processes use more than 40 % of it, so a browser or an IDE leaves both threads,
    while a second training run takes one. Threads this process's own team leaves
    idle are not counted against it, so the count comes back up when the other process ends.
    """

    def __init__(self, every: float = 5.0, clock=time.monotonic, sample=None):
        self.cores = available_cores()
        cpus = _cpus()
        self.every, self.clock = every, clock
        # (machine busy CPU s, own CPU s): injectable so that tests can play a busy machine.
        self.sample = sample or (lambda: (_busy_cpu_seconds(cpus), time.process_time()))
        self.threads = configure_threads(self.cores)
        self.last = (self.clock(), *self.sample())

    def update(self) -> int:
        """Re-measure if `every` seconds have passed; return the thread count in use."""
        now = self.clock()
        if now - self.last[0] < self.every:
            return self.threads
        busy, own = self.sample()
        others = max(0.0, (busy - self.last[1]) - (own - self.last[2])) / (now - self.last[0])
        self.last = (now, busy, own)
        threads = max(1, self.cores - math.floor(others + 0.6))
        if threads != self.threads:
            self.threads = configure_threads(threads)
        return self.threads


def memory_bytes() -> int | None:
    """The machine's physical memory, where the platform says (None elsewhere)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def step_memory_bytes(cfg) -> int:
    """A lower bound of one training step's memory, over every network level (each halves
    the grid along every axis): each level's activations (convolution, BatchNorm and
    activation outputs with their gradients: about 8 float32 copies) for every image the
    step runs through (x, u_w, two strong views, the source), plus the encoder's two 3x3
    (3D: 3x3x3) convolutions per level as weights, gradients and momentum. Real use is a
    few times larger; this only catches requests that can never fit."""
    dims = Dims.of_dataset(cfg.data.name)
    pixels = dims.pixels(cfg.data.size, cfg.data.patch)
    kernel, shrink = 3 ** dims.spatial_dims, 2 ** dims.spatial_dims
    images = cfg.train.batch_size + 4 * (cfg.train.unlabeled_batch_size or cfg.train.batch_size)
    c = list(cfg.model.channels)
    activations = sum(images * ch * max(1, pixels // shrink ** level) * 4 * 8 for level, ch in enumerate(c))
    weights = sum((cin + ch) * ch * kernel for cin, ch in zip([1, *c[:-1]], c)) * 4 * 3
    return activations + weights


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# bf16 instructions of x86 CPUs: with either, oneDNN runs bf16 convolutions natively; without
# them it emulates bf16, which is slower than fp32 (docs/speed.md measures both kinds).
NATIVE_BF16_FLAGS = {"avx512_bf16": "AVX512-BF16", "amx_bf16": "AMX"}


def cpu_info() -> tuple[str, set[str]]:
    """The CPU's model name and feature flags as /proc/cpuinfo lists them; ("", set()) where
    there is no such file (macOS, Windows)."""
    try:
        lines = open("/proc/cpuinfo").read().splitlines()
    except OSError:
        return "", set()

    def first(key: str) -> str:
        return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith(key)), "")
    return first("model name"), set(first("flags").split())


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 arithmetic instructions (AVX512-BF16 or AMX)."""
    return bool(NATIVE_BF16_FLAGS.keys() & cpu_info()[1])


def bf16_conv3d_hazard(patch) -> bool:
    """Whether a VNet trained on `patch` (X, Y, Z) meets a feature map 2 voxels along X.

    There, oneDNN's bf16 Conv3d backward (torch 2.13 on CPU; measured on AVX512-BF16 without
    AMX) reads memory it never wrote into the weight gradient: two runs of the same seed
    differ after the first step, and now and then the garbage is NaN (a toy LA run diverged
    at iteration 2 or 3 in about one try of three under load). fp32, ConvTranspose3d and
    every other depth are exact. The VNet halves the patch four times, so X = 16 or 32 (toy
    LA) meets the depth 2; 48 (la_cpu), 80 or 112 (the official LA patch) do not."""
    return patch is not None and 2 in {patch[0] // 2 ** level for level in range(5)}


def precision(device: torch.device, cfg: TrainConfig, patch=None) -> tuple[bool, str]:
    """(bf16 autocast or not, the reason in words): what `train.amp` resolves to on `device`.
    auto takes bf16 on CUDA and on CPUs with native bf16, fp32 elsewhere and for a 3D
    `patch` that meets oneDNN's bf16 Conv3d fault (`bf16_conv3d_hazard`)."""
    if cfg.amp != "auto":
        return cfg.amp == "bf16", f"train.amp={cfg.amp}"
    if device.type == "cuda":
        return True, "train.amp=auto on CUDA"
    if device.type != "cpu":
        return False, f"train.amp=auto: fp32 on {device.type}"
    have = [label for flag, label in NATIVE_BF16_FLAGS.items() if flag in cpu_info()[1]]
    if not have:
        return False, "train.amp=auto: this CPU has no native bf16 (no AVX512-BF16 or AMX), so fp32"
    if bf16_conv3d_hazard(patch):
        return False, (f"train.amp=auto: fp32, as oneDNN's bf16 3D convolutions give undefined weight "
                       f"gradients on feature maps 2 voxels deep (patch {patch[0]} along X)")
    return True, f"train.amp=auto: this CPU has native bf16 ({', '.join(have)})"


def autocast_for(device: torch.device, cfg: TrainConfig, patch=None):
    """bf16 autocast where `precision` takes it (`patch`: a 3D run's patch, None in 2D)."""
    return bf16_autocast(device, precision(device, cfg, patch)[0])


def bf16_autocast(device: torch.device, bf16: bool):
    """A fresh context: bf16 autocast on `device`, or nothing."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16) if bf16 else nullcontext()


def use_channels_last(device: torch.device, cfg: TrainConfig) -> bool:
    """NHWC suits cuDNN and oneDNN convolutions alike (1.4x per CPU step at batch 4 / crop 128,
    benchmarks/); MPS gains nothing from it."""
    return cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type in ("cuda", "cpu"))
