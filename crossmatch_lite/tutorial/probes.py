"""Measurements on a trained model that the tutorial notebooks plot (no training here)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..features import drop_features


def dropout_disagreement(model, images: torch.Tensor, rates: Sequence[float], repeats: int = 4,
                         seed: int = 0) -> dict:
    """How often channel dropout on the encoder features flips the predicted class.

    For each rate, decodes `images` through `features.drop_features(features, rate)` `repeats`
    times and returns, per rate, the share of pixels whose argmax differs from the clean
    decoding, and the mean max-softmax confidence (both averaged over images and repeats).
    The global torch RNG is restored afterwards, so a notebook's later draws do not change."""
    gen_state = torch.get_rng_state()
    torch.manual_seed(seed)
    model.eval()
    out = {"rate": [], "flipped": [], "confidence": []}
    with torch.no_grad():
        feats = model.encode(images)
        clean = model.decode(feats).argmax(1)
        for rate in rates:
            flips, conf = [], []
            for _ in range(repeats):
                p = model.decode(drop_features(feats, rate)).softmax(1)
                flips.append((p.argmax(1) != clean).float().mean().item())
                conf.append(p.amax(1).mean().item())
            out["rate"].append(float(rate))
            out["flipped"].append(float(np.mean(flips)))
            out["confidence"].append(float(np.mean(conf)))
    torch.set_rng_state(gen_state)
    return out
