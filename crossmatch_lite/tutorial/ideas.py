"""Your own idea on top of CrossMatch, through the public API (notebook 07).

The example: *flip consistency*. The prediction on the horizontally flipped weak view,
flipped back, should agree with the teacher `p_w` on the unflipped view wherever the
teacher is confident, a transformation-equivariance term that CrossMatch does not have.
It adds one term to the loss through `Trainer.step_loss`, the method `train_step` calls for
each iteration's loss, and is switched per run by an idea spec such as
`{"name": "flip", "weight": 0.5}` (None: plain CrossMatch).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..crossmatch_step import Teacher
from ..losses import masked_dice_loss
from ..train import Trainer


@dataclass
class FlipConsistency:
    weight: float = 0.5

    def __call__(self, model, u_w: torch.Tensor, conf_thresh: float) -> torch.Tensor:
        both = model(torch.cat([u_w, u_w.flip(-1)]))  # one pass: BatchNorm sees both views together
        teacher = Teacher(both[: len(u_w)].detach())
        student = both[len(u_w):].flip(-1)
        keep = teacher.confidence >= conf_thresh
        return masked_dice_loss(student.float().softmax(dim=1), teacher.label, keep)


IDEAS = {"flip": FlipConsistency}


class IdeaTrainer(Trainer):
    """A Trainer whose loss gains the idea's term, weighted like the other unlabeled terms."""

    def __init__(self, cfg, out_dir, idea: dict | None = None, **kw):
        super().__init__(cfg, out_dir, **kw)
        spec = dict(idea or {})
        self.idea = IDEAS[spec.pop("name")](**spec) if spec else None

    def step_loss(self, x, y, views, thresh):
        out = super().step_loss(x, y, views, thresh)
        if self.idea is not None and views is not None:
            term = self.idea(self.step_model, views.u_w, thresh)
            out.loss = out.loss + self.idea.weight * term / self.cfg.loss.normalizer
            out.terms["idea"] = term.item()
        return out
