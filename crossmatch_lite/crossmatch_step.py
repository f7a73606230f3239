"""One CrossMatch training step, read top to bottom like the paper.

    1. Teachers on the CutMix source batch m (no gradient): its clean prediction fills
       the CutMix boxes of the pseudo-labels; its weak/strong feature-perturbed
       predictions fill the boxes of the cross-term teachers.
    2. Labeled batch x and weak view u_w share one encoder pass; the features of u_w are
       decoded clean (p_w, the teacher), and through weak and strong channel dropout
       (p_w^weak, p_w^strong).
    3. The strong views s1, s2 share one encoder pass; the last one is also decoded
       through the weak and strong streams (p_s2^weak, p_s2^strong).
    4. Pseudo-labels: argmax of the detached teachers, pixels below the confidence
       threshold ignored, box pixels taken from the source's teachers.
    5. Loss:
         L_x   = (CE + Dice) / 2 on the labeled batch
         L_s_i = Dice(p_s_i, p_w)                    image-level consistency
         a, b  = Dice(p_w^weak, p_w), Dice(p_w^strong, p_w)
         c, d  = Dice(p_s2^weak, p_w), Dice(p_s2^strong, p_w)
         e, f  = Dice(p_s2^weak, p_w^weak), Dice(p_s2^strong, p_w^strong)
         L_kd  = (1 - eta) * mean(a, b, c, d) + eta * mean(e, f)
         L     = (L_x + 0.25 L_s1 + 0.25 L_s2 + 0.5 L_kd) / 2       (official ACDC weights;
                                                                 LA: L_kd weighs 1)

The same function serves 2D images (UNet) and 3D volumes (VNet): nothing below depends
on the number of spatial axes. Dice runs over all classes (ACDC) or the foreground only
(LA), as loss.dice_background says.

Every switch of the config removes exactly its own terms, and a forward pass runs only
when some term uses its output. The decoder calls group the same images as the
official code (x with u_w, s1 with s2) so BatchNorm sees the same batches.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import torch
from torch import nn

from .batchnorm import source_pass_other_modes
from .config import Config
from .cutmix import paste
from .features import decode_groups, drop_features
from .losses import DiceSpec, masked_dice_loss, masked_kl_loss, supervised_loss
from .views import UnlabeledViews


@dataclass(eq=False)
class Teacher:
    """Detached logits of a teaching prediction; its pseudo-label is their argmax."""
    logits: torch.Tensor

    @cached_property
    def label(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)

    @cached_property
    def confidence(self) -> torch.Tensor:
        return self.logits.float().softmax(dim=1).amax(dim=1)

    def boxed(self, source: "Teacher | None", box: torch.Tensor | None) -> "Teacher":
        """The teacher of a CutMixed view: inside the box, the source image's prediction."""
        if source is None or box is None:
            return self
        return Teacher(paste(self.logits, source.logits, box))

    def rolled(self) -> "Teacher":
        return Teacher(self.logits.roll(1, dims=0))


@dataclass
class StepOutput:
    loss: torch.Tensor
    terms: dict[str, float] = field(default_factory=dict)
    mask_ratio: float = float("nan")


@dataclass(frozen=True)
class LossWeights:
    """L = (supervised L_x + strong mean(L_s_i) + distill L_kd) / normalizer, and
    L_kd = (1 - eta) mean(a, b, c, d) + eta mean(e, f)."""
    supervised: float = 1.0
    strong: float = 0.5
    distill: float = 0.5
    normalizer: float = 2.0
    eta: float = 0.3


@dataclass(frozen=True)
class Plan:
    """Everything the step reads, derived once from the config (`plan_from`): which
    predictions to make, which terms to score, and how to weigh them."""
    n_strong: int
    cutmix: bool
    second_batch_source: bool
    streams: tuple[tuple[str, float], ...]  # feature-perturbation streams decoded: (name, dropout rate)
    teacher_terms: bool
    cross_terms: bool
    streams_on_strong: bool
    mode: str  # distillation: hard (Dice on argmax labels) | soft (KL)
    temperature: float
    dice: DiceSpec = DiceSpec()
    weights: LossWeights = LossWeights()
    source_pass_mode: str = "official"

    @property
    def unlabeled(self) -> bool:
        return self.n_strong > 0 or bool(self.streams)


