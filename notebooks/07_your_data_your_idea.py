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
# # 07 · Your data, your idea
#
# **Time:** about 4-5 minutes at its defaults on a 2-core CPU (two 300-iteration runs on a
# 20-case folder; 4.4 minutes measured while other jobs shared the cores of a 2-core AMD EPYC).
# **Prerequisites:** 05 (a run), 04b (what the step computes, which a new term joins).
# **You will learn:** how to train on your own images and masks (the `folder` dataset); how
# to add a loss term through the public API and compare it with plain CrossMatch; how to
# segment new images with a finished run.
#
# The two questions users of the official code ask most (LiheYoung/UniMatch #72, HiLab-git/SSL4MIS #26):
#
# 1. **How do I train on my own data?** Put images and masks in a folder and set
#    `data.name=folder`, `data.root=<the folder>`.
# 2. **How do I try my own idea?** Add one loss term (or change a teacher) by subclassing
#    `Trainer` through its public methods, switch it on per run, and compare it with plain
#    CrossMatch in a two-variant grid.
#
# By default this notebook writes a tiny example folder (mid-ventricle slices of the
# synthetic hearts, as PNG pairs) and uses it; point `data_root` at your own folder instead.

# %% tags=["parameters"]
data_root = ""  # your folder (images/, masks/, optional classes.txt); "" writes an example folder
example_format = "png"  # format of the example folder: png | nifti
labeled = 4.0  # labeled training cases (a count, or a fraction < 1)
iterations = 300  # training iterations of each variant
seed = 0
out_dir = "runs/07_your_data_your_idea"  # relative paths are taken from the project root
idea_weight = 0.5  # weight of the new term
unseen = ""  # a folder (or glob) of new images to segment; "" takes images no run has seen

# %% [markdown]
# ## 1. Your data: the `folder` dataset
#
# The layout (`crossmatch_lite/data/folder.py`):
#
# ```
# ROOT/images/<id>.png|.jpg|.jpeg|.nii|.nii.gz    one case per file
# ROOT/masks/<id>.png|.nii|.nii.gz                 same <id>; pixel value = class id (0 = background)
# ROOT/classes.txt                                 optional: class names, background first
# ```
#
# A PNG/JPEG pair is one 2D case; a NIfTI pair is one volume, trained slice by slice and
# scored in 3D with the spacing from its header. 10 % of the cases go to validation and
# 20 % to test (a fixed draw, the same for every run); `labeled` of the remaining training
# cases, chosen with the run's seed, keep their masks, the rest are unlabeled.

# %%
from crossmatch_lite.data.folder import write_example_folder
from crossmatch_lite.tutorial.notebook import resolve_out_dir, setup

root = data_root or str(write_example_folder(resolve_out_dir(out_dir) / f"example_{example_format}",
                                             n_cases=20, fmt=example_format))
ctx = setup("07_your_data_your_idea", preset="crossmatch", dataset="folder", data_root=root, labeled=labeled,
            iterations=iterations, seed=seed, out_dir=out_dir)

# %% [markdown]
# The same checks as the built-in datasets run while loading: a missing folder, an image
# without a mask, a mask of another size than its image, non-integer class ids or mixed
# grey and colour images each stop with a message that names the file and the fix.

# %%
from crossmatch_lite.tutorial import figures

data = ctx.data
print(f"{len(data.split['labeled'])} labeled / {len(data.split['unlabeled'])} unlabeled training cases, "
      f"{len(data.val_cases)} val, {len(data.test_cases)} test; classes {data.class_names}; "
      f"{data.in_channels} channel(s)")
slices = figures.pick_slices(data.test_cases, 4)
panels = [[(data.test_cases[i].image[z], data.test_cases[i].label[z], data.test_cases[i].id) for i, z in slices]]
ctx.show(figures.image_grid(panels, f"Your folder: test cases with their masks ({root})", data.class_names),
         "folder_cases")

# %%
import tempfile
from pathlib import Path

from crossmatch_lite.config import load_config
from crossmatch_lite.data import load_data

