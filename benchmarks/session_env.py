"""The GPU session's first step: what machine, drivers and libraries the numbers come from.

Every results file of the session carries this report, so a number is never separated
from the card that produced it.
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from .bench_step import hardware_info, loadavg

ROOT = Path(__file__).resolve().parents[1]


def _git_commit() -> str | None:
    # The device gets a copy of the working tree, possibly without .git: then None.
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def _nvidia_smi() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def _ram_gib() -> float | None:
    try:
        import psutil
        return round(psutil.virtual_memory().total / 2 ** 30, 1)
    except ImportError:
        return None


def _has_triton() -> bool:
    # torch.compile's CUDA backend needs it; without it the compiled variant cannot run.
    try:
        import triton  # noqa: F401
        return True
    except ImportError:
        return False


def environment(device: torch.device) -> dict:
    report = {
        "hardware": hardware_info(device),
        "device": str(device),
        "cuda_available": torch.cuda.is_available(),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "ram_gib": _ram_gib(),
        "loadavg": loadavg(),
        "git_commit": _git_commit(),
        "executable": sys.executable,
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    if device.type == "cuda":
        report["nvidia_smi"] = _nvidia_smi()
        report["bf16_supported"] = torch.cuda.is_bf16_supported()
        report["triton"] = _has_triton()
        report["gpu_count"] = torch.cuda.device_count()
    return report


def card_name(env: dict) -> str:
    """The short hardware label used in tables: the GPU's name, else the CPU's."""
    hw = env.get("hardware", {})
    if hw.get("gpu"):
        return hw["gpu"]
    return f"CPU: {hw.get('cpu', 'unknown')} ({hw.get('cores')} cores)"
