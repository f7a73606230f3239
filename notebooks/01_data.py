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
# # 01 · The data: patients, volumes, slices and splits
#
# **Time:** under a minute at its defaults on a 2-core CPU (no training; 27 s measured while other jobs shared the cores of a 2-core AMD EPYC).
# **Prerequisites:** 00 (what the series is for).
# **You will learn:** how a medical dataset is split by patient; what "3 labeled" means;
# labeled versus unlabeled slices; class balance; how the cardiac and skin-lesion data
# differ.
#
# **ACDC** (Bernard et al., IEEE TMI 2018) holds cine-MRI of 100 training *patients*. Each
# patient gives two *volumes* (end-diastole and end-systole), each a stack of about ten 2D
# *slices*, labelled with background, right ventricle (RV), myocardium (Myo) and left
# ventricle (LV). The network is 2D: it trains on slices resized to `data.size`, but it is
# *evaluated* per volume in 3D at native resolution. Splits are by patient, so no patient
# is in two of train / val / test. "3 labeled" means the slices of 3 training patients
# carry masks; every other training slice is *unlabeled* (its mask is never read).
#
# **ISIC 2018** holds RGB dermoscopy images with binary lesion masks; one image is one
# case, and the labeled amount is a fraction or count of training images.
#
# The built-in `toy_acdc` and `toy_isic` imitate both (no download). Set `dataset="acdc"`
# and `data_root` to a prepared ACDC folder to look at the real thing.

# %% tags=["parameters"]
dataset = "toy_acdc"  # toy_acdc | toy_isic | acdc | isic2018 | folder
data_root = ""  # real data folder ("" keeps the preset's data.root)
labeled = 3.0  # labeled patients (ACDC) or fraction / count of images (ISIC)
seed = 0
out_dir = "runs/01_data"  # relative paths are taken from the project root
compare_dataset = "toy_isic"  # a second dataset shown briefly ("" to skip)
n_show = 6  # images per gallery row

# %%
from crossmatch_lite.tutorial.notebook import setup

ctx = setup("01_data", preset="crossmatch", dataset=dataset, data_root=data_root, labeled=labeled, seed=seed,
            out_dir=out_dir)

# %% [markdown]
# ## The split
#
# `data.split` is what a run saves as `split.json`: which cases are labeled, unlabeled,
# validation and test. Training arrays hold every training slice once; the labeled and
# unlabeled index lists cut them in two.

# %%
import numpy as np
import pandas as pd
from IPython.display import display

data = ctx.data
split = data.split
counts = pd.DataFrame({
    "cases (patients / images)": [len(split[k]) for k in ("labeled", "unlabeled", "val", "test")],
    "2D slices": [len(data.labeled_idx), len(data.unlabeled_idx),
                  sum(len(c.label) for c in data.val_cases), sum(len(c.label) for c in data.test_cases)],
}, index=["labeled", "unlabeled", "val", "test"])
display(counts)
print("classes:", data.class_names, "| labeled cases:", ", ".join(split["labeled"]))
print("training array:", data.train_images.shape, data.train_images.dtype,
      "| one test case:", data.test_cases[0].image.shape, "(Z, C, H, W) at native size")

# %% [markdown]
# ## One volume, slice by slice
#
# A validation volume at native resolution with its mask: base slices show the ventricles
# large, apical slices small or empty.

# %%
from crossmatch_lite.tutorial import figures

case = data.val_cases[0]
z_all = list(range(len(case.label)))[: 2 * n_show]
panels = [[(case.image[z], case.label[z], f"slice {z}") for z in z_all[i:i + n_show]]
          for i in range(0, len(z_all), n_show)]
spacing = " x ".join(f"{v:.2f}" for v in case.spacing) + " mm (z, y, x)" if case.spacing else "unknown spacing"
ctx.show(figures.image_grid(panels, f"{data.name}: volume {case.id}, {len(case.label)} slices, {spacing}",
                            data.class_names), "volume_slices")

# %% [markdown]
# ## Labeled versus unlabeled training slices
#
# Top: labeled slices, as the network sees them (resized to `data.size`) with their masks.
# Bottom: unlabeled slices; their masks exist on disk for the toy data but training never
# reads them: that is what the pseudo-labels of CrossMatch stand in for.

# %%
rng = np.random.default_rng(seed)
lab = rng.choice(data.labeled_idx, size=min(n_show, len(data.labeled_idx)), replace=False)
unl = rng.choice(data.unlabeled_idx, size=min(n_show, len(data.unlabeled_idx)), replace=False)
panels = [[(data.train_images[i], data.train_labels[i], f"labeled #{i}") for i in lab],
          [(data.train_images[i], None, f"unlabeled #{i}") for i in unl]]
