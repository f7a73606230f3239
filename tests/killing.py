"""Shared by the resume tests: a training run killed part-way, as a crash would kill it."""
from __future__ import annotations

import pytest

from crossmatch_lite.train import Trainer, train


def train_until_killed_at(cfg, out, data, monkeypatch, n: int) -> None:
    """Train until the n-th step raises KeyboardInterrupt, as a kill between checkpoints would."""
    real = Trainer.train_step
    calls = {"n": 0}

    def dying(self):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(self)

    monkeypatch.setattr(Trainer, "train_step", dying)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, out, data=data)
    monkeypatch.setattr(Trainer, "train_step", real)