with tempfile.TemporaryDirectory() as broken:  # what a mistake looks like
    write_example_folder(broken, n_cases=5)
    (Path(broken) / "masks" / "case001.png").unlink()
    try:
        load_data(load_config(None, ["data.name=folder", f"data.root={broken}"]).data, seed=0)
    except ValueError as e:
        print("ValueError:", e)

# %% [markdown]
# ## 2. Your idea: one new consistency term
#
# `crossmatch_lite/tutorial/ideas.py` adds *flip consistency*: the prediction on the horizontally
# flipped weak view, flipped back, must agree with the teacher `p_w` wherever the teacher is
# confident. It uses only public pieces: `Trainer.step_loss` (the method `train_step` calls
# for each iteration's loss), `Teacher` and `masked_dice_loss`. The whole idea:

# %%
import inspect

from crossmatch_lite.tutorial import ideas

source = inspect.getsource(ideas)
print(source[source.index("@dataclass"):])
print(f"({len(source[source.index('@dataclass'):].splitlines())} lines)")

# %% [markdown]
# ## A two-variant grid: CrossMatch against CrossMatch + your idea
#
# Each variant is a preset plus an idea spec (`None`: plain CrossMatch); both train on the
# same folder, split, seed and iterations, each in its own run folder (so a finished variant
# is reused, and the two can never mix).

# %%
from functools import partial

variants = {"crossmatch": None, "crossmatch + flip": {"name": "flip", "weight": idea_weight}}
runs, summaries = {}, {}
for name, idea in variants.items():
    runs[name], summaries[name] = ctx.train(tag=name.replace(" + ", "_"),
                                            trainer_cls=partial(ideas.IdeaTrainer, idea=idea))
    print(f"{name:>18}: test Dice {100 * summaries[name]['test']['dice']['mean']:.1f} %")

# %%
from IPython.display import display

from crossmatch_lite.predict import predict_cases
from crossmatch_lite.tutorial.tables import dice_frame, read_metrics

dice = dice_frame(summaries)
display(dice.round(1))
ctx.show(figures.plot_dice_comparison(dice, title=f"Your folder, {ctx.cfg.data.labeled:g} labeled: test Dice"),
         "idea_dice")
ctx.show(figures.plot_val_comparison({n: read_metrics(r.out)[1] for n, r in runs.items()}), "idea_val_curves")
chosen = [data.test_cases[i] for i, _ in slices]
preds, scores = zip(*(predict_cases(r, chosen) for r in runs.values()))
ctx.show(figures.plot_predictions(data.test_cases, dict(zip(runs, preds)), slices, data.class_names,
                                  title="CrossMatch vs CrossMatch + flip consistency",
                                  dice=dict(zip(runs, scores))), "idea_predictions")

# %% [markdown]
# The new term is logged like every other term (`idea` in `metrics.jsonl`). One seed at
# this budget says little: the difference between the variants is within what another seed
# changes; run more seeds before believing either ordering.
#
# **The hook this uses.** `Trainer.step_loss` can add terms computed from the inputs, but
# not reuse the step's own predictions (the idea above pays an extra forward pass). A hook
# inside `crossmatch_step` that hands registered extra terms the step's teachers and
# predictions, switched by a config key, would make such ideas free and selectable from a
# grid file.

# %% [markdown]
# ## 3. Segment images the run never saw
#
# A trained run segments new files with the same code that scored it:
#
#     crossmatch-lite predict --run RUN --input FOLDER --out MASKS [--overlay]
#
# writes one mask per image at the image's own size (PNG class ids, or NIfTI with the
# volume's affine, so it opens aligned in 3D Slicer). The same from Python, on images of
# your own (`unseen`) or, by default, synthetic hearts that are in none of the splits:

# %%
import shutil

import matplotlib.pyplot as plt

from crossmatch_lite.predict import Predictor, input_files, predict_files, read_input

if unseen:
    files = input_files(unseen)
