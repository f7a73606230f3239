"""Dropout masks that one run records and another replays.

The official step and ours draw their dropout masks in different places of torch's random
stream, so they cannot be aligned by seed. While installed, a tape replaces
`torch.nn.functional.dropout`, `dropout2d` and `dropout3d` (which `nn.Dropout`,
`nn.Dropout2d`, `nn.Dropout3d` and our feature streams all call): recording, it draws each mask and keeps it; replaying, it hands
the masks back in call order and checks that each call asks for the same kind of dropout,
the same rate and the same shape as the recorded one. A step that perturbs other tensors,
in another order or at another rate fails there, and one that perturbs fewer fails at the end.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F


class TapeMismatch(AssertionError):
    pass


class DropoutTape:
    def __init__(self, records: list[dict] | None = None, seed: int = 0):
        self.recording = records is None
        self.records = [] if records is None else records
        self.pos = 0
        self.gen = torch.Generator().manual_seed(seed)

    def _apply(self, kind: str, x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
        if not training or p == 0.0:
            return x
        shape = tuple(x.shape) if kind == "dropout" else tuple(x.shape[:2]) + (1,) * (x.dim() - 2)
        if self.recording:
            keep = torch.rand(shape, generator=self.gen) >= p
            self.records.append({"kind": kind, "p": float(p), "keep": keep})
        else:
            if self.pos >= len(self.records):
                raise TapeMismatch(f"dropout call {self.pos} ({kind}, p={p}, shape {shape}): "
                                   f"the official step made only {len(self.records)} dropout calls")
            rec = self.records[self.pos]
            got = (kind, round(float(p), 6), shape)
            want = (rec["kind"], round(rec["p"], 6), tuple(rec["keep"].shape))
            if got != want:
                raise TapeMismatch(f"dropout call {self.pos}: this step asks for {got}, "
                                   f"the official step drew {want}")
            keep = rec["keep"]
        self.pos += 1
        return x * keep.to(device=x.device, dtype=x.dtype) / (1.0 - p)

    @contextmanager
    def installed(self):
        saved = F.dropout, F.dropout2d, F.dropout3d
        F.dropout = lambda input, p=0.5, training=True, inplace=False: self._apply("dropout", input, p, training)
        F.dropout2d = lambda input, p=0.5, training=True, inplace=False: self._apply("dropout2d", input, p, training)
        F.dropout3d = lambda input, p=0.5, training=True, inplace=False: self._apply("dropout3d", input, p, training)
        try:
            yield self
        finally:
            F.dropout, F.dropout2d, F.dropout3d = saved

    def assert_used_up(self) -> None:
        if self.pos != len(self.records):
            raise TapeMismatch(f"this step made {self.pos} dropout calls, the official step {len(self.records)}")


@contextmanager
def keyed_dropout():
    """Dropout whose mask depends only on the input's values, not on the call order.

    With it, a switch that skips a forward pass leaves the masks of every other pass
    unchanged, so the terms that the switch does not touch keep their exact values.
    """
    def make(kind):
        def dropout(input, p=0.5, training=True, inplace=False):
            if not training or p == 0.0:
                return input
            shape = tuple(input.shape) if kind == "dropout" else tuple(input.shape[:2]) + (1,) * (input.dim() - 2)
            key = int(abs(input.detach().double().sum().item()) * 1e6 + 1000 * p) % (2 ** 31)
            keep = torch.rand(shape, generator=torch.Generator().manual_seed(key)) >= p
            return input * keep.to(device=input.device, dtype=input.dtype) / (1.0 - p)
        return dropout

    saved = F.dropout, F.dropout2d, F.dropout3d
    F.dropout, F.dropout2d, F.dropout3d = make("dropout"), make("dropout2d"), make("dropout3d")
    try:
        yield
    finally:
        F.dropout, F.dropout2d, F.dropout3d = saved
