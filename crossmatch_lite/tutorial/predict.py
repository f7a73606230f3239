"""Predictions of a finished run, through the same evaluation path as its scores.

A run's summary scores `best.pt` through `Trainer.evaluate`, with the BatchNorm statistics
that `eval.bn` names (`Trainer.eval_model`: running, or recomputed). A picture of that model must use the same
path, or it shows a different model from the numbers beside it; notebooks and the
ablation report both come here (with `Trainer.from_run` to reload a run).
"""
from __future__ import annotations


import numpy as np

from .tables import case_dice


def predict_cases(trainer, cases) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    """(case id -> (Z, H, W) prediction at native size, case id -> mean foreground Dice) of
    the trainer's current weights, evaluated as the run's summary evaluates them."""
    result = trainer.evaluate(list(cases), keep_predictions=True)
    return result["_predictions"], case_dice(result)
