"""Switches that cancel each other, said once at the start of a run.

The step drops a loss term whenever another switch removes what the term needs (e.g.
distillation with feature perturbation off has no perturbed streams to distil). That is
the right behaviour for ablations, but done silently it reads as "distillation on" in a
results table. `dropped_terms` compares what the switches ask for with the plan the step
derives from them and names every term asked for and not computed.
"""
from __future__ import annotations

from .config import Config
from .crossmatch_step import plan_from


def dropped_terms(cfg: Config) -> list[str]:
    ip, fp, dc = cfg.perturb.image, cfg.perturb.feature, cfg.distill
    plan = plan_from(cfg)
    out = []
    if ip.enabled and ip.strong_views == 0:
        out.append("image consistency L_s (perturb.image.enabled is on but perturb.image.strong_views is 0)")
    if ip.enabled and ip.cutmix and plan.n_strong == 0:
        out.append("CutMix (no strong views to paste into)")
    if dc.enabled and dc.teacher_terms and not plan.teacher_terms:
        why = "perturb.feature.enabled is off" if not fp.enabled else "no feature-perturbed stream is decoded"
        out.append(f"distillation terms a-d (distill.teacher_terms is on but {why})")
    if dc.enabled and dc.cross_terms and not plan.cross_terms:
        if not fp.enabled:
            why = "perturb.feature.enabled is off"
        elif plan.n_strong == 0:
            why = "there are no strong views"
        else:
            why = "perturb.feature.on_strong_view is off"
        out.append(f"cross distillation terms e-f (distill.cross_terms is on but {why})")
    if dc.enabled and not (dc.teacher_terms or dc.cross_terms):
        out.append("all distillation (distill.enabled is on but teacher_terms and cross_terms are off)")
    if fp.enabled and not plan.streams:
        out.append("feature perturbation (perturb.feature.enabled is on but no distillation term uses it)")
    return out


def contradiction_warning(cfg: Config) -> str | None:
    """One line for the start of a run, or None when every switch takes effect."""
    dropped = dropped_terms(cfg)
    if not dropped:
        return None
    return "warning: switches contradict each other, so these are dropped: " + "; ".join(dropped)
