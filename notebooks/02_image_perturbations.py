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
# # 02 · Image perturbations: weak view, strong views, CutMix
#
# **Time:** under a minute at its defaults on a 2-core CPU (no training; 26 s measured while other jobs shared the cores of a 2-core AMD EPYC).
# **Prerequisites:** 01 (the data and the split).
# **You will learn:** how CrossMatch makes a weak and two strong views of every unlabeled
# image, what CutMix does to an image and to its pseudo-label, and each strong ingredient
# on its own, with sliders.
#
# **Why two kinds of view.** On unlabeled images there is no mask to learn from. Instead,
# the network's prediction on a mildly changed image is taken as the target (the
# *teacher*; notebook 04 defines it exactly) for its predictions on heavily changed copies
# of the same image (the *students*). The network thus learns to give the same answer
# whatever the perturbation, and only the mild view's prediction has to be right.
#
# Every iteration, CrossMatch draws an unlabeled batch $u$ and a second unlabeled batch $m$.
# - The **weak view** $u^w$: rot90 + flip (probability 0.5), else a small rotation (±20°,
#   probability 0.25), rounded to 8 bits. Its clean prediction $p_w$ is the teacher.
# - Two **strong views** $s_1, s_2$ of $u^w$: colour jitter (p 0.8), Gaussian blur (p 0.5),
#   and each its own **CutMix box** $B_i$ (p 0.5, 2-40 % of the area): inside the box the
#   pixels come from $m$'s strong view.
# - The **pseudo-label** of $s_i$ is $p_w$'s argmax, with the box filled from $m$'s own
#   prediction $p_m$: the label moves with the pixels.
#
# With $B_i \in \{0, 1\}^{H \times W}$ (1 inside the box) and $\odot$ the pixel-wise product:
#
# $$s_i = (1 - B_i) \odot \mathrm{strong}(u^w) + B_i \odot \mathrm{strong}(m^w), \qquad
#   \tilde p_{w,i} = (1 - B_i) \odot p_w + B_i \odot p_m, \qquad \hat y_{s_i} = \arg\max_k \tilde p_{w,i}.$$
#
# **Why 8 bits.** The official code turns each unlabeled image into an 8-bit PIL image
# before its strong augmentations, so the weak view it predicts on has 256 grey levels.
# `quantize_8bit` does the same rounding, so that teacher and students see the images the
# official code sees.
#
# All of it comes from `crossmatch_lite.views`, one module per family (`geometric.py`: the
# weak view and the 8-bit rounding; `photometric.py`: the strong views; `mixing.py`: the
# boxes), and `crossmatch_lite.cutmix`. To show the box-mixed pseudo-labels without a
# trained model, the (hidden) toy masks stand in for the teacher's prediction here.

# %% tags=["parameters"]
dataset = "toy_acdc"  # toy_acdc | toy_isic | acdc | isic2018 | folder
data_root = ""  # real data folder ("" keeps the preset's data.root)
seed = 0
out_dir = "runs/02_image_perturbations"  # relative paths are taken from the project root
n_images = 4  # unlabeled images shown
sliders = True  # interactive ipywidgets sliders (they render once under papermill)

# %%
from crossmatch_lite.tutorial.notebook import setup

ctx = setup("02_image_perturbations", preset="crossmatch", dataset=dataset, data_root=data_root, seed=seed,
            out_dir=out_dir)

# %% [markdown]
# We pick unlabeled slices with visible structures (the toy masks are used only to pick
# and to illustrate) and a CutMix source batch `m`.

# %%
import copy

import numpy as np
import torch

data = ctx.data
ip = ctx.cfg.perturb.image
fg = (data.train_labels[data.unlabeled_idx] > 0).reshape(len(data.unlabeled_idx), -1).mean(1)
rich = data.unlabeled_idx[np.argsort(-fg)[: 4 * n_images]]
pick_u, pick_m = np.split(np.random.default_rng(seed).choice(rich, 2 * n_images, replace=False), 2)


