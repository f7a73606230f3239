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
# # 04b · One CrossMatch iteration, built by hand
#
# **Time:** about 3 minutes at its defaults on a 2-core CPU (3.0 minutes measured while other jobs shared the cores of a 2-core AMD EPYC; most of it
# the 150-iteration model it looks into; a second run reuses that model and takes about a minute).
# **Prerequisites:** 02 (views), 03 (encode, decode, feature dropout), 04 (teachers,
# confidence masks, the terms a-f).
# **You will learn:** every tensor of one training iteration in the order the trainer
# makes it (views, the three encoder passes, the four dropout streams, the decodes, the
# confidence masks, the eleven loss terms and their sum), and that this sum *is* what
# `crossmatch_step` returns: the last cell asserts that both agree to float precision on
# the same batch and the same random draws, loss, terms and gradients.
#
# Notebook 04 called `crossmatch_step` whole; 05 calls the trainer whole. Here nothing is
# hidden: each cell below is a few lines of the package's own pieces
# (`crossmatch_lite.views.geometric`, `.photometric` and `.mixing`,
# `crossmatch_lite.cutmix.paste`, `model.encode` and `model.decode`,
# `crossmatch_lite.features.drop_features`, `crossmatch_lite.losses`).

# %% tags=["parameters"]
iterations = 150  # training iterations of the model we look into (0: an untrained network)
seed = 0  # chooses the batch, the views and the dropout draws
batch = 4  # images per batch (labeled x, unlabeled u, CutMix source m)
conf_thresh = 0.95  # the confidence threshold tau of the pseudo-labels
out_dir = "runs/04b_one_iteration_by_hand"  # relative paths are taken from the project root

# %%
from crossmatch_lite.tutorial.notebook import setup

ctx = setup("04b_one_iteration_by_hand", preset="crossmatch", dataset="toy_acdc", iterations=iterations or None,
            seed=seed, out_dir=out_dir)

# %% [markdown]
# ## A briefly trained model
#
# A model that has trained a little makes confident predictions somewhere, so the
# confidence masks below keep pixels and the terms have something to say. `trainer.model`
# holds the best-on-validation weights; we copy it before each use, because a training
# step in train mode updates the BatchNorm running statistics.

# %%
import copy

import torch

if iterations:
    trainer, summary = ctx.train()
    model = trainer.model
    print(f"{summary['iterations']} iterations, test Dice {100 * summary['test']['dice']['mean']:.1f} %")
else:
    from crossmatch_lite.models import build_model

    torch.manual_seed(seed)
    model = build_model(ctx.cfg.model, ctx.data.in_channels, ctx.data.num_classes)
    print("an untrained network: expect no confident pixel at tau = 0.95")
model = model.cpu().float()
cfg, data = ctx.cfg, ctx.data
ip, fp, dc, lw = cfg.perturb.image, cfg.perturb.feature, cfg.distill, cfg.loss

# %% [markdown]
# ## Step 0: the three batches and their views
#
# One iteration draws a labeled batch $x$ with masks $y$, an unlabeled batch $u$ and a
# second unlabeled batch $m$, the CutMix source. From them:
#
# $$u^w = q\big(\mathrm{weak}(u)\big), \qquad m^w = q\big(\mathrm{weak}(m)\big), \qquad
#   s_i = \mathrm{paste}\big(\mathrm{strong}(u^w),\ \mathrm{strong}(m^w),\ B_i\big), \quad i = 1, 2,$$
#
# where $\mathrm{weak}$ is a rotation/flip, $q$ rounds to 8 bits (the official code's
# unlabeled images pass through an 8-bit PIL image), $\mathrm{strong}$ is colour jitter
# and blur, and $B_i$ is the $\{0, 1\}$ CutMix box of view $i$: inside it, $s_i$ shows $m$.
# Every random number comes from one generator `gen`, in this order.

# %%
import numpy as np

from crossmatch_lite.cutmix import paste
from crossmatch_lite.views import make_unlabeled_views
from crossmatch_lite.views.geometric import quantize_8bit, weak_view_2d
from crossmatch_lite.views.mixing import cutmix_boxes_2d
from crossmatch_lite.views.photometric import strong_view_2d

rng = np.random.default_rng(seed)
pick = {"x": rng.choice(data.labeled_idx, batch, replace=False),
        "u": rng.choice(data.unlabeled_idx, batch, replace=False),
        "m": rng.choice(data.unlabeled_idx, batch, replace=False)}
images = {k: torch.from_numpy(np.asarray(data.train_images[v], dtype=np.float32)) for k, v in pick.items()}
masks = {k: torch.from_numpy(np.asarray(data.train_labels[v])).long() for k, v in pick.items()}

