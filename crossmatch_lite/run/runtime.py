"""Device choice, CPU threads and seeding: decided once per run, passed down explicitly."""
from __future__ import annotations

import math
import os
import random
from contextlib import nullcontext

import numpy as np
import torch

from ..config import TrainConfig


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


def available_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. under taskset or a container)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def configure_threads(n: int) -> int:
    """One intra-op thread per core: on a 2-core machine more threads only contend."""
    n = n if n > 0 else available_cores()
    torch.set_num_threads(n)
    return n


def memory_bytes() -> int | None:
    """The machine's physical memory, where the platform says (None elsewhere)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def step_memory_bytes(cfg) -> int:
    """A lower bound of one training step's memory: the first network level's activations
    (convolution, BatchNorm and activation outputs with their gradients: about 8 float32
    copies) for every image the step runs through (x, u_w, two strong views, the source).
    Real use is a few times larger; this only catches requests that can never fit."""
    three_d = cfg.model.arch == "vnet"
    pixels = math.prod(cfg.data.patch) if three_d else cfg.data.size ** 2
    images = cfg.train.batch_size + 4 * (cfg.train.unlabeled_batch_size or cfg.train.batch_size)
    return images * cfg.model.channels[0] * pixels * 4 * 8


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 arithmetic instructions (AVX512-BF16 or AMX); elsewhere bf16
    is emulated and slower than fp32."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return False
    return any(flag in flags.split() for flag in ("avx512_bf16", "amx_bf16"))


def uses_bf16(device: torch.device, cfg: TrainConfig) -> bool:
    if cfg.amp != "auto":
        return cfg.amp == "bf16"
    return device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())


def autocast_for(device: torch.device, cfg: TrainConfig):
    use = uses_bf16(device, cfg)
    if not use:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def use_channels_last(device: torch.device, cfg: TrainConfig) -> bool:
    """NHWC suits cuDNN and oneDNN convolutions alike (1.4x per CPU step at batch 4 / crop 128,
    benchmarks/); MPS gains nothing from it."""
    return cfg.channels_last == "on" or (cfg.channels_last == "auto" and device.type in ("cuda", "cpu"))