def as_tensors(idx):
    return (torch.from_numpy(np.asarray(data.train_images[idx], dtype=np.float32)),
            torch.from_numpy(np.asarray(data.train_labels[idx])))


u, y_u = as_tensors(pick_u)
m, y_m = as_tensors(pick_m)
gen = torch.Generator().manual_seed(seed)
print(ip)

# %% [markdown]
# ## The weak view
#
# Geometry only: the image and its mask move together, intensities are untouched.

# %%
from crossmatch_lite.tutorial import figures
from crossmatch_lite.views import make_unlabeled_views
from crossmatch_lite.cutmix import paste
from crossmatch_lite.views.geometric import quantize_8bit, weak_view_2d
from crossmatch_lite.views.photometric import strong_view_2d

u_w, y_w = weak_view_2d(u, y_u, gen)
m_w, y_mw = weak_view_2d(m, y_m, gen)
u_w, m_w = quantize_8bit(u_w), quantize_8bit(m_w)  # as the trainer does: an 8-bit image
panels = [[(u[i], y_u[i], "original") for i in range(n_images)],
          [(u_w[i], y_w[i], "weak view u_w") for i in range(n_images)]]
ctx.show(figures.image_grid(panels, "Weak view: rot90 + flip or a small rotation", data.class_names),
         "weak_view")

# %% [markdown]
# ## Strong views and their CutMix boxes
#
# `make_unlabeled_views` is the function the trainer calls. The orange outline marks each
# view's CutMix box (absent when that view drew no box: probability 0.5).

# %%
views = make_unlabeled_views(u_w, m_w, ip, gen)
panels = []
for i in range(n_images):
    row = [(u_w[i], None, "weak u_w")]
    for k, (s, box) in enumerate(zip(views.strong, views.boxes)):
        row.append((s[i], None, f"strong s{k + 1}", box[i]))
    row.append((m_w[i], None, "CutMix source m_w"))
    panels.append(row)
ctx.show(figures.image_grid(panels, "Strong views: colour jitter, blur and a CutMix box from m"), "strong_views")

# %% [markdown]
# ## Box-mixed pseudo-labels
#
# The teacher of $s_i$ is $p_w$ outside the box and $m$'s own prediction inside it
# (`Teacher.boxed` in `crossmatch_step`, which calls `crossmatch_lite.cutmix.paste`). Here
# masks stand in for both predictions.

# %%
panels = []
for i in range(n_images):
    row = [(u_w[i], y_w[i], "label of u_w")]
    for k, (s, box) in enumerate(zip(views.strong, views.boxes)):
        mixed = paste(y_w[i:i + 1], y_mw[i:i + 1], box[i:i + 1])[0]
        row.append((s[i], mixed, f"pseudo-label of s{k + 1}", box[i]))
    panels.append(row)
ctx.show(figures.image_grid(panels, "Pseudo-labels follow the CutMix boxes", data.class_names),
         "mixed_pseudo_labels")

# %% [markdown]
# ## One ingredient at a time
#
# The same image under each strong ingredient alone (probabilities set to 1 so that each
# panel shows its effect).

# %%
def only(**changes):
    c = copy.deepcopy(ip)
    for k, v in changes.items():
        setattr(c, k, v)
    return c


img = u_w[:1]


def g():
    return torch.Generator().manual_seed(seed + 1)


jitter = strong_view_2d(img, only(blur=False, jitter_p=1.0), g())
blur = strong_view_2d(img, only(color_jitter=False, blur_p=1.0, blur_sigma=[1.5, 2.0]), g())
cut = make_unlabeled_views(img, m_w[:1], only(color_jitter=False, blur=False, cutmix_p=1.0, strong_views=1), g())
row = [(img[0], None, "weak view"), (jitter[0], None, "colour jitter"), (blur[0], None, "blur"),
       (cut.strong[0][0], None, "CutMix", cut.boxes[0][0])]
ctx.show(figures.image_grid([row], "Strong ingredients one by one"), "ingredients")

# %% [markdown]
# ## Sliders
#
# Move the sliders to see jitter strength, blur width and box size (each ingredient applied
# with probability 1, fixed random draws). Under papermill the widget renders once with its
# default values; that picture is also saved.

