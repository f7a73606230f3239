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

from ..config import flatten, load_config, to_dict
from ..models import NETWORKS, build_model


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


def load_weights(model: torch.nn.Module, weights: dict, source: str | Path, network: str) -> None:
    """Load a state dict into `model`, or say in one line why it does not fit (`network`
    describes the model in that line, e.g. "unet, 4 classes")."""
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        # torch lists every mismatch after a header line; the first one says enough.
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
        first = (lines[1:] or lines)[0][:160]
        raise CheckpointError(f"{source} does not fit this run's network ({network}): {first}") from None


def load_model(run_dir: str | Path, which: str = "best", device: str | torch.device = "cpu") -> torch.nn.Module:
    """The network of a run folder (`best.pt` or `latest.pt`), in eval mode on `device`.

    The architecture comes from the run's config.yaml; the input channels and class count
    from the shapes of the network's IO_WEIGHTS (UNet: `inc.0.weight` is [c0, in, 3, 3],
    `head.weight` [K, c0, 3, 3]), so no dataset has to be loaded to rebuild it. Note that eval mode uses BatchNorm's
    running statistics: to score or picture a model as its run's summary does, go through
    `Trainer.eval_model` (see `crossmatch_lite.predict`)."""
    if which not in ("best", "latest"):
        raise ValueError(f"which={which!r}: choose 'best' or 'latest'")
    run_dir = Path(run_dir)
    if not (run_dir / "config.yaml").is_file():
        raise CheckpointError(f"{run_dir}: no config.yaml, so not a run folder")
    path = run_dir / f"{which}.pt"
    checkpoint = load_checkpoint(path, device)
    state = checkpoint["model"]
    cfg = load_config(run_dir / "config.yaml")
    _same_run(checkpoint, cfg, path)
    first, last = NETWORKS[cfg.model.arch].IO_WEIGHTS
    if first not in state or last not in state:
        raise CheckpointError(f"{path} does not fit this run's network ({cfg.model.arch}): it has no "
                              f"{first if first not in state else last}; it belongs to another run")
    model = build_model(cfg.model, state[first].shape[1], state[last].shape[0])
    load_weights(model, state, path, cfg.model.arch)
    return model.to(device).eval()


def _same_run(checkpoint: dict, cfg, path: Path) -> None:
    """A checkpoint names the config it was trained with: one of another dataset or network
    (copied in from another run folder) would segment with the wrong classes or channels."""
    saved = checkpoint.get("config")
    if isinstance(saved, dict):
        # Keys an older checkpoint lacks are not differences; where the data lie is not either.
        theirs, ours = flatten(saved), flatten(to_dict(cfg))
        diff = [k for k in ours if k.startswith(("data.", "model.")) and k in theirs and theirs[k] != ours[k]
                and k not in ("data.root", "data.split_file", "data.cache")]
        if diff:
            raise CheckpointError(f"{path} was trained with another data or model config than "
                                  f"{path.parent / 'config.yaml'} ({', '.join(diff[:6])}); it belongs to another run")