gen = torch.Generator().manual_seed(seed)
x, y = weak_view_2d(images["x"], masks["x"], gen)  # labeled: image and mask move together
u_w, y_u = weak_view_2d(images["u"], masks["u"], gen)  # y_u: hidden from training, drawn in a figure only
u_w = quantize_8bit(u_w)
m_w = quantize_8bit(weak_view_2d(images["m"], None, gen)[0])
state = gen.get_state()  # the strong views start here: make_unlabeled_views is checked from this state
strong, boxes = [], []
for i in range(ip.strong_views):
    s = strong_view_2d(u_w, ip, gen)
    box = cutmix_boxes_2d(batch, u_w.shape[-1], ip, gen, u_w.device)  # (B, H, W), 1 inside the box
    s = paste(s, strong_view_2d(m_w, ip, gen), box)
    strong.append(s)
    boxes.append(box)
gen.set_state(state)
views = make_unlabeled_views(u_w, m_w, ip, gen)  # the function the trainer calls
assert all(torch.equal(a, b) for a, b in zip(strong + boxes, views.strong + views.boxes))
print(f"x {tuple(x.shape)}, u_w {tuple(u_w.shape)}, m_w {tuple(m_w.shape)}, "
      f"{len(strong)} strong views; box shares {[round(float(b.mean()), 3) for b in boxes]}")
print("ok: the views built by hand equal make_unlabeled_views on the same generator state")

# %% [markdown]
# ## Step 1: the teachers of the CutMix source (no gradient)
#
# The pixels inside $B_i$ come from $m$, so their pseudo-labels must too. The official code
# predicts $m$ first, in train mode, without gradient: the clean prediction
# $p_m = f(m^w)$, and, for the cross terms, $m$'s features decoded through the two
# dropout streams, from one encoder pass over $[x, m^w]$ (so BatchNorm normalises $x$ and
# $m$ together, exactly as the official step; the outputs for $x$ are thrown away):
#
# $$p_m = \mathrm{dec}(\mathrm{enc}(m^w)), \qquad
#   p_m^{\rho} = \mathrm{dec}\big(\mathrm{drop}_{\rho}(\mathrm{enc}(m^w))\big),\quad \rho \in \{0.25, 0.75\}.$$
#
# $\mathrm{drop}_\rho$ is channel dropout (`Dropout2d`) at rate $\rho$ on every encoder
# level. The dropout masks are random: we seed torch's global generator once, and every
# draw below happens in the same order as inside `crossmatch_step`.

# %%
from crossmatch_lite.features import decode_groups, drop_features

rates = {"weak": fp.weak_rate, "strong": fp.strong_rate}
hand = copy.deepcopy(model).train()
torch.manual_seed(seed)
with torch.no_grad():
    p_m = hand(m_w)  # forward = decode(encode(.)), clean
    f = hand.encode(torch.cat([x, m_w]))
    f_x, f_m = [level[:batch] for level in f], [level[batch:] for level in f]
    _, _, p_m_weak, p_m_strong = decode_groups(hand, [f_x, f_m, drop_features(f_m, rates["weak"]),
                                                      drop_features(f_m, rates["strong"])])
print("source teachers:", tuple(p_m.shape), "logits each (B, K, H, W)")

# %% [markdown]
# ## Steps 2 and 3: the student passes
#
# $x$ and $u^w$ share one encoder pass; the features of $u^w$ are decoded clean, which gives
# the teacher $p_w$, and through both dropout streams. The strong views share a second
# encoder pass; the last one, $s_2$, is decoded through both streams too:
#
# $$p_x,\ p_w = \mathrm{dec}(\mathrm{enc}([x, u^w])), \qquad
#   p_w^{\rho} = \mathrm{dec}\big(\mathrm{drop}_\rho(\mathrm{enc}(u^w))\big), \qquad
#   p_{s_i} = \mathrm{dec}(\mathrm{enc}(s_i)), \qquad
#   p_{s_2}^{\rho} = \mathrm{dec}\big(\mathrm{drop}_\rho(\mathrm{enc}(s_2))\big).$$
#
# Each `decode_groups` call decodes its groups as one batch, as the official code does,
# so BatchNorm sees the same batches.

# %%
f_xu = hand.encode(torch.cat([x, u_w]))
f_x, f_u = [level[:batch] for level in f_xu], [level[batch:] for level in f_xu]
p_x, p_w, p_w_weak, p_w_strong = decode_groups(hand, [f_x, f_u, drop_features(f_u, rates["weak"]),
                                                      drop_features(f_u, rates["strong"])])