ctx.show(figures.image_grid(panels, f"{data.name}: labeled (with masks) vs unlabeled training slices",
                            data.class_names), "labeled_vs_unlabeled")

# %% [markdown]
# ## Class balance and intensities
#
# How much of each image each class covers, per part of the split, and the intensity
# distribution of the training slices.

# %%
def class_share(labels):
    counts = np.bincount(np.asarray(labels).ravel(), minlength=data.num_classes)
    return 100 * counts / counts.sum()


share = pd.DataFrame({
    "labeled": class_share(data.train_labels[data.labeled_idx]),
    "unlabeled (hidden)": class_share(data.train_labels[data.unlabeled_idx]),
    "test": class_share(np.concatenate([c.label.ravel() for c in data.test_cases])),
}, index=data.class_names)
display(share.round(2))
fig, axes = figures.new_figure(1, 2, figsize=(11, 3.6))
share.drop(index=data.class_names[0]).plot.bar(ax=axes[0][0], rot=0)
axes[0][0].set(title="Foreground class share of pixels", ylabel="% of pixels")
axes[0][0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
sample = np.asarray(data.train_images[rng.choice(len(data.train_images), min(200, len(data.train_images)),
                                                 replace=False)], dtype=np.float32)
axes[0][1].hist(sample.ravel(), bins=50, color="C0")
axes[0][1].set(title="Training intensities (all channels)", xlabel="value in [0, 1]", ylabel="pixels")
fig.suptitle(f"{data.name}: class balance and intensities")
ctx.show(fig, "class_balance")

# %% [markdown]
# ## The second dataset
#
# The same containers hold the skin-lesion data: one RGB image per case, a binary mask.

# %%
from crossmatch_lite.data import load_data

if compare_dataset:
    other_cfg = ctx.config(extra=[f"data.name={compare_dataset}",
                                  f"data.labeled={0.1 if 'isic' in compare_dataset else labeled}"])
    other = load_data(other_cfg.data, seed=seed)
    print(f"{other.name}: {len(other.labeled_idx)} labeled / {len(other.unlabeled_idx)} unlabeled training "
          f"images, {len(other.val_cases)} val, {len(other.test_cases)} test; classes {other.class_names}")
    picks = other.test_cases[:n_show]
    panels = [[(c.image[0], None, c.id) for c in picks], [(c.image[0], c.label[0], "mask") for c in picks]]
    ctx.show(figures.image_grid(panels, f"{other.name}: test images and masks", other.class_names),
             f"gallery_{other.name}")

# %% [markdown]
# ## Checks

# %%
assert not set(split["labeled"]) & set(split["unlabeled"]), "a case is both labeled and unlabeled"
assert not (set(split["labeled"]) | set(split["unlabeled"])) & (set(split["val"]) | set(split["test"]))
assert len(np.intersect1d(data.labeled_idx, data.unlabeled_idx)) == 0
assert 0.0 <= float(data.train_images[:64].min()) and float(data.train_images[:64].max()) <= 1.0
if data.name in ("toy_acdc", "acdc"):
    assert len(split["labeled"]) == int(ctx.cfg.data.labeled), split["labeled"]
print("ok")

# %% [markdown]
# ## Exercises
#
# 1. Set `seed = 1`. What changes in the split table and the list of labeled patients?
#
# <details><summary>Solution</summary>
#
# The list of labeled patients changes; the split table does not (still 3 labeled
# patients, and the same val and test patients): validation and test are a fixed draw, and
# the seed only chooses which training patients carry masks. The numbers of labeled
# *slices* can change a little, because patients have different numbers of slices.
# </details>
#
# 2. Set `labeled = 7`. What happens to the split table and to the class shares?
#
# <details><summary>Solution</summary>
#
# The labeled row grows from 3 to 7 patients and the unlabeled row shrinks by 4; val and
# test stay put. With more patients the labeled class shares move closer to the unlabeled
# ones: 3 patients are a small, noisy sample of the anatomy.
# </details>
#
# 3. Set `dataset = "toy_isic"` and `labeled = 0.05`. How do cases and slices relate now?
#
# <details><summary>Solution</summary>
#
# One case is one image: each case has one "slice", so both columns of the split table
# are equal, and 5 % of the training images are labeled (a fraction, not a count). There
# are two classes (background and lesion) and three colour channels.
# </details>

# %% [markdown]
# ## What you learned
#
# - Splits are by patient, so no patient is in two parts; "3 labeled" means all slices of
#   3 training patients carry masks, and every other training slice is unlabeled.
# - The network trains on 2D slices resized to `data.size`, but is scored per volume, in
#   3D, at native size.
# - The cardiac images are one-channel with four classes; the lesion photographs RGB with two.
#
# **Next:** [02 · Image perturbations](02_image_perturbations.ipynb): the views CrossMatch
# makes of each unlabeled image.