def plan_from(cfg: Config) -> Plan:
    ip, fp, dc, lw = cfg.perturb.image, cfg.perturb.feature, cfg.distill, cfg.loss
    n_strong = ip.strong_views if ip.enabled else 0
    teacher = dc.enabled and dc.teacher_terms
    cross = dc.enabled and dc.cross_terms and n_strong > 0 and fp.on_strong_view
    streams: tuple = ()
    if fp.enabled and (teacher or cross):
        streams = (("weak", fp.weak_rate),)
        if fp.strong_rate is not None:
            streams += (("strong", fp.strong_rate),)
    cutmix = n_strong > 0 and ip.cutmix
    return Plan(
        n_strong=n_strong,
        cutmix=cutmix,
        second_batch_source=cutmix and ip.cutmix_source == "second_batch",
        streams=streams,
        teacher_terms=teacher and bool(streams),
        cross_terms=cross and bool(streams),
        streams_on_strong=bool(streams) and n_strong > 0 and fp.on_strong_view,
        mode=dc.mode,
        temperature=dc.temperature,
        dice=DiceSpec(background=lw.dice_background, smooth=lw.dice_smooth),
        weights=LossWeights(lw.supervised, lw.strong, lw.distill, lw.normalizer, dc.eta),
        source_pass_mode=cfg.pseudo.source_pass_mode,
    )


@torch.no_grad()
def source_teachers(model: nn.Module, m_w: torch.Tensor, x: torch.Tensor, plan: Plan) -> dict[str, Teacher]:
    """Step 1: the CutMix source's clean (and, for the cross terms, perturbed) predictions.

    The official pass (commit cd1e25c, 2025-12-10): train mode (batch statistics, encoder
    dropout on, running statistics updated); the clean teacher from m alone; the stream
    teachers from one feature-perturbed call on [x, m], so the encoder's BatchNorm
    normalises x and m together and the decoder's normalises [x, m, m-weak, m-strong]
    together. The x outputs are discarded, but they are paid for: without them the batch
    statistics, and so the teachers, would differ. `plan.source_pass_mode` may name one
    of the non-official passes instead (batchnorm.py).
    """
    stream_names = [name for name, _ in plan.streams] if plan.cross_terms else []
    rates = [rate for _, rate in plan.streams] if plan.cross_terms else []
    if plan.source_pass_mode != "official":
        outs = source_pass_other_modes(model, m_w, rates, plan.source_pass_mode)
        return {n: Teacher(o.detach()) for n, o in zip(["clean"] + stream_names, outs)}
    was_training = model.training
    model.train()
    outs = [model(m_w)]
    if stream_names:
        b = x.shape[0]
        f = model.encode(torch.cat([x, m_w]))
        f_x, f_m = [level[:b] for level in f], [level[b:] for level in f]
        outs += decode_groups(model, [f_x, f_m] + [drop_features(f_m, rate) for rate in rates])[2:]
    model.train(was_training)
    return {n: Teacher(o.detach()) for n, o in zip(["clean"] + stream_names, outs)}


def predictions(model: nn.Module, x: torch.Tensor, views: UnlabeledViews, plan: Plan):
    """Steps 2 and 3: (p_x, p_w, p_w streams, p_s of each strong view, p_s streams).

    x and u_w share one encoder pass, u_w decoded clean and through each stream; the
    strong views share one encoder pass, the last one also decoded through each stream."""
    b_x = x.shape[0]
    f_xu = model.encode(torch.cat([x, views.u_w]))
    f_x, f_u = [f[:b_x] for f in f_xu], [f[b_x:] for f in f_xu]
    p_x, p_w, *p_w_streams = decode_groups(model, [f_x, f_u] + [drop_features(f_u, r) for _, r in plan.streams])
    p_s, p_s_streams = [], []
    if plan.n_strong:
        f_s = model.encode(torch.cat(views.strong))
        b_u = views.u_w.shape[0]
        per_view = [[f[i * b_u:(i + 1) * b_u] for f in f_s] for i in range(plan.n_strong)]
        groups = list(per_view)
        if plan.streams_on_strong:
            groups += [drop_features(per_view[-1], rate) for _, rate in plan.streams]
        outs = decode_groups(model, groups)
        p_s, p_s_streams = outs[:plan.n_strong], outs[plan.n_strong:]
    return p_x, p_w, p_w_streams, p_s, p_s_streams