# %%
def explore(brightness=0.5, contrast=0.5, blur_sigma=1.0, box_area=0.2, save=False):
    c = only(jitter_p=1.0, brightness=brightness, contrast=contrast, blur_p=1.0,
             blur_sigma=[max(0.1, blur_sigma), max(0.1, blur_sigma)], cutmix_p=1.0,
             cutmix_area=[box_area, box_area], strong_views=1)
    v = make_unlabeled_views(u_w, m_w, c, torch.Generator().manual_seed(seed))
    fig = figures.image_grid([[(u_w[i], None, "weak") for i in range(n_images)],
                              [(v.strong[0][i], None, "strong", v.boxes[0][i]) for i in range(n_images)]],
                             f"brightness ±{brightness:.2f}, contrast ±{contrast:.2f}, blur σ {blur_sigma:.1f}, "
                             f"box {100 * box_area:.0f} % of the image")
    figures.display_figure(fig, (ctx.fig_dir, "sliders") if save else None)


if sliders:
    import ipywidgets as widgets
    from IPython.display import display

    display(widgets.interactive(explore, brightness=(0.0, 1.0, 0.05), contrast=(0.0, 1.0, 0.05),
                                blur_sigma=(0.1, 4.0, 0.1), box_area=(0.02, 0.6, 0.02), save=widgets.fixed(False)))
explore(save=True)

# %% [markdown]
# ## Checks

# %%
for s, box in zip(views.strong, views.boxes):
    assert s.shape == u_w.shape and float(s.min()) >= 0.0 and float(s.max()) <= 1.0
    area = box.flatten(1).mean(1)
    drawn = area[area > 0]
    assert ((drawn > ip.cutmix_area[0] * 0.8) & (drawn < ip.cutmix_area[1] * 1.05)).all(), drawn
assert len(views.strong) == ip.strong_views
print("ok: box areas", [f"{100 * float(a):.0f}%" for b in views.boxes for a in b.flatten(1).mean(1)])

# %% [markdown]
# ## Exercises
#
# 1. Move the blur slider from 0.1 to 4. At which blur do the thin structures (the
#    myocardium ring) vanish? How strong can a view get before its pseudo-label (taken
#    from the weak view) stops describing what is visible?
#
# <details><summary>Solution</summary>
#
# Expect the ring, a few pixels wide on the 64-pixel toy images, to blur first, and to be
# hard to see well before σ = 4; CrossMatch itself draws σ from 0.1 to 2 (`blur_sigma`).
# The pseudo-label still draws the ring: that is the point (the student must find it in the
# blurred image), but a view so strong that the structure is gone teaches noise. This is
# why the strong views are drawn from a bounded range.
# </details>
#
# 2. Set `seed = 3`. What changes, and how often does a strong view have no box?
#
# <details><summary>Solution</summary>
#
# Other images, rotations, jitter and boxes. Each view draws its box with probability
# `cutmix_p` = 0.5, so about half the views have none (no orange outline; the "ok" line of
# the checks prints 0 % for them), and the drawn boxes cover 2-40 % of the image.
# </details>
#
# 3. Set `dataset = "toy_isic"`. What can colour jitter do on RGB images that it cannot on
#    the one-channel cardiac images?
#
# <details><summary>Solution</summary>
#
# Change saturation and hue as well: the lesion photographs change colour, not only
# brightness and contrast. On one-channel images saturation and hue leave the image
# unchanged (as for PIL `L` images), so only brightness and contrast act.
# </details>

# %% [markdown]
# ## What you learned
#
# - The weak view is geometry only (image and mask move together); the strong views add
#   colour jitter, blur and a CutMix box from a second batch.
# - A CutMix box carries its pseudo-label with it: inside the box the teacher is the
#   source image's own prediction.
# - `make_unlabeled_views` is the one function that makes all of this, in training and here.
#
# **Next:** [03 · Feature perturbations](03_feature_perturbations.ipynb): the second kind of
# perturbation, inside the network.
