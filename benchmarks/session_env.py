"""The GPU session's first step: what machine, drivers and libraries the numbers come from.

Every results file of the session carries this report, so a number is never separated
from the card that produced it.
"""
from __future__ import annotations

import os
import platform
import signal
import subprocess
import sys
from pathlib import Path

import torch

from .bench_step import hardware_info, loadavg

__all__ = ["environment", "card_name", "child_env", "run_child", "hardware_info", "missing_packages"]

# What the package, the data conversion and the tests import beyond torch. A device image
# may lack some (monai and nibabel, on the lent machines so far): README says how to carry them.
NEEDED = ("monai", "nibabel", "h5py", "scipy", "PIL", "yaml", "tqdm", "psutil", "pytest")

ROOT = Path(__file__).resolve().parents[1]


def child_env(**extra: str) -> dict:
    """Environment for the session's subprocesses: this checkout first on the path, and
    whatever was there before kept (on a device, the folder the carried wheels went to)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_child(cmd: list[str], timeout: float, **extra_env: str) -> tuple[int | None, str]:
    """Run a step's subprocess in its own process group; (returncode or None on timeout, output).

    On timeout the whole group is killed: a bare subprocess.run would leave the child's own
    children (data_download's conversion workers, for one) running on."""
    proc = subprocess.Popen(cmd, cwd=ROOT, env=child_env(**extra_env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out or ""
    except BaseException:
        os.killpg(proc.pid, signal.SIGKILL)
        raise


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


def missing_packages() -> dict:
    """{name: why} for each needed package that does not import; {} when all do."""
    import importlib
    missing = {}
    for name in NEEDED:
        try:
            importlib.import_module(name)
        except Exception as e:  # an ImportError, or a broken install raising anything else
            missing[name] = f"{type(e).__name__}: {e}"
    return missing


def _versions() -> dict:
    from importlib import metadata
    out = {}
    for dist in ("monai", "nibabel", "numpy", "scipy", "h5py", "pillow", "triton"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


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
        "packages": _versions(),
        "missing_packages": missing_packages(),
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