f_s = hand.encode(torch.cat(strong))
f_s1, f_s2 = [level[:batch] for level in f_s], [level[batch:] for level in f_s]
p_s1, p_s2, p_s2_weak, p_s2_strong = decode_groups(hand, [f_s1, f_s2, drop_features(f_s2, rates["weak"]),
                                                          drop_features(f_s2, rates["strong"])])
print("student predictions:", ", ".join(f"{n} {tuple(t.shape)}" for n, t in
                                        [("p_x", p_x), ("p_w", p_w), ("p_s1", p_s1), ("p_s2^strong", p_s2_strong)]))

# %% [markdown]
# ## Step 4: pseudo-labels and confidence masks
#
# A teacher is detached (no gradient flows into it). Its pseudo-label is the argmax, its
# confidence the largest softmax probability, and only pixels at or above $\tau$ teach:
#
# $$\hat y = \arg\max_k p_k, \qquad c = \max_k \operatorname{softmax}(p)_k, \qquad
#   \mathbb{1}[c \ge \tau], \quad \tau = 0.95.$$
#
# The teacher of a CutMixed view is $p_w$ outside its box and $m$'s prediction inside:
# $\tilde p_{w,i} = \mathrm{paste}(p_w, p_m, B_i)$ (the label moves with the pixels). For
# the cross terms the same holds for the streams: $\tilde p_{w}^{\rho} =
# \mathrm{paste}(p_w^\rho, p_m^\rho, B_2)$.

# %%
def teacher(logits):
    """(pseudo-label (B, H, W), confidence (B, H, W)) of detached logits (B, K, H, W)."""
    logits = logits.detach()
    return logits.argmax(1), logits.float().softmax(1).amax(1)


t_w = teacher(p_w)
t_s = [teacher(paste(p_w.detach(), p_m, box)) for box in boxes]  # teachers of s1, s2
t_cross = {"weak": teacher(paste(p_w_weak.detach(), p_m_weak, boxes[-1])),
           "strong": teacher(paste(p_w_strong.detach(), p_m_strong, boxes[-1]))}
mask_ratio = float((t_w[1] >= conf_thresh).float().mean())
print(f"confident pixels of p_w: {100 * mask_ratio:.1f} % at tau = {conf_thresh}")

# %% [markdown]
# What the teacher says and where it is sure, for every image of $u$: the hidden true mask
# (training never reads it; it is drawn only to show how right the kept pixels are), the
# pseudo-label $\hat y_w$, the confidence $c$, and what is kept at $\tau$ (pink: ignored).
# Below: what each student is taught, the strong views with their boxes (orange) and
# box-mixed kept pseudo-labels, and the two dropout streams' own predictions on $u^w$.

# %%
from crossmatch_lite.tutorial import figures

ctx.show(figures.teacher_panels(u_w, y_u, t_w[0], t_w[1], [conf_thresh], data.class_names,
                                f"The teacher p_w on u_w and its confidence mask (tau = {conf_thresh})"),
         "teacher")


def kept(tchr, i):
    return torch.where(tchr[1][i] >= conf_thresh, tchr[0][i], figures.IGNORED)


panels = [[(s[i], kept(t, i), f"s{k + 1}: box-mixed teacher", b[i]) for k, (s, t, b) in
           enumerate(zip(strong, t_s, boxes))]
          + [(u_w[i], p_w_weak[i].argmax(0), "p_w^0.25 (student)"), (u_w[i], p_w_strong[i].argmax(0),
                                                                    "p_w^0.75 (student)")]
          for i in range(min(2, batch))]
ctx.show(figures.image_grid(panels, "What the students see: strong views with their kept pseudo-labels, "
                            "and the dropout streams' predictions", data.class_names, ignored=True), "students")

