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
# # 03 · Feature perturbations: one encoder, three decodings
#
# **Time:** about 2-3 minutes at its defaults on a 2-core CPU (a 150-iteration run, then a
# dropout sweep; 2.3 minutes measured while other jobs shared the cores of a 2-core AMD EPYC).
# **Prerequisites:** 02 (views and the teacher).
# **You will learn:** how the UNet splits into `encode` and `decode`; what channel dropout
# does to the features and to the prediction; how the dropout rate sets how far a
# perturbed stream strays from the clean prediction; running versus recomputed BatchNorm
# statistics.
#
# CrossMatch perturbs not only images but the network's *features*. The UNet is split into
# `encode` and `decode`; the encoder features $f = \mathrm{enc}(u^w)$ (one map per level)
# are decoded three ways with the same decoder:
#
# $$p_w = \mathrm{dec}(f), \qquad p_w^{0.25} = \mathrm{dec}\big(\mathrm{drop}_{0.25}(f)\big), \qquad
#   p_w^{0.75} = \mathrm{dec}\big(\mathrm{drop}_{0.75}(f)\big),$$
#
# where $\mathrm{drop}_\rho$ is channel dropout (`Dropout2d`) on every level: each channel
# is zeroed with probability $\rho$ and the survivors are scaled by $1/(1-\rho)$, so that the
# expected value of a feature is unchanged:
#
# $$\mathrm{drop}_\rho(f)_{c} = \frac{z_c}{1-\rho}\, f_c, \qquad z_c \sim \mathrm{Bernoulli}(1-\rho).$$
#
# - **clean** $p_w$: the teacher;
# - **weak** stream $p_w^{0.25}$ and **strong** stream $p_w^{0.75}$: students (terms $a$, $b$
#   of notebook 04).
#
# Where the perturbed decodings disagree with the clean one, the distillation losses
# (notebook 04) push them back towards it. First we train a model briefly (so that its
# predictions mean something), then look at one image's three decodings, where they
# disagree, and how the dropout rate changes that.

# %% tags=["parameters"]
preset = "crossmatch"  # a preset name from configs/
iterations = 150  # training iterations of the model we look into
seed = 0
out_dir = "runs/03_feature_perturbations"  # relative paths are taken from the project root
n_images = 3  # validation slices shown
rates = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9]  # Dropout2d rates of the sweep
repeats = 4  # dropout draws per rate

# %%
from crossmatch_lite.tutorial.notebook import setup

ctx = setup("03_feature_perturbations", preset=preset, dataset="toy_acdc", iterations=iterations, seed=seed,
            out_dir=out_dir)

# %% [markdown]
# ## A briefly trained model
#
# `trainer.eval_model()` is the model as evaluation sees it: `best.pt` in eval mode (the
# encoder's own dropout off) with the BatchNorm statistics `eval.bn` names.
#
# **Running versus recomputed statistics.** In train mode each BatchNorm layer normalises
# with the mean and variance of the batch in front of it, and keeps *running* averages of
# them; in eval mode it uses those averages instead. During CrossMatch training the
# decoder's batches mix clean features with features dropped out at 25 % and 75 % (and
# scaled up by 4/3 and 4), so its running averages describe a mixture, not clean images.
# `eval.bn=running` (the default, as the official code) uses them anyway;
# `eval.bn=precise` *recomputes* them on clean training images before evaluating. Every
# run reports both (docs/method.md). `drop_features` is always active, also in eval mode,
# as in the official code.

# %%
trainer, summary = ctx.train()
model = trainer.eval_model()
print(f"{ctx.cfg.preset}: {summary['iterations']} iterations, test Dice {100 * summary['test']['dice']['mean']:.1f} %")

# %% [markdown]
# ## Clean, weak and strong decodings
#
# The last column counts, per pixel, how many of the two perturbed decodings disagree with
# the clean one (grey: one, white: both).

# %%
import numpy as np
import torch
import torch.nn.functional as F

from crossmatch_lite.tutorial import figures
from crossmatch_lite.features import drop_features

data = ctx.data
fp = ctx.cfg.perturb.feature
weak_rate, strong_rate = fp.weak_rate, fp.strong_rate if fp.strong_rate is not None else 0.75
slices = figures.pick_slices(data.val_cases, n_images)
S = ctx.cfg.data.size  # slices are resized to the training size, as evaluation does


def resized(a, mode):
    return F.interpolate(torch.as_tensor(np.asarray(a, dtype=np.float32))[None], (S, S), mode=mode)[0]


x = torch.stack([resized(data.val_cases[i].image[z], "bilinear") for i, z in slices]).to(trainer.device)
y = [resized(data.val_cases[i].label[z][None], "nearest")[0].long() for i, z in slices]
torch.manual_seed(seed)
with torch.no_grad():
    feats = model.encode(x)
    decoded = {"clean": model.decode(feats),
               f"weak (rate {weak_rate})": model.decode(drop_features(feats, weak_rate)),
               f"strong (rate {strong_rate})": model.decode(drop_features(feats, strong_rate))}