def total_loss(terms: dict[str, torch.Tensor], n_strong: int, teacher_terms: list, cross_terms: list,
               w: LossWeights) -> torch.Tensor:
    """Step 5's sums: L = (w_x L_x + w_s mean_i L_s_i + w_kd L_kd) / normalizer, with
    L_kd = (1 - eta) mean(a, b, c, d) + eta mean(e, f); adds "s" and "kd" to `terms`."""
    loss = w.supervised * terms["x"]
    if n_strong:
        terms["s"] = torch.stack([terms[f"s{i + 1}"] for i in range(n_strong)]).mean()
        loss = loss + w.strong * terms["s"]
    if teacher_terms or cross_terms:
        kd = 0.0
        if teacher_terms:
            kd = kd + (1 - w.eta) * torch.stack(teacher_terms).mean()
        if cross_terms:
            kd = kd + w.eta * torch.stack(cross_terms).mean()
        terms["kd"] = kd
        loss = loss + w.distill * kd
    return loss / w.normalizer


def crossmatch_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, views: UnlabeledViews | None,
                    plan: Plan, conf_thresh: float) -> StepOutput:
    """The loss of one iteration. x: (B, C, *spatial) labeled images, y: (B, *spatial)
    class ids; views: the unlabeled batch's views (None: supervised only)."""
    if not plan.unlabeled or views is None:
        loss_x = supervised_loss(model(x), y, plan.dice)
        return StepOutput(loss=plan.weights.supervised * loss_x / plan.weights.normalizer,
                          terms={"x": loss_x.detach().item()})

    # 1. Teachers on the CutMix source batch.
    src = source_teachers(model, views.m_w, x, plan) if plan.second_batch_source else {}
    # 2, 3. Predictions.
    p_x, p_w, p_w_streams, p_s, p_s_streams = predictions(model, x, views, plan)

    # 4. Pseudo-labels from detached teachers; CutMix boxes filled from the source.
    t_w = Teacher(p_w.detach())
    t_w_streams = [Teacher(p.detach()) for p in p_w_streams]
    if plan.cutmix and not plan.second_batch_source:  # in-batch source: the batch rolled by one
        src = {"clean": t_w.rolled(), **{name: t.rolled() for (name, _), t in zip(plan.streams, t_w_streams)}}
    boxes = views.boxes if plan.cutmix else [None] * plan.n_strong
    last_box = boxes[-1] if boxes else None
    t_views = [t_w.boxed(src.get("clean"), box) for box in boxes]  # pseudo-label of each strong view

    def unsup(student: torch.Tensor, teacher: Teacher, distill: bool = False) -> torch.Tensor:
        keep = teacher.confidence >= conf_thresh
        if distill and plan.mode == "soft":
            return masked_kl_loss(student, teacher.logits, keep, plan.temperature)
        return masked_dice_loss(student.float().softmax(dim=1), teacher.label, keep, plan.dice)

    # 5. Loss terms.
    terms: dict[str, torch.Tensor] = {"x": supervised_loss(p_x, y, plan.dice)}
    for i, p in enumerate(p_s):
        terms[f"s{i + 1}"] = unsup(p, t_views[i])
    teacher_terms, cross_terms = [], []
    if plan.teacher_terms:
        for (name, _), p in zip(plan.streams, p_w_streams):  # a, b
            terms[f"kd_w_{name}"] = unsup(p, t_w, distill=True)
            teacher_terms.append(terms[f"kd_w_{name}"])
        for (name, _), p in zip(plan.streams, p_s_streams):  # c, d
            terms[f"kd_s_{name}"] = unsup(p, t_views[-1], distill=True)
            teacher_terms.append(terms[f"kd_s_{name}"])
    if plan.cross_terms:
        for (name, _), p, t in zip(plan.streams, p_s_streams, t_w_streams):  # e, f
            terms[f"kd_cross_{name}"] = unsup(p, t.boxed(src.get(name), last_box), distill=True)
            cross_terms.append(terms[f"kd_cross_{name}"])
    loss = total_loss(terms, len(p_s), teacher_terms, cross_terms, plan.weights)

    mask_ratio = (t_w.confidence >= conf_thresh).float().mean()
    # One device-to-host copy for all logged numbers instead of one per term.
    values = torch.stack([v.detach().float() for v in terms.values()] + [mask_ratio]).tolist()
    return StepOutput(loss=loss, terms=dict(zip(terms, values[:-1])), mask_ratio=values[-1])
