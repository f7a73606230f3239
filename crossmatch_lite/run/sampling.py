"""Endless epoch-wise sampling of training indices, with a state that resumes exactly."""
from __future__ import annotations

import numpy as np


class EpochSampler:
    """Yields batches from a fresh permutation of `indices` each epoch (drop-last)."""

    def __init__(self, indices: np.ndarray, batch: int, seed: int):
        if len(indices) == 0:
            raise ValueError("no training images to sample from: check data.labeled and the dataset")
        if batch < 1:
            raise ValueError(f"batch size must be at least 1, got {batch}")
        self.indices = np.asarray(indices, dtype=np.int64)
        self.batch = batch
        self.rng = np.random.default_rng(seed)
        self.order = np.empty(0, dtype=np.int64)
        self.pos = 0

    def next(self) -> np.ndarray:
        out = []
        need = self.batch
        while need:
            if self.pos >= len(self.order):
                self.order = self.rng.permutation(self.indices)
                self.pos = 0
            take = self.order[self.pos:self.pos + need]
            self.pos += len(take)
            need -= len(take)
            out.append(take)
        return np.concatenate(out)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state, "order": self.order.tolist(), "pos": self.pos}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
        self.order = np.asarray(state["order"], dtype=np.int64)
        self.pos = int(state["pos"])