# %% [markdown]
# ## Step 5: the terms and their sum
#
# Every unlabeled term is a **masked Dice loss** between a student's softmax $q$ and a
# teacher's pseudo-label $\hat y$, summed over the kept pixels $\Omega_\tau = \{j : c_j \ge \tau\}$
# of the whole batch and averaged over the $K$ classes (smoothing $\varepsilon = 10^{-4}$):
#
# $$D(q, \hat y) = \frac{1}{K}\sum_{k=1}^{K}\left(1 - \frac{2\sum_{j\in\Omega_\tau} q_{jk}\,[\hat y_j = k] + \varepsilon}
#   {\sum_{j\in\Omega_\tau} q_{jk}^2 + \sum_{j\in\Omega_\tau} [\hat y_j = k] + \varepsilon}\right).$$
#
# | paper | code (`terms`) | student | teacher |
# |---|---|---|---|
# | $\mathcal L_x$ | `x` | $p_x$ | the masks $y$: $(\mathrm{CE} + D)/2$, every pixel |
# | $\mathcal L_{s_1}, \mathcal L_{s_2}$ | `s1`, `s2` | $p_{s_1}, p_{s_2}$ | $\tilde p_{w,1}, \tilde p_{w,2}$ |
# | $a, b$ | `kd_w_weak`, `kd_w_strong` | $p_w^{0.25}, p_w^{0.75}$ | $p_w$ |
# | $c, d$ | `kd_s_weak`, `kd_s_strong` | $p_{s_2}^{0.25}, p_{s_2}^{0.75}$ | $\tilde p_{w,2}$ |
# | $e, f$ | `kd_cross_weak`, `kd_cross_strong` | $p_{s_2}^{0.25}, p_{s_2}^{0.75}$ | $\tilde p_w^{0.25}, \tilde p_w^{0.75}$ |
#
# $$\mathcal L_{kd} = (1-\eta)\,\tfrac14(a+b+c+d) + \eta\,\tfrac12(e+f), \quad \eta = 0.3, \qquad
#   \mathcal L = \frac{w_x \mathcal L_x + w_s \tfrac12(\mathcal L_{s_1} + \mathcal L_{s_2}) + w_{kd}\mathcal L_{kd}}{Z}$$
#
# with the official ACDC weights $w_x = 1$, $w_s = 0.5$, $w_{kd} = 0.5$, $Z = 2$:
# $\mathcal L = (\mathcal L_x + 0.25\,\mathcal L_{s_1} + 0.25\,\mathcal L_{s_2} + 0.5\,\mathcal L_{kd})/2$.

# %%
from crossmatch_lite.crossmatch_step import plan_from
from crossmatch_lite.losses import masked_dice_loss, supervised_loss

spec = plan_from(cfg).dice  # which classes Dice averages over, and its smoothing


def dice_term(student_logits, tchr):
    label, confidence = tchr
    return masked_dice_loss(student_logits.float().softmax(1), label, confidence >= conf_thresh, spec)


by_hand = {"x": supervised_loss(p_x, y, spec),
           "s1": dice_term(p_s1, t_s[0]), "s2": dice_term(p_s2, t_s[1]),
           "kd_w_weak": dice_term(p_w_weak, t_w), "kd_w_strong": dice_term(p_w_strong, t_w),  # a, b
           "kd_s_weak": dice_term(p_s2_weak, t_s[1]), "kd_s_strong": dice_term(p_s2_strong, t_s[1]),  # c, d
           "kd_cross_weak": dice_term(p_s2_weak, t_cross["weak"]),  # e
           "kd_cross_strong": dice_term(p_s2_strong, t_cross["strong"])}  # f
eta = dc.eta
by_hand["s"] = (by_hand["s1"] + by_hand["s2"]) / 2
by_hand["kd"] = ((1 - eta) * (by_hand["kd_w_weak"] + by_hand["kd_w_strong"] + by_hand["kd_s_weak"]
                              + by_hand["kd_s_strong"]) / 4
                 + eta * (by_hand["kd_cross_weak"] + by_hand["kd_cross_strong"]) / 2)
loss_by_hand = (lw.supervised * by_hand["x"] + lw.strong * by_hand["s"] + lw.distill * by_hand["kd"]) / lw.normalizer
print(f"L = ({lw.supervised:g} * {by_hand['x'].item():.4f} + {lw.strong:g} * {by_hand['s'].item():.4f} + "
      f"{lw.distill:g} * {by_hand['kd'].item():.4f}) / {lw.normalizer:g} = {loss_by_hand.item():.5f}")

# %% [markdown]
# ## The check: the same iteration through `crossmatch_step`
#
# A fresh copy of the same weights, the same views, the same seed for the dropout draws:
# `crossmatch_step` must give the same loss, the same eleven terms, the same mask ratio, and
# after `backward()` the same gradient on every parameter.

# %%
import pandas as pd
from IPython.display import display

from crossmatch_lite.crossmatch_step import crossmatch_step

step_model = copy.deepcopy(model).train()
torch.manual_seed(seed)
out = crossmatch_step(step_model, x, y, views, plan_from(cfg), conf_thresh)
loss_by_hand.backward()
out.loss.backward()
table = pd.DataFrame({"by hand": {k: v.item() for k, v in by_hand.items()} | {"loss": loss_by_hand.item()},
                      "crossmatch_step": {**out.terms, "loss": out.loss.item()}})