labels = {k: v.argmax(1).cpu() for k, v in decoded.items()}
disagree = sum((v != labels["clean"]).long() for k, v in labels.items() if k != "clean")
panels = []
for r in range(len(slices)):
    row = [(x[r].cpu(), y[r], "ground truth")] + [(x[r].cpu(), v[r], k) for k, v in labels.items()]
    row.append((disagree[r].float() / 2, None, f"disagree: {100 * (disagree[r] > 0).float().mean():.1f} % px"))
    panels.append(row)
ctx.show(figures.image_grid(panels, "One encoder, three decodings (last column: grey = one stream "
                            "disagrees with the clean decoding, white = both)", data.class_names),
         "three_decodings")

# %% [markdown]
# ## What the dropout does to the features
#
# Four channels of the second encoder level: clean, then the same channels under weak and
# strong Dropout2d. Whole channels vanish (and the survivors are scaled up by 1/(1-rate)).

# %%
torch.manual_seed(seed)
maps = {"clean": feats[1][0, :4], "weak": drop_features([feats[1]], weak_rate)[0][0, :4],
        "strong": drop_features([feats[1]], strong_rate)[0][0, :4]}
ctx.show(figures.feature_maps(maps, "Encoder level 2 feature maps under channel dropout"), "feature_maps")

# %% [markdown]
# ## How the rate changes the disagreement
#
# For each rate, the share of pixels whose predicted class flips relative to the clean
# decoding, and the mean confidence (max softmax), averaged over several dropout draws on
# the validation slices above. The dashed lines mark CrossMatch's weak and strong rates.

# %%
import pandas as pd
from IPython.display import display

from crossmatch_lite.tutorial.probes import dropout_disagreement

sweep = dropout_disagreement(model, x, rates, repeats=repeats, seed=seed)
display(pd.DataFrame(sweep).round(4))
marks = {"weak": weak_rate, "strong": strong_rate}
ctx.show(figures.plot_curve(sweep["rate"], {"flipped": [100 * v for v in sweep["flipped"]]},
                            "Pixels whose class flips under feature dropout", "Dropout2d rate", "% of pixels",
                            marks), "rate_sweep_flipped")
ctx.show(figures.plot_curve(sweep["rate"], {"confidence": sweep["confidence"]},
                            "Mean confidence of the prediction", "Dropout2d rate", "max softmax", marks),
         "rate_sweep_confidence")

# %% [markdown]
# ## Checks

# %%
assert sweep["rate"][0] == 0.0 and sweep["flipped"][0] == 0.0, "rate 0 must change nothing"
first = next(i for i, r in enumerate(sweep["rate"]) if r > 0)
assert sweep["flipped"][-1] >= sweep["flipped"][first] - 1e-6, sweep
print("ok: flipped pixels", [f"{100 * v:.2f}%" for v in sweep["flipped"]])

# %% [markdown]
# ## Exercises
#
# 1. Set `iterations = 600`. How do the flipped pixels change at each rate?
#
# <details><summary>Solution</summary>
#
# Expect fewer flipped pixels at the weak and strong rates (0.25, 0.75), the two the
# distillation terms train on: a model that has learnt from terms $a$-$f$ for longer is
# more robust to its own feature dropout. Rate 0 still flips nothing (the first check).
# About 4 times the training of the default, so about 4 times its time.
# </details>
#
# 2. Train `preset = "supervised"` (no feature perturbation in training) and compare the
#    sweep with CrossMatch's at the same `iterations`.
#
# <details><summary>Solution</summary>
#
# Expect more flips at the high rates (0.5-0.9) for the supervised model: it never saw a
# dropped-out feature map, so nothing taught its decoder to give the same answer without
# three quarters of its channels. Its mean confidence also drops faster with the rate.
# </details>
#
# 3. Add the rate 0.99 to `rates`. What happens to the confidence?
#
# <details><summary>Solution</summary>
#
# Almost no channel survives (1 in 100) and the survivors are scaled by 100, so the
# decoder sees a few huge features and predictions flip on many pixels: for the default
# 150-iteration model about a third of the pixels (33 % at 0.99, against 12 % at 0.75).
# But the confidence does not fall towards 1/4 (four classes, a uniform guess): it stays
# at about 0.90, as high as the clean prediction's 0.91. The huge activations make the
# decoder confidently wrong, which is why a stream's own confidence is no measure of its
# quality, and why the last check compares flips, not confidence.
# </details>

# %% [markdown]
# ## What you learned
#
# - The encoder runs once; its features are decoded clean (the teacher $p_w$) and through
#   channel dropout at 0.25 and 0.75 (the two streams).
# - The higher the dropout rate, the more pixels a stream gets wrong relative to the clean
#   decoding: that is the disagreement the distillation terms train away.
# - BatchNorm's running statistics in eval mode versus batch statistics in train mode, and
#   why `eval.bn=precise` recomputes them.
#
# **Next:** [04 · Self-distillation](04_distillation.ipynb): who teaches whom, and every
# loss term as an equation.
