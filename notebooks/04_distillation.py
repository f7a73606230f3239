# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Self-distillation: who teaches whom
#
# Every unlabeled loss term of CrossMatch is a *teacher → student* pair: the teacher's
# prediction is detached, turned into a pseudo-label (argmax), and pixels where the teacher
# is less confident than `pseudo.conf_thresh` (0.95) are ignored. The diagram shows every
# pair; below we train a model briefly, look at its confidence masks at several
# thresholds, compute every term on one batch with `crossmatch_step` (the function the
# trainer calls), and compare hard labels (the official code: masked Dice on the argmax)
# with soft ones (the paper's KL at a temperature, `distill.mode=soft`).

# %% tags=["parameters"]
preset = "crossmatch"  # a preset name from configs/
iterations = 150  # training iterations of the model we look into
seed = 0
out_dir = "runs/04_distillation"  # relative paths are taken from the project root
thresholds = [0.5, 0.7, 0.9, 0.95, 0.99]  # confidence thresholds compared
temperatures = [0.5, 1.0, 2.0, 4.0]  # soft-distillation temperatures shown
n_images = 3  # unlabeled images shown

# %%
from crossmatch_lite.tutorial.notebook import setup

ctx = setup("04_distillation", preset=preset, dataset="toy_acdc", iterations=iterations, seed=seed,
            out_dir=out_dir)

# %% [markdown]
# ## The graph of loss terms

# %%
from crossmatch_lite.tutorial import figures

ctx.show(figures.draw_crossmatch_graph(eta=ctx.cfg.distill.eta), "loss_graph")

# %% [markdown]
# ## A briefly trained model and one training batch
#
# `trainer.next_batch()` is the method `Trainer.train_step` itself calls for its inputs: a
# labeled batch `x` with masks `y`, and the unlabeled views (the weak view `u_w` of an
# unlabeled batch, the strong views with CutMix boxes from a second batch `m`). So the batch
# below is built exactly as in training, drawn from the run's own samplers.

# %%
trainer, summary = ctx.train()
model = trainer.eval_model()  # best.pt with the BatchNorm statistics evaluation uses (eval.bn)
x, y, views = trainer.next_batch()
shown = views.to("cpu")  # for the pictures
print(f"{ctx.cfg.preset}: {summary['iterations']} iterations, test Dice {100 * summary['test']['dice']['mean']:.1f} % "
      f"| x {tuple(x.shape)}, u_w {tuple(views.u_w.shape)}, {len(views.strong)} strong views")

# %% [markdown]
# ## Confidence masks
#
# The teacher `p_w` on the weak view; only pixels at or above the threshold teach. A high
# threshold keeps few but reliable pixels (mostly easy background early in training).
# Pink marks the ignored pixels; the confidence panel is white where the teacher is sure.

# %%
import torch

from crossmatch_lite.crossmatch_step import Teacher

with torch.no_grad():
    teacher = Teacher(model(views.u_w))
conf, pseudo = teacher.confidence.cpu(), teacher.label.cpu()
IGNORED = len(figures.CLASS_COLORS) - 1  # drawn in pink: pixels below the threshold teach nothing
panels = []
for i in range(min(n_images, len(shown.u_w))):
    row = [(shown.u_w[i], pseudo[i], "pseudo-label p_w"), (conf[i], None, "confidence")]
    row += [(shown.u_w[i], torch.where(conf[i] >= t, pseudo[i], IGNORED),
             f"≥ {t}: {100 * (conf[i] >= t).float().mean():.0f} % kept") for t in thresholds]
    panels.append(row)
ctx.show(figures.image_grid(panels, "Pseudo-labels kept at each confidence threshold (pink: ignored pixels)",
                            ctx.data.class_names), "confidence_masks")
kept = [100 * float((conf >= t).float().mean()) for t in thresholds]
ctx.show(figures.plot_curve(thresholds, {"kept": kept}, "Share of unlabeled pixels that teach",
                            "confidence threshold", "% of pixels", {"default": ctx.cfg.pseudo.conf_thresh},
                            figsize=(5, 3.4)), "mask_ratio_vs_threshold")