else:  # cases 20-23 of the generator: the example folder above holds 0-19
    extra = write_example_folder(ctx.out / "unseen_source", n_cases=24, fmt=example_format)
    (ctx.out / "unseen").mkdir(exist_ok=True)
    for f in sorted((extra / "images").iterdir())[20:]:
        shutil.copy(f, ctx.out / "unseen" / f.name)
    files = input_files(ctx.out / "unseen")
predictor = Predictor.from_run(runs["crossmatch"].out)
failed = predict_files(predictor, files, ctx.out / "unseen_masks", overlay=True, progress=False)
fig, axes = plt.subplots(2, len(files[:4]), figsize=(3 * len(files[:4]), 6), squeeze=False)
for j, f in enumerate(files[:4]):
    image, _ = read_input(f, predictor.dims)
    mask = predictor(image)
    z = len(mask) // 2
    axes[0, j].imshow(image[z].transpose(1, 2, 0).squeeze(), cmap="gray")
    axes[1, j].imshow(mask[z], cmap="viridis", vmin=0, vmax=max(3, int(mask.max())), interpolation="nearest")
    axes[0, j].set_title(f.name, fontsize=8)
    for ax in axes[:, j]:
        ax.axis("off")
fig.suptitle("Images the run never saw (top) and its predictions (bottom)")
ctx.show(fig, "unseen_predictions")

# %% [markdown]
# ## Checks

# %%
import math

assert failed == 0 and len(list((ctx.out / "unseen_masks").glob("*"))) >= len(files)
train_rows, _ = read_metrics(runs["crossmatch + flip"].out)
assert any("idea" in r for r in train_rows), "the idea's term was not logged"
assert not any("idea" in r for r in read_metrics(runs["crossmatch"].out)[0]), "the plain run used the idea"
assert all(math.isfinite(r["idea"]) for r in train_rows if "idea" in r)
assert all(0.0 <= s["test"]["dice"]["mean"] <= 1.0 for s in summaries.values())
print("ok")

# %% [markdown]
# ## Exercises
#
# 1. Set `example_format = "nifti"`. What changes?
#
# <details><summary>Solution</summary>
#
# The example folder holds NIfTI volumes instead of PNG slices: each case is a stack of
# slices, so there are more training slices for the same 20 cases, and the scores are
# computed in 3D with the spacing from the NIfTI headers (the distance columns in mm). The
# predictions of the unseen images are written as NIfTI with each volume's affine.
# </details>
#
# 2. Set `idea_weight = 2.0`. What happens to the `idea` term and to the test Dice?
#
# <details><summary>Solution</summary>
#
# The `idea` term weighs four times as much in the loss, so early in training it pulls the
# network mostly towards agreeing with its flipped self. Flip consistency asks only for
# equivariance; it cannot teach a class the labels do not. With one seed at this budget,
# any change of the test Dice is within what another seed changes: run at least three
# seeds of both variants before reading it.
# </details>
#
# 3. Write your own idea: copy `FlipConsistency`, change it (for example a vertical flip,
#    or a teacher from the strong view instead of the weak one), register it in
#    `ideas.IDEAS` and add it as a third variant. Where does its term appear?
#
# <details><summary>Solution</summary>
#
# A vertical flip is the same class with `dims=(-2,)` instead of `(-1,)` in both flips;
# register it as `IDEAS["vflip"] = VerticalFlip` and add
# `"crossmatch + vflip": {"name": "vflip", "weight": idea_weight}` to `variants`. Its term
# is logged as `idea` in the third run's `metrics.jsonl`, and the checks cell's
# assertions on the `idea` column hold for it as for the first idea.
# </details>

# %% [markdown]
# ## What you learned
#
# - Your own images and masks train through `data.name=folder` with the same checks,
#   splits and scores as the built-in datasets.
# - A new loss term is a subclass of `Trainer` that adds to `step_loss`; it is logged
#   like every other term and compared in its own run folder.
# - `crossmatch-lite predict` segments new images through the same code that scored the run.
#
# **Next:** [08 · CrossMatch in 3D](08_3d_left_atrium.ipynb): the same step on volumes.
