# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Self-distillation: who teaches whom
#
# **Time:** about 3 minutes at its defaults on a 2-core CPU (a 150-iteration run, then one
# batch; 2.8 minutes measured while other jobs shared the cores of a 2-core AMD EPYC).
# **Prerequisites:** 02 (weak and strong views), 03 (feature-dropout streams).
# **You will learn:** what a *teacher* and a *student* are; how a confidence threshold turns
# a prediction into a pseudo-label; the eleven loss terms of CrossMatch, as equations and
# as the names the code logs; hard (Dice on the argmax) versus soft (KL at a temperature)
# distillation.
#
# **Why the weak view teaches.** A prediction on a mildly changed image (the weak view
# $u^w$) is more often right than one on a heavily changed image (a strong view) or one made
# through heavy feature dropout. So the clean prediction on the weak view, $p_w$, is the
# **teacher**: it is detached (no gradient flows into it) and turned into a pseudo-label,
# and each harder prediction, a **student**, is trained to agree with it. The student learns
# to give the same answer under perturbation, which is what the unlabeled images teach.
#
# Every unlabeled loss term of CrossMatch is such a teacher → student pair. Pixels where the
# teacher is less confident than $\tau$ = `pseudo.conf_thresh` (0.95) are ignored. With
# $p$ a teacher's logits at one pixel $j$,
#
# $$\hat y_j = \arg\max_k p_{jk}, \qquad c_j = \max_k \operatorname{softmax}(p_j)_k, \qquad
#   m_j = \mathbb{1}[c_j \ge \tau],$$
#
# and in the official (**hard**) mode each term is a masked Dice loss between the student's
# softmax $q$ and $\hat y$, over the kept pixels $\Omega_\tau = \{j : m_j = 1\}$ of the
# batch, averaged over the $K$ classes ($\varepsilon = 10^{-4}$):
#
# $$D(q, \hat y) = \frac1K \sum_{k=1}^{K}\left(1 - \frac{2\sum_{j\in\Omega_\tau} q_{jk}[\hat y_j = k] + \varepsilon}
#   {\sum_{j\in\Omega_\tau} q_{jk}^2 + \sum_{j\in\Omega_\tau} [\hat y_j = k] + \varepsilon}\right).$$
#
# The paper writes the distillation terms with soft targets instead (`distill.mode=soft`):
# the KL divergence from the teacher's to the student's softmax at temperature $T$, over the
# kept pixels, times $T^2$ (so that the gradient's size does not depend on $T$):
#
# $$\mathrm{KL}_T(q \,\|\, p) = \frac{T^2}{|\Omega_\tau|} \sum_{j\in\Omega_\tau} \sum_k
#   \sigma(p_j/T)_k \log \frac{\sigma(p_j/T)_k}{\sigma(q_j/T)_k}, \qquad \sigma = \operatorname{softmax}.$$
#
# The terms, in the paper's letters and in the code's names (`crossmatch_step` returns them
# in `terms`; superscripts are the feature-dropout rate of a stream; a tilde marks a
# teacher whose CutMix box is filled from the source batch $m$'s prediction):
#
# | paper | code | student | teacher |
# |---|---|---|---|
# | $\mathcal L_x$ | `x` | $p_x$ (labeled batch) | the masks: $(\mathrm{CE} + D)/2$ |
# | $\mathcal L_{s_1}, \mathcal L_{s_2}$ | `s1`, `s2` | $p_{s_1}, p_{s_2}$ | $\tilde p_w$ |
# | $a, b$ | `kd_w_weak`, `kd_w_strong` | $p_w^{0.25}, p_w^{0.75}$ | $p_w$ |
# | $c, d$ | `kd_s_weak`, `kd_s_strong` | $p_{s_2}^{0.25}, p_{s_2}^{0.75}$ | $\tilde p_w$ |
# | $e, f$ | `kd_cross_weak`, `kd_cross_strong` | $p_{s_2}^{0.25}, p_{s_2}^{0.75}$ | $\tilde p_w^{0.25}, \tilde p_w^{0.75}$ |
#
# $$\mathcal L_{kd} = (1-\eta)\,\tfrac14(a+b+c+d) + \eta\,\tfrac12(e+f), \qquad
#   \mathcal L = \big(\mathcal L_x + 0.25\,\mathcal L_{s_1} + 0.25\,\mathcal L_{s_2} + 0.5\,\mathcal L_{kd}\big)/2,
#   \qquad \eta = 0.3.$$
#
# Below we train a model briefly, look at its confidence masks at several thresholds next
# to the true masks, compute every term on one batch with `crossmatch_step` (the function
# the trainer calls), and compare hard with soft targets. Notebook 04b then rebuilds the
# same step by hand.