table["difference"] = table["by hand"] - table["crossmatch_step"]
display(table)
ctx.show(figures.plot_terms({"by hand": table["by hand"].to_dict(), "crossmatch_step": table["crossmatch_step"].to_dict()},
                            title="One iteration: every term by hand and from crossmatch_step"), "by_hand_vs_step")

# %% [markdown]
# ## Checks

# %%
assert set(out.terms) == set(by_hand), (sorted(out.terms), sorted(by_hand))
for k, v in by_hand.items():
    assert abs(v.item() - out.terms[k]) < 1e-5, (k, v.item(), out.terms[k])
assert torch.allclose(loss_by_hand, out.loss, atol=1e-6), (loss_by_hand.item(), out.loss.item())
assert abs(mask_ratio - out.mask_ratio) < 1e-6, (mask_ratio, out.mask_ratio)
worst = max(float((a.grad - b.grad).abs().max()) for a, b in zip(hand.parameters(), step_model.parameters()))
assert worst < 1e-5, f"gradients differ by up to {worst}"
print(f"ok: loss {out.loss.item():.5f}, {len(by_hand)} terms and the gradients (largest difference "
      f"{worst:.1e}) agree with crossmatch_step")

# %% [markdown]
# ## Exercises
#
# 1. Set `iterations = 0` (an untrained network). What happens to the confident pixels and
#    to the unlabeled terms?
#
# <details><summary>Solution</summary>
#
# An untrained network is never 95 % sure of its clean prediction: the mask ratio prints
# 0.0 %, and every term taught by $p_w$ (`s1`, `s2`, $a$-$d$) is exactly 0, because the
# masked Dice of an empty mask is $1 - \varepsilon/\varepsilon = 0$. One term is not: $f$
# (`kd_cross_strong`, about 0.80 at `seed = 0`). Its teacher $p_w^{0.75}$ keeps a quarter
# of the channels and scales them by 4, which sharpens the logits until some pixels pass
# 0.95, right or wrong. So at the start $\mathcal L_x$ and one cross term train; that is
# one reason CrossMatch starts slower than the supervised baseline (notebook 00). The
# check still passes: the step computes the same numbers.
# </details>
#
# 2. Set `conf_thresh = 0.5`. Which terms change, and which do not?
#
# <details><summary>Solution</summary>
#
# `x` does not change (0.1384 at the defaults: it uses the true masks on every pixel);
# every unlabeled term changes, because far more pixels are kept: the mask ratio rises
# from 73.6 % to 97.7 % for the 150-iteration model at `seed = 0`, and the loss moves from
# 0.2033 to 0.2013. The check still passes: the threshold is an argument of
# `crossmatch_step`, given to both.
# </details>
#
# 3. Break the by-hand iteration on purpose: in the cell of steps 2 and 3, draw the strong
#    dropout of $u^w$ before the weak one, keeping everything else:
#    `d_s = drop_features(f_u, rates["strong"])`, then `d_w = drop_features(f_u, rates["weak"])`,
#    and decode `[f_x, f_u, d_w, d_s]`. Which assertion fails, and why?
#
# <details><summary>Solution</summary>
#
# The first one to fail is on `x` (0.1398 by hand against 0.1384 at the defaults), not on
# a stream term. The dropout masks come from one random stream, so drawing them in another
# order gives each stream other channels, and $a$-$f$ change (`kd_cross_strong` 0.413
# against 0.313). But $p_x$ changes too, although no dropout touches it: $x$, $u^w$ and both
# streams are decoded in one batch, and in train mode BatchNorm normalises with that
# batch's statistics. Same equations, other random numbers, a different loss (0.2145
# against 0.2033): a by-hand check has to reproduce the order of the draws and the
# batching, not only the formulas.
# </details>

# %% [markdown]
# ## What you learned
#
# - One iteration makes three encoder passes without gradient on $m$ and two with gradient
#   ($[x, u^w]$ and $[s_1, s_2]$), and decodes them as eight predictions: $p_x$, $p_w$,
#   $p_w^{0.25}$, $p_w^{0.75}$, $p_{s_1}$, $p_{s_2}$, $p_{s_2}^{0.25}$, $p_{s_2}^{0.75}$.
# - Each unlabeled term is a masked Dice between a student and a detached,
#   confidence-masked, box-mixed teacher; $\mathcal L$ is their weighted sum.
# - `crossmatch_step` computes exactly this: loss, terms and gradients agree.
#
# **Next:** [05 · One full training run](05_train.ipynb) repeats this step a few hundred
# times, with the poly learning-rate schedule, validation and checkpoints around it.