# %% [markdown]
# ## Every term on this batch, hard versus soft
#
# `crossmatch_step` returns the loss and each term: `x` (supervised), `s1`, `s2` (image
# consistency), `kd_w_*` (a, b), `kd_s_*` (c, d), `kd_cross_*` (e, f) and their combination
# `kd`. The same batch and the same dropout draws under `distill.mode=hard` and `soft`;
# the model is copied so that BatchNorm statistics are not touched.

# %%
import copy

import pandas as pd
from IPython.display import display

from crossmatch_lite.crossmatch_step import crossmatch_step, plan_from

results = {}
for mode in ("hard", "soft"):
    mcfg = ctx.config(extra=[f"distill.mode={mode}"])
    student = copy.deepcopy(model).train()
    torch.manual_seed(seed)
    with torch.no_grad():
        results[mode] = crossmatch_step(student, x, y, views, plan_from(mcfg), mcfg.pseudo.conf_thresh)
terms = pd.DataFrame({m: {**r.terms, "loss": float(r.loss), "mask_ratio": r.mask_ratio} for m, r in results.items()})
display(terms.round(4))
ctx.show(figures.plot_terms({m: r.terms for m, r in results.items()},
                            title=f"Loss terms on one batch (threshold {ctx.cfg.pseudo.conf_thresh})"),
         "terms_hard_vs_soft")

# %% [markdown]
# ## Hard and soft targets for one pixel
#
# A hard target is the teacher's argmax as a one-hot vector; a soft target is the teacher's
# softmax at temperature T (higher T: flatter). The pixel shown is the unlabeled pixel whose
# teacher is closest to the threshold.

# %%
n, r_, c_ = (int(v) for v in torch.nonzero((conf - ctx.cfg.pseudo.conf_thresh).abs()
                                           == (conf - ctx.cfg.pseudo.conf_thresh).abs().min())[0])
pix = teacher.logits.float().cpu()[n, :, r_, c_]
targets = {"hard (one-hot)": torch.nn.functional.one_hot(pix.argmax(), len(pix)).float()}
targets.update({f"soft T={t:g}": (pix / t).softmax(0) for t in temperatures})
ctx.show(figures.plot_target_bars(targets, ctx.data.class_names,
                                  f"Targets for one pixel (teacher confidence {float(conf[n, r_, c_]):.3f})"),
         "hard_vs_soft_targets")

# %% [markdown]
# ## Checks: the loss is the sum the paper writes
#
# `L_kd = (1-η)·mean(a, b, c, d) + η·mean(e, f)` and
# `L = (w_x·L_x + w_s·mean(L_s1, L_s2) + w_kd·L_kd) / normalizer`, recomputed from the terms.

# %%
import numpy as np

lw, eta = ctx.cfg.loss, ctx.cfg.distill.eta
for mode, r in results.items():
    t = r.terms
    teach = [t[k] for k in ("kd_w_weak", "kd_w_strong", "kd_s_weak", "kd_s_strong") if k in t]
    cross = [t[k] for k in ("kd_cross_weak", "kd_cross_strong") if k in t]
    if teach or cross:
        kd = (1 - eta) * np.mean(teach) if teach else 0.0
        kd += eta * np.mean(cross) if cross else 0.0
        assert abs(kd - t["kd"]) < 1e-5, (mode, kd, t["kd"])
    total = (lw.supervised * t["x"] + lw.strong * t.get("s", 0.0) + lw.distill * t.get("kd", 0.0)) / lw.normalizer
    assert abs(total - float(r.loss)) < 1e-5, (mode, total, float(r.loss))
    assert all(np.isfinite(v) for v in t.values()), t
assert abs(results["hard"].terms["x"] - results["soft"].terms["x"]) < 1e-6, "the supervised term does not depend on the mode"
print("ok: loss recomposed from its terms in both modes")

# %% [markdown]
# ## Exercises
#
# 1. Add `0.8` to `thresholds` and train longer (`iterations = 600`). Expect more pixels
#    kept at every threshold: a better model is more confident.
# 2. Set `preset = "unimatch"`. Expect the `kd_s_*` and `kd_cross_*` terms to vanish from
#    the table: UniMatch has one dropout stream on the weak view only.
# 3. In the soft mode, compare `kd_*` at T=1 with `overrides` `distill.temperature=2`
#    (add it to `ctx.config(extra=[...])`). Expect the soft terms to change while `x` and
#    `s1`, `s2` stay the same.