# %% tags=["parameters"]
preset = "crossmatch"  # a preset name from configs/
iterations = 150  # training iterations of the model we look into
seed = 0
out_dir = "runs/04_distillation"  # relative paths are taken from the project root
thresholds = [0.5, 0.7, 0.9, 0.95, 0.99]  # confidence thresholds compared
temperatures = [0.5, 1.0, 2.0, 4.0]  # soft-distillation temperatures shown
temperature = 1.0  # the soft mode's temperature T (distill.temperature)
n_images = 3  # unlabeled images shown

# %%
from crossmatch_lite.tutorial.notebook import setup

ctx = setup("04_distillation", preset=preset, dataset="toy_acdc", iterations=iterations, seed=seed,
            out_dir=out_dir)

# %% [markdown]
# ## The graph of loss terms
#
# The same symbols as the table above: each arrow runs from a teacher to its student.

# %%
from crossmatch_lite.tutorial import figures

ctx.show(figures.draw_crossmatch_graph(eta=ctx.cfg.distill.eta), "loss_graph")

# %% [markdown]
# ## A briefly trained model and one training batch
#
# The batch is made as `Trainer.next_batch` makes it (the weak view of a labeled batch $x$
# with masks $y$; the weak view $u^w$ of an unlabeled batch; strong views with CutMix boxes
# from a second batch $m$, through `make_unlabeled_views`, the function `next_batch` calls),
# but from images we pick, so that the hidden true masks of the unlabeled images can be
# drawn beside their pseudo-labels. Training never reads those masks. Notebook 04b checks
# this construction against the trainer's step by step.

# %%
import numpy as np
import torch

from crossmatch_lite.views import make_unlabeled_views
from crossmatch_lite.views.geometric import quantize_8bit, weak_view_2d

trainer, summary = ctx.train()
model = trainer.model.cpu().float()  # best.pt, the best-on-validation weights
data, B = ctx.data, ctx.cfg.train.batch_size
rng, gen = np.random.default_rng(seed), torch.Generator().manual_seed(seed)


def batch_of(idx):
    return (torch.from_numpy(np.asarray(data.train_images[idx], dtype=np.float32)),
            torch.from_numpy(np.asarray(data.train_labels[idx])).long())


x, y = weak_view_2d(*batch_of(rng.choice(data.labeled_idx, B, replace=False)), gen)
u_w, y_u = weak_view_2d(*batch_of(rng.choice(data.unlabeled_idx, B, replace=False)), gen)  # y_u: hidden
m_w = weak_view_2d(batch_of(rng.choice(data.unlabeled_idx, B, replace=False))[0], None, gen)[0]
views = make_unlabeled_views(quantize_8bit(u_w), quantize_8bit(m_w), ctx.cfg.perturb.image, gen)
print(f"{ctx.cfg.preset}: {summary['iterations']} iterations, test Dice {100 * summary['test']['dice']['mean']:.1f} % "
      f"| x {tuple(x.shape)}, u_w {tuple(views.u_w.shape)}, {len(views.strong)} strong views")

# %% [markdown]
# ## Confidence masks
#
# The teacher $p_w$ exactly as the step computes it: a copy of the model in train mode, the
# CutMix source pass first, then $[x, u^w]$ through one encoder pass
# (`crossmatch_lite.crossmatch_step.source_teachers` and `predictions`, seeded as the step
# below). A high threshold keeps few pixels, but the kept ones agree with the true mask
# (first column); the pixels a low threshold adds are where the pseudo-label is wrong.

