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
# # 03 · Feature perturbations: one encoder, three decodings
#
# CrossMatch perturbs not only images but the network's *features*. The UNet is split into
# `encode` and `decode`; the encoder features of an image are decoded three ways with the
# same decoder:
# - **clean**: `decode(f)`, the teacher `p_w`;
# - **weak**: `decode(drop_features(f, 0.25))`, channel dropout (Dropout2d) on every
#   encoder level;
# - **strong**: `decode(drop_features(f, 0.75))`.
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
# encoder's own dropout off) with the BatchNorm statistics `eval.bn` names (the running
# ones by default, as the official code; `precise` recomputes them on clean images). `drop_features` is always active, as in the official code.

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
# 1. Set `iterations = 600`. Expect fewer flipped pixels at every rate: a model that has
#    learnt from the distillation terms is more robust to its own feature dropout.
# 2. Train `preset = "supervised"` (no feature perturbation in training) and compare the
#    sweep: expect more flips at 0.5-0.9 than for CrossMatch at the same iterations.
# 3. Add the rate 0.99 to `rates`. Expect the confidence to drop towards 1/4 (four
#    classes): almost no channel survives.
