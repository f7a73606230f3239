"""Predictions of a finished run, through the same evaluation path as its scores.

A run's summary scores `best.pt` through `Trainer.evaluate`, with the BatchNorm statistics
that `eval.bn` names (`Trainer.eval_model`: running, or recomputed). A picture of that model must use the same
path, or it shows a different model from the numbers beside it; notebooks and the
ablation report both come here.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..run.checkpoints import load_model
from ..config import load_config
from .tables import case_dice


def trainer_for(run_dir: str | Path, which: str = "best", data=None, overrides=()):
    """A Trainer for an existing run folder with its `which` checkpoint loaded (no training)."""
    from ..train import Trainer

    cfg = load_config(Path(run_dir) / "config.yaml", [*overrides, "train.progress=false"])
    trainer = Trainer(cfg, run_dir, data=data)
    trainer.model.load_state_dict(load_model(run_dir, which, trainer.device).state_dict())
    return trainer


def predict_cases(trainer, cases) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(case id -> (Z, H, W) prediction at native size, case id -> mean foreground Dice) of
    the trainer's current weights, evaluated as the run's summary evaluates them."""
    result = trainer.evaluate(list(cases), keep_predictions=True)
    return result["_predictions"], case_dice(result)