# %%
import copy

from crossmatch_lite.crossmatch_step import Teacher, crossmatch_step, plan_from, predictions, source_teachers

plan = plan_from(ctx.cfg)
student = copy.deepcopy(model).train()
torch.manual_seed(seed)
with torch.no_grad():
    if plan.second_batch_source:
        source_teachers(student, views.m_w, x, plan)  # draws the same dropout masks as the step does first
    teacher = Teacher(predictions(student, x, views, plan)[1])
conf, pseudo = teacher.confidence, teacher.label
k = min(n_images, len(u_w))
ctx.show(figures.teacher_panels(views.u_w[:k], y_u[:k], pseudo[:k], conf[:k], thresholds, data.class_names,
                                "Pseudo-labels kept at each confidence threshold, beside the hidden true mask"),
         "confidence_masks")
right = {t: 100 * float((pseudo == y_u)[conf >= t].float().mean()) for t in thresholds}
print("pseudo-labels that match the hidden mask, among the kept pixels:",
      ", ".join(f"c ≥ {t:g}: {v:.1f} %" for t, v in right.items()),
      f"| all pixels: {100 * float((pseudo == y_u).float().mean()):.1f} %")

# %% [markdown]
# **Train mode or eval mode?** In train mode (what the step sees) BatchNorm normalises with
# the statistics of the batch itself and the encoder's own dropout is on; in eval mode (what
# validation and test see) it uses the *running* statistics accumulated during training and
# dropout is off. The same weights are then more or less confident, so the share of kept
# pixels differs between the two; the star is the `mask_ratio` the step reports below for
# this batch, which the train-mode curve meets at $\tau$.

# %%
with torch.no_grad():
    conf_eval = Teacher(trainer.eval_model().cpu()(views.u_w)).confidence
kept = {"train mode (the step's teacher)": [100 * float((conf >= t).float().mean()) for t in thresholds],
        "eval mode (running statistics)": [100 * float((conf_eval >= t).float().mean()) for t in thresholds]}
torch.manual_seed(seed)
with torch.no_grad():
    step_out = crossmatch_step(copy.deepcopy(model).train(), x, y, views, plan, ctx.cfg.pseudo.conf_thresh)
fig = figures.plot_curve(thresholds, kept, "Share of unlabeled pixels that teach", "confidence threshold τ",
                         "% of pixels", {"default τ": ctx.cfg.pseudo.conf_thresh}, figsize=(6, 3.6))
fig.axes[0].plot([ctx.cfg.pseudo.conf_thresh], [100 * step_out.mask_ratio], "*", ms=14, color="k",
                 label=f"crossmatch_step: mask_ratio {step_out.mask_ratio:.3f}")
fig.axes[0].legend(fontsize=8)
ctx.show(fig, "mask_ratio_vs_threshold")
tau = ctx.cfg.pseudo.conf_thresh
print(f"kept at τ = {tau}: train mode {100 * float((conf >= tau).float().mean()):.1f} %, "
      f"eval mode {100 * float((conf_eval >= tau).float().mean()):.1f} %, "
      f"crossmatch_step's mask_ratio {100 * step_out.mask_ratio:.1f} %")

# %% [markdown]
# ## Every term on this batch, hard versus soft
#
# `crossmatch_step` returns the loss and each term of the table above, and their
# combinations `s` $= \tfrac12(\mathcal L_{s_1} + \mathcal L_{s_2})$ and `kd`
# $= \mathcal L_{kd}$. The same batch and the same dropout draws under `distill.mode=hard`
# and `soft` (at `temperature`); the model is copied so that BatchNorm statistics are not
# touched. Only $a$-$f$ change with the mode ($\mathcal L_x$ and $\mathcal L_{s_i}$ are
# Dice losses in both), and a KL is on another scale than a Dice loss: each mode gets its
# own axis.

# %%
import pandas as pd
from IPython.display import display

