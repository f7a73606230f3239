"""Checkpoints that load without running code.

`torch.load(..., weights_only=True)` unpickles only tensors and plain Python values, so a
shared run folder whose `best.pt` carries a pickle payload cannot execute anything here.
Every checkpoint the package writes holds only such values (RNG states included), and
every place that reads one goes through `load_checkpoint`.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint that is missing, truncated, or holds more than tensors and plain values."""


def _unpickler_reason(e: Exception) -> str:
    """The one informative line of torch's multi-paragraph refusal, e.g. 'Unsupported global: ...'."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    found = [ln for ln in lines if ln.startswith("Unsupported")]
    return f"; {found[0]}" if found else ""


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint; train first, or pick another run folder")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain values, so it was not loaded "
            f"(loading it could run code{_unpickler_reason(e)}). Only load checkpoints written by crossmatch_lite."
        ) from None
    except (EOFError, RuntimeError, OSError, ValueError) as e:
        size = path.stat().st_size
        # torch's own text runs to several sentences; its first says what failed.
        reason = "it is empty (0 bytes)" if size == 0 else \
            f"{type(e).__name__}: {str(e).split('. ')[0].strip() or 'unreadable'}"
        raise CheckpointError(
            f"{path} is truncated or not a crossmatch_lite checkpoint ({reason}). "
            "Restore it from a copy, or move it away."
        ) from None
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path} is not a crossmatch_lite checkpoint (no 'model' entry)")
    return state