results = {}
for mode in ("hard", "soft"):
    mcfg = ctx.config(extra=[f"distill.mode={mode}", f"distill.temperature={temperature}"])
    torch.manual_seed(seed)
    with torch.no_grad():
        results[mode] = crossmatch_step(copy.deepcopy(model).train(), x, y, views, plan_from(mcfg),
                                        mcfg.pseudo.conf_thresh)
terms = pd.DataFrame({m: {**r.terms, "loss": float(r.loss), "mask_ratio": r.mask_ratio} for m, r in results.items()})
display(terms.round(4))
ctx.show(figures.plot_terms({m: r.terms for m, r in results.items()},
                            title=f"Loss terms on one batch (threshold {ctx.cfg.pseudo.conf_thresh})",
                            xlabels={"hard": "masked Dice loss", "soft": f"a-f: masked KL × T² (T = {temperature:g})"}),
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
# 1. Add `0.8` to `thresholds` and train longer (`iterations = 600`). What happens to the
#    share of kept pixels, and to how many of the kept ones are right?
#
# <details><summary>Solution</summary>
#
# `thresholds = [0.5, 0.7, 0.8, 0.9, 0.95, 0.99]`, `iterations = 600` (about 5 minutes on
# a loaded 2-core CPU). A better model is more confident: the curve moves up at every
# threshold, the kept share at 0.95 rises well above that of the 150-iteration model, and
# the printed share of kept pixels that match the hidden mask tells whether the extra
# pixels are right. Compare the two printed lines of both runs.
# </details>
#
# 2. Set `preset = "unimatch"`. Which terms are left? (UniMatch, Yang et al., CVPR 2023, is
#    the method CrossMatch builds on: the same two strong views with CutMix, plus *one*
#    feature-dropout stream, at rate 0.5, on the weak view only. FixMatch, Sohn et al.,
#    NeurIPS 2020, is the older idea underneath both: one strong view taught by the weak
#    view, no feature dropout; `preset = "fixmatch"`.)
#
# <details><summary>Solution</summary>
#
# The table keeps `x`, `s1`, `s2`, `s` and one distillation term, `kd_w_weak` (UniMatch's
# $\mathcal L_{fp}$: $p_w^{0.5}$ taught by $p_w$); `kd_w_strong`, `kd_s_*` and `kd_cross_*`
# vanish, because `configs/unimatch.yaml` sets no strong stream (`strong_rate: null`), no
# stream on the strong view and no cross terms. With $\eta = 0$,
# $\mathcal L_{kd} = a$ and `kd` equals `kd_w_weak`; the check cell still recomposes the loss.
# With `preset = "fixmatch"` only `x`, `s1` and `s` are left (one strong view, weight 1).
# </details>
#
# 3. Set `temperature = 2.0`. Which terms change in the soft column, and which stay?
#
# <details><summary>Solution</summary>
#
# In the soft column the six KL terms $a$-$f$ and so `kd` and `loss` change; `x`, `s1`, `s2`
# and the whole hard column stay exactly the same (the temperature only enters the KL).
# At a higher $T$ the targets are flatter (the bar plot of one pixel), so teacher and
# student differ less per pixel, but the $T^2$ factor scales the KL back up: the soft
# terms do not simply shrink by 4.
# </details>

# %% [markdown]
# ## What you learned
#
# - A **teacher** is a detached prediction on an easier input; its argmax is a pseudo-label,
#   kept only where its confidence reaches $\tau$. A **student** is a prediction on a harder
#   input that learns to agree with it.
# - CrossMatch has six distillation terms $a$-$f$ besides $\mathcal L_x$ and
#   $\mathcal L_{s_1}, \mathcal L_{s_2}$, and $\mathcal L$ is their weighted sum; the check cell
#   recomposes it from the logged terms.
# - The share of kept pixels depends on the BatchNorm mode: the step's teacher is in train
#   mode, evaluation's in eval mode.
# - Hard distillation is a masked Dice on the argmax (the official code); soft is a masked
#   KL at temperature $T$ (the paper).
#
# **Next:** [04b · One iteration by hand](04b_one_iteration_by_hand.ipynb) builds this step
# from its pieces and checks it against `crossmatch_step`.
