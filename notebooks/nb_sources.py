"""Cell sources of the tutorial notebooks; `build_notebooks.py` turns them into .ipynb.

Each notebook is a list of (kind, source): kind "md" (markdown), "code", or "params"
(the code cell tagged `parameters` that papermill replaces/extends).
"""
from __future__ import annotations

# Every notebook starts its code with this: import the package from an installed copy or,
# in a plain checkout, from the nearest parent folder that holds it.
BOOTSTRAP = '''
import sys
import time
from pathlib import Path

try:
    import crossmatch_lite  # installed (pip install -e .)
except ModuleNotFoundError:  # a plain checkout: the package sits in a parent folder
    sys.path.insert(0, str(next(p for p in [Path.cwd(), *Path.cwd().parents]
                                if (p / "crossmatch_lite").is_dir())))
    import crossmatch_lite

import numpy as np
import torch
from IPython.display import Markdown, display

from crossmatch_lite import viz
from crossmatch_lite.smoke import scaled, smoke_mode

viz.apply_style()
print("crossmatch_lite", crossmatch_lite.__version__, "| smoke mode:", smoke_mode())
'''

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}

# =====================================================================================
NOTEBOOKS["05_train"] = [
    ("md", '''
# 05 · One full training run

This notebook trains one configuration of `crossmatch_lite` from start to finish and shows
what happened: the loss terms while it trains, the validation Dice that chooses the best
checkpoint, the test metrics of that checkpoint, and its predictions on a few test slices.

It is also the notebook the ablation runner (`python -m ablations run ...`) executes once
per grid cell with papermill, passing a fully resolved `config`, `apply_convenience=False`
and an `out_dir`. Everything it trains comes from the package (`crossmatch_lite.train`);
the notebook only chooses the configuration and draws.

**Parameters** (the cell below is tagged `parameters`):

| name | meaning |
|---|---|
| `config` | a preset (`configs/*.yaml`) or a resolved `config.yaml` of an earlier run; found as given, relative to this folder, or relative to the project root |
| `overrides` | list of `"key=value"` strings applied last (they win over everything) |
| `dataset`, `data_root`, `labeled`, `iterations`, `seed`, `size`, `batch_size` | short-hands applied as overrides *before* `overrides`, only when `apply_convenience` is true |
| `apply_convenience` | `False`: train exactly `config` + `overrides` |
| `out_dir` | the run folder (relative paths are taken from the project root); re-running with the same folder resumes |
| `preset` | optional short-hand for `config`: a preset name such as `"supervised"` |
| `resume` | `False` deletes an earlier run in `out_dir` first |
| `n_examples` | how many test slices to draw |

With `CROSSMATCH_LITE_SMOKE=1` the default run shrinks to a few iterations (CI).
'''),
    ("params", '''
config = "../configs/crossmatch.yaml"  # preset or fully resolved config file
# overrides: "key=value" strings, applied after everything else
overrides = []
dataset = "toy_acdc"  # toy_acdc | toy_isic | acdc | isic2018
data_root = ""  # real data folder ("" keeps the config's data.root)
labeled = 3.0  # labeled patients (ACDC) or fraction / count of images (ISIC)
iterations = 300
seed = 0
size = 64
batch_size = 4
out_dir = "runs/05_train"
apply_convenience = True  # False: use only config + overrides (the ablation runner)
preset = ""  # optional: a preset name from configs/ that replaces `config`
resume = True  # False: start afresh even if out_dir holds a run
n_examples = 4  # test slices shown with their predictions
'''),
    ("code", BOOTSTRAP),
    ("md", '''
## The configuration

The file is read first, then the short-hand parameters (if `apply_convenience`), then
`overrides`; the progress bar is switched off because a notebook log is not a terminal.
Under smoke mode the default run is cut to a handful of iterations in its own folder.
'''),
    ("code", '''
from crossmatch_lite.config import flatten, to_dict

if preset:
    config = f"configs/{preset}.yaml"
convenience = []
if apply_convenience:
    iterations = scaled(iterations, min(iterations, 24))
    convenience = viz.convenience_overrides(dataset, data_root, labeled, iterations, seed, size, batch_size,
                                            validations=scaled(6, 2))
    if smoke_mode() and out_dir == "runs/05_train":
        out_dir, resume = "runs/smoke/05_train", False  # CI: always a fresh, tiny run
cfg = viz.notebook_config(config, overrides, convenience)
run_dir = viz.prepare_run_dir(out_dir, resume)
fig_dir = run_dir / "figures"
print("config file :", viz.resolve_config_path(config))
print("run folder  :", run_dir)
print("overrides   :", convenience + list(overrides))
flat = flatten(to_dict(cfg))
display(Markdown("| key | value |\\n|---|---|\\n" + "\\n".join(
    f"| `{k}` | `{flat[k]}` |" for k in ("preset", "data.name", "data.labeled", "data.size",
                                         "train.iterations", "train.batch_size", "train.seed",
                                         "train.val_every", "perturb.image.enabled",
                                         "perturb.feature.enabled", "distill.enabled", "distill.mode"))))
'''),
    ("md", '''
## Train

`Trainer.run()` validates every `train.val_every` iterations, keeps `latest.pt` and the
best-on-validation `best.pt`, and finally evaluates `best.pt` on the test cases. The
`on_log` callback redraws the curves below while it trains (one figure, updated in
place). A folder that already holds this run resumes from `latest.pt`, or, if finished,
returns its summary at once.
'''),
    ("code", '''
from crossmatch_lite.checkpoints import load_checkpoint
from crossmatch_lite.train import Trainer

live = viz.LiveCurves(title=f"{cfg.preset} on {cfg.data.name}: training (live)", every=10)
trainer = Trainer(cfg, run_dir, on_log=live)
data = trainer.data
print(f"{len(data.labeled_idx)} labeled and {len(data.unlabeled_idx)} unlabeled training slices, "
      f"{len(data.val_cases)} val cases, {len(data.test_cases)} test cases, device {trainer.device}")
t0 = time.perf_counter()
summary = trainer.run()
print(f"done in {time.perf_counter() - t0:.1f} s (training time recorded in the run: {summary['train_seconds']} s)")
'''),
    ("md", '''
## Loss curves and validation

Left: the total loss and its parts (supervised `L_x`, image consistency `L_s`, distillation
`L_kd`; a preset without a part has no curve for it). Middle: the share of unlabeled pixels
whose teacher is confident enough to teach (`mask_ratio`) and the poly learning-rate decay.
Right: validation Dice, mean and per class; the best point chooses `best.pt`.
'''),
    ("code", '''
train_rows, val_rows = viz.read_metrics(run_dir)
fig = viz.plot_training_curves(train_rows, val_rows, title=f"{cfg.preset} on {cfg.data.name}, "
                               f"{cfg.data.labeled:g} labeled, {cfg.train.iterations} iterations")
viz.show(fig, fig_dir, "training_curves")
print("best validation Dice:", f"{100 * max((r['val_dice'] for r in val_rows), default=float('nan')):.2f} %",
      "at iteration", summary["best_iteration"])
'''),
    ("md", '''
## Test metrics of the best-on-validation checkpoint

Dice and Jaccard in %, HD95 and ASD in voxels (`_vox`) and, where the data have a spacing,
millimetres (`_mm`). ACDC-like data are scored in 3D per volume, then averaged over cases
and classes.
'''),
    ("code", '''
import pandas as pd

table = pd.concat({split: viz.metrics_frame(summary, split) for split in ("val", "test")})
display(table)
table.to_csv(run_dir / "metrics_table.csv")
test_dice = summary["test"]["dice"]["mean"]
print(f"test Dice (mean over classes): {100 * test_dice:.2f} %")
'''),
    ("md", '''
## Qualitative predictions

The test slices with the most foreground in their volume, with the ground truth and the
prediction of `best.pt` (per-case mean Dice in the title).
'''),
    ("code", '''
best = load_checkpoint(run_dir / "best.pt", trainer.device)
trainer.model.load_state_dict(best["model"])
slices = viz.pick_slices(data.test_cases, n_examples)
chosen = [data.test_cases[i] for i in sorted({i for i, _ in slices})]
result = trainer.evaluate(chosen, keep_predictions=True)
fig = viz.plot_predictions(data.test_cases, {cfg.preset: result["_predictions"]}, slices, data.class_names,
                           title=f"{cfg.preset}: test predictions (best.pt, iteration {best['iteration']})",
                           dice={cfg.preset: viz.case_dice(result)})
viz.show(fig, fig_dir, "test_predictions")
'''),
    ("md", '''
## Checks

The run folder holds everything the ablation runner reads. For the notebook's own default
run on synthetic data the test Dice must clear a floor, so that a regression in the package
fails this notebook in CI instead of passing silently.
'''),
    ("code", '''
for name in ("config.yaml", "split.json", "metrics.jsonl", "latest.pt", "best.pt", "summary.json"):
    assert (run_dir / name).exists(), f"{name} missing in {run_dir}"
assert summary["iterations"] == cfg.train.iterations, summary["iterations"]
assert test_dice is not None and 0.0 <= test_dice <= 1.0, test_dice
if apply_convenience and cfg.data.name == "toy_acdc" and not overrides:
    # 300 iterations of CrossMatch on 3 labeled toy patients gave 0.14 test Dice (toy data
    # still being tuned); smoke runs only show that it runs.
    floor = scaled(0.10, 0.0)
    assert test_dice >= floor, f"test Dice {test_dice:.3f} is below {floor}: a regression?"
print(f"ok: {run_dir}/summary.json, figures in {fig_dir}")
'''),
]


def common_params(out_dir: str, iterations: int, preset: str = "crossmatch", note: str = "", extra: str = "") -> str:
    it_note = note or "training iterations"
    return f'''
dataset = "toy_acdc"  # toy_acdc | toy_isic | acdc | isic2018
data_root = ""  # real data folder ("" keeps the preset's data.root)
labeled = 3.0  # labeled patients (ACDC) or fraction / count of images (ISIC)
iterations = {iterations}  # {it_note}
seed = 0
preset = "{preset}"  # a preset name from configs/
# overrides: "key=value" strings applied after the parameters above
overrides = []
size = 64  # training image size (data.size)
batch_size = 4
out_dir = "runs/{out_dir}"  # relative paths are taken from the project root
resume = True  # reuse / continue runs found in out_dir
{extra}'''


SETUP_CFG = '''
default_out = "runs/{name}"
iterations = scaled(iterations, min(iterations, {smoke_it}))
if smoke_mode() and out_dir == default_out:
    out_dir, resume = default_out.replace("runs/", "runs/smoke/"), False  # CI: a fresh, tiny run
convenience = viz.convenience_overrides(dataset, data_root, labeled, iterations, seed, size, batch_size,
                                        validations=scaled(6, 2))
cfg = viz.notebook_config(f"configs/{{preset}}.yaml", overrides, convenience)
out = viz.resolve_out_dir(out_dir)
fig_dir = out / "figures"
print("preset", cfg.preset, "| data", cfg.data.name, "| iterations", cfg.train.iterations, "| output", out)
'''

# =====================================================================================
NOTEBOOKS["00_quickstart"] = [
    ("md", '''
# 00 · Quick start: CrossMatch versus supervised training on few labels

Semi-supervised segmentation trains on a few labeled images *and* many unlabeled ones.
CrossMatch (Zhao et al., IEEE JBHI 2024, arXiv:2405.00354) teaches the network on the
unlabeled images with its own confident predictions, under two kinds of perturbation:
strong *image* changes (colour jitter, blur, CutMix) and *feature* dropout inside the
network, with a self-distillation between the perturbed predictions.

Here we train the `supervised` baseline (labeled images only) and `crossmatch` on the
same split of the built-in synthetic cardiac data (`toy_acdc`: 3 labeled "patients",
the rest unlabeled), then compare their test Dice and predictions. On a laptop CPU this
takes about five minutes; `CROSSMATCH_LITE_SMOKE=1` shrinks it to seconds for CI.

The next notebooks open each piece: data (01), image perturbations (02), feature
perturbations (03), the distillation losses (04), one full run (05) and ablations (06).
'''),
    ("params", common_params("00_quickstart", 600, extra='''baseline = "supervised"  # the preset CrossMatch is compared with
check_gain = True  # assert that `preset` beats `baseline` on test Dice
n_examples = 3  # test slices drawn
''')),
    ("code", BOOTSTRAP),
    ("code", SETUP_CFG.format(name="00_quickstart", smoke_it=60)),
    ("md", '''
## Train both

Both runs use the same data, split, seed, iterations and network; only the preset
differs. `viz.trained` calls `crossmatch_lite.train.Trainer` (which validates, keeps the
best checkpoint on validation data, and scores it on test) and loads that checkpoint.
A finished run in the output folder is reused instead of trained again.
'''),
    ("code", '''
from crossmatch_lite.data import load_data

data = load_data(cfg.data, seed=cfg.train.seed)
print(f"{len(data.labeled_idx)} labeled / {len(data.unlabeled_idx)} unlabeled training slices; "
      f"{len(data.test_cases)} test cases")
runs, summaries, seconds = {}, {}, {}
for name in (baseline, preset):
    run_cfg = viz.notebook_config(f"configs/{name}.yaml", overrides, convenience)
    run_dir = viz.prepare_run_dir(out / name, resume)
    t0 = time.perf_counter()
    runs[name], summaries[name] = viz.trained(run_cfg, run_dir, data=data)
    seconds[name] = time.perf_counter() - t0
    print(f"{name:>12}: test Dice {100 * summaries[name]['test']['dice']['mean']:.2f} %  ({seconds[name]:.0f} s)")
'''),
    ("md", '''
## Test Dice

Dice per class (RV, myocardium, LV) and their mean, on the test volumes, scored in 3D.
'''),
    ("code", '''
display(viz.dice_frame(summaries).round(2))
viz.show(viz.plot_dice_comparison(summaries, title=f"Test Dice, {cfg.data.name}, {cfg.data.labeled:g} labeled"),
         fig_dir, "test_dice")
viz.show(viz.plot_val_comparison({n: out / n for n in runs}), fig_dir, "val_dice_curves")
'''),
    ("md", '''
## Predictions side by side

The same test slices, ground truth, then each model's prediction.
'''),
    ("code", '''
slices = viz.pick_slices(data.test_cases, n_examples)
chosen = [data.test_cases[i] for i in sorted({i for i, _ in slices})]
preds, case_scores = {}, {}
for name, trainer in runs.items():
    r = trainer.evaluate(chosen, keep_predictions=True)
    preds[name], case_scores[name] = r["_predictions"], viz.case_dice(r)
viz.show(viz.plot_predictions(data.test_cases, preds, slices, data.class_names,
                              title=f"{baseline} vs {preset} on test slices", dice=case_scores),
         fig_dir, "predictions")
'''),
    ("md", '''
## The claim, checked

With few labels, using the unlabeled images should help: CrossMatch's test Dice must
beat the supervised baseline's by at least 5 points (at the default 600 iterations we
measured +19 and +24 points on seeds 0 and 1). CrossMatch starts slower: its loss halves
the weight of the labeled term, so at 300 iterations the ordering still depends on the
seed, and a smoke-sized run (CI) only checks that both train end to end.
'''),
    ("code", '''
gain = summaries[preset]["test"]["dice"]["mean"] - summaries[baseline]["test"]["dice"]["mean"]
print(f"{preset} - {baseline}: {100 * gain:+.2f} Dice points")
if check_gain and smoke_mode():
    # CrossMatch halves the weight of the labeled loss, so in its first ~100 iterations it
    # trails the baseline: a smoke-sized run can only show that both train end to end.
    print("smoke mode: gain not asserted (too few iterations to show it)")
    assert all(0.0 <= s["test"]["dice"]["mean"] <= 1.0 for s in summaries.values())
elif check_gain:
    assert gain > 0.05, f"{preset} does not beat {baseline} by 5 Dice points ({100 * gain:+.2f})"
'''),
]

# =====================================================================================
NOTEBOOKS["01_data"] = [
    ("md", '''
# 01 · The data: patients, volumes, slices and splits

**ACDC** (Bernard et al., IEEE TMI 2018) holds cine-MRI of 100 training *patients*. Each
patient gives two *volumes* (end-diastole and end-systole), each a stack of about ten 2D
*slices*, labelled with background, right ventricle (RV), myocardium (Myo) and left
ventricle (LV). The network is 2D: it trains on slices resized to `data.size`, but it is
*evaluated* per volume in 3D at native resolution. Splits are by patient, so no patient
is in two of train / val / test. "3 labeled" means the slices of 3 training patients
carry masks; every other training slice is *unlabeled* (its mask is never read).

**ISIC 2018** holds RGB dermoscopy images with binary lesion masks; one image is one
case, and the labeled amount is a fraction or count of training images.

The built-in `toy_acdc` and `toy_isic` imitate both (no download). Set `dataset="acdc"`
and `data_root` to a prepared ACDC folder to look at the real thing.
'''),
    ("params", common_params("01_data", 0, note="not used: this notebook trains nothing", extra='''compare_dataset = "toy_isic"  # a second dataset shown briefly ("" to skip)
n_show = 6  # images per gallery row
''')),
    ("code", BOOTSTRAP),
    ("code", '''
from crossmatch_lite.data import load_data

convenience = viz.convenience_overrides(dataset, data_root, labeled, None, seed, size, batch_size)
cfg = viz.notebook_config(f"configs/{preset}.yaml", overrides, convenience)
if smoke_mode() and out_dir == "runs/01_data":
    out_dir = "runs/smoke/01_data"
out = viz.resolve_out_dir(out_dir)
fig_dir = out / "figures"
t0 = time.perf_counter()
data = load_data(cfg.data, seed=cfg.train.seed)
print(f"loaded {data.name} in {time.perf_counter() - t0:.1f} s; classes: {data.class_names}")
'''),
    ("md", '''
## The split

`data.split` is what a run saves as `split.json`: which cases are labeled, unlabeled,
validation and test. Training arrays hold every training slice once; the labeled and
unlabeled index lists cut them in two.
'''),
    ("code", '''
import pandas as pd

split = data.split
counts = pd.DataFrame({
    "cases (patients / images)": [len(split["labeled"]), len(split["unlabeled"]), len(split["val"]), len(split["test"])],
    "2D slices": [len(data.labeled_idx), len(data.unlabeled_idx),
                  sum(len(c.label) for c in data.val_cases), sum(len(c.label) for c in data.test_cases)],
}, index=["labeled", "unlabeled", "val", "test"])
display(counts)
print("labeled cases:", ", ".join(split["labeled"]))
print("training array:", data.train_images.shape, data.train_images.dtype,
      "| one test case:", data.test_cases[0].image.shape, "(Z, C, H, W) at native size")
'''),
    ("md", '''
## One volume, slice by slice

A validation volume at native resolution with its mask: base slices show the ventricles
large, apical slices small or empty.
'''),
    ("code", '''
case = data.val_cases[0]
z_all = list(range(len(case.label)))[: 2 * n_show]
panels = [[(case.image[z], case.label[z], f"slice {z}") for z in z_all[i:i + n_show]]
          for i in range(0, len(z_all), n_show)]
spacing = " x ".join(f"{v:.2f}" for v in case.spacing) + " mm (z, y, x)" if case.spacing else "unknown spacing"
viz.show(viz.image_grid(panels, f"{data.name}: volume {case.id}, {len(case.label)} slices, {spacing}",
                        data.class_names), fig_dir, "volume_slices")
'''),
    ("md", '''
## Labeled versus unlabeled training slices

Top: labeled slices, as the network sees them (resized to `data.size`) with their masks.
Bottom: unlabeled slices; their masks exist on disk for the toy data but training never
reads them: that is what the pseudo-labels of CrossMatch stand in for.
'''),
    ("code", '''
rng = np.random.default_rng(seed)
lab = rng.choice(data.labeled_idx, size=min(n_show, len(data.labeled_idx)), replace=False)
unl = rng.choice(data.unlabeled_idx, size=min(n_show, len(data.unlabeled_idx)), replace=False)
panels = [[(data.train_images[i], data.train_labels[i], f"labeled #{i}") for i in lab],
          [(data.train_images[i], None, f"unlabeled #{i}") for i in unl]]
viz.show(viz.image_grid(panels, f"{data.name}: labeled (with masks) vs unlabeled training slices",
                        data.class_names), fig_dir, "labeled_vs_unlabeled")
'''),
    ("md", '''
## Class balance and intensities

How much of each image each class covers, per part of the split, and the intensity
distribution of the training slices.
'''),
    ("code", '''
def class_share(labels):
    counts = np.bincount(np.asarray(labels).ravel(), minlength=data.num_classes)
    return 100 * counts / counts.sum()

share = pd.DataFrame({
    "labeled": class_share(data.train_labels[data.labeled_idx]),
    "unlabeled (hidden)": class_share(data.train_labels[data.unlabeled_idx]),
    "test": class_share(np.concatenate([c.label.ravel() for c in data.test_cases])),
}, index=data.class_names)
display(share.round(2))
fig, axes = viz.new_figure(1, 2, figsize=(11, 3.6))
share.drop(index=data.class_names[0]).plot.bar(ax=axes[0][0], rot=0)
axes[0][0].set(title="Foreground class share of pixels", ylabel="% of pixels")
axes[0][0].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
sample = np.asarray(data.train_images[rng.choice(len(data.train_images), min(200, len(data.train_images)),
                                                 replace=False)], dtype=np.float32)
axes[0][1].hist(sample.ravel(), bins=50, color="C0")
axes[0][1].set(title="Training intensities (all channels)", xlabel="value in [0, 1]", ylabel="pixels")
fig.suptitle(f"{data.name}: class balance and intensities")
viz.show(fig, fig_dir, "class_balance")
'''),
    ("md", '''
## The second dataset

The same containers hold the skin-lesion data: one RGB image per case, a binary mask.
'''),
    ("code", '''
if compare_dataset:
    other_cfg = viz.notebook_config(f"configs/{preset}.yaml", overrides, viz.convenience_overrides(
        compare_dataset, None, 0.1 if "isic" in compare_dataset else labeled, None, seed, size))
    other = load_data(other_cfg.data, seed=seed)
    print(f"{other.name}: {len(other.labeled_idx)} labeled / {len(other.unlabeled_idx)} unlabeled training images, "
          f"{len(other.val_cases)} val, {len(other.test_cases)} test; classes {other.class_names}")
    picks = other.test_cases[:n_show]
    panels = [[(c.image[0], None, c.id) for c in picks], [(c.image[0], c.label[0], "mask") for c in picks]]
    viz.show(viz.image_grid(panels, f"{other.name}: test images and masks", other.class_names),
             fig_dir, f"gallery_{other.name}")
'''),
    ("md", "## Checks"),
    ("code", '''
assert not set(split["labeled"]) & set(split["unlabeled"]), "a case is both labeled and unlabeled"
assert not (set(split["labeled"]) | set(split["unlabeled"])) & (set(split["val"]) | set(split["test"]))
assert len(np.intersect1d(data.labeled_idx, data.unlabeled_idx)) == 0
assert 0.0 <= float(data.train_images[:64].min()) and float(data.train_images[:64].max()) <= 1.0
if data.name in ("toy_acdc", "acdc"):
    assert len(split["labeled"]) == int(cfg.data.labeled), split["labeled"]
print("ok")
'''),
]

# =====================================================================================
NOTEBOOKS["02_image_perturbations"] = [
    ("md", '''
# 02 · Image perturbations: weak view, strong views, CutMix

Every iteration, CrossMatch draws an unlabeled batch `u` and a second unlabeled batch `m`.
- The **weak view** `u_w`: rot90 + flip (probability 0.5), else a small rotation (±20°,
  probability 0.25). Its clean prediction `p_w` is the *teacher*.
- Two **strong views** `s1`, `s2` of `u_w`: colour jitter (p 0.8), Gaussian blur (p 0.5),
  and each its own **CutMix box** (p 0.5, 2-40 % of the area): inside the box the pixels
  come from `m`'s strong view.
- The **pseudo-label** of `s_i` is `p_w`'s argmax, with the box filled from `m`'s own
  prediction: the label moves with the pixels.

All of it comes from `crossmatch_lite.augment`. To show the box-mixed pseudo-labels without
a trained model, the (hidden) toy masks stand in for the teacher's prediction here.
'''),
    ("params", common_params("02_image_perturbations", 0, note="not used: this notebook trains nothing",
                             extra='''n_images = 4  # unlabeled images shown
sliders = True  # interactive ipywidgets sliders (they render once under papermill)
''')),
    ("code", BOOTSTRAP),
    ("code", '''
import copy

from crossmatch_lite.augment import (make_unlabeled_views, paste, quantize_8bit, strong_view,
                                     weak_view)
from crossmatch_lite.data import load_data

convenience = viz.convenience_overrides(dataset, data_root, labeled, None, seed, size, batch_size)
cfg = viz.notebook_config(f"configs/{preset}.yaml", overrides, convenience)
if smoke_mode() and out_dir == "runs/02_image_perturbations":
    out_dir = "runs/smoke/02_image_perturbations"
fig_dir = viz.resolve_out_dir(out_dir) / "figures"
data = load_data(cfg.data, seed=cfg.train.seed)
ip = cfg.perturb.image
print(ip)

# Unlabeled slices with visible structures (the toy masks are used only to pick and to illustrate).
fg = (data.train_labels[data.unlabeled_idx] > 0).reshape(len(data.unlabeled_idx), -1).mean(1)
rich = data.unlabeled_idx[np.argsort(-fg)[: 4 * n_images]]
rng = np.random.default_rng(seed)
pick_u, pick_m = np.split(rng.choice(rich, 2 * n_images, replace=False), 2)
as_t = lambda idx: (torch.from_numpy(np.asarray(data.train_images[idx], dtype=np.float32)),
                    torch.from_numpy(np.asarray(data.train_labels[idx])))
u, y_u = as_t(pick_u)
m, y_m = as_t(pick_m)
gen = torch.Generator().manual_seed(seed)
'''),
    ("md", '''
## The weak view

Geometry only: the image and its mask move together, intensities are untouched.
'''),
    ("code", '''
u_w, y_w = weak_view(u, y_u, gen)
m_w, y_mw = weak_view(m, y_m, gen)
u_w, m_w = quantize_8bit(u_w), quantize_8bit(m_w)  # as the trainer does: an 8-bit image
panels = [[(u[i], y_u[i], "original") for i in range(n_images)],
          [(u_w[i], y_w[i], "weak view u_w") for i in range(n_images)]]
viz.show(viz.image_grid(panels, "Weak view: rot90 + flip or a small rotation", data.class_names),
         fig_dir, "weak_view")
'''),
    ("md", '''
## Strong views and their CutMix boxes

`make_unlabeled_views` is the function the trainer calls. The orange outline marks each
view's CutMix box (absent when that view drew no box: probability 0.5).
'''),
    ("code", '''
views = make_unlabeled_views(u_w, m_w, ip, gen)
panels = []
for i in range(n_images):
    row = [(u_w[i], None, "weak u_w")]
    for k, (s, box) in enumerate(zip(views.strong, views.boxes)):
        row.append((s[i], None, f"strong s{k + 1}", box[i]))
    row.append((m_w[i], None, "CutMix source m_w"))
    panels.append(row)
viz.show(viz.image_grid(panels, "Strong views: colour jitter, blur and a CutMix box from m"),
         fig_dir, "strong_views")
'''),
    ("md", '''
## Box-mixed pseudo-labels

The teacher of `s_i` is `p_w` outside the box and `m`'s own prediction inside it
(`Teacher.boxed` in `crossmatch_step`, which calls `augment.paste`). Here masks stand in
for both predictions.
'''),
    ("code", '''
panels = []
for i in range(n_images):
    row = [(u_w[i], y_w[i], "label of u_w")]
    for k, (s, box) in enumerate(zip(views.strong, views.boxes)):
        mixed = paste(y_w[i:i + 1], y_mw[i:i + 1], box[i:i + 1])[0]
        row.append((s[i], mixed, f"pseudo-label of s{k + 1}", box[i]))
    panels.append(row)
viz.show(viz.image_grid(panels, "Pseudo-labels follow the CutMix boxes", data.class_names),
         fig_dir, "mixed_pseudo_labels")
'''),
    ("md", '''
## One ingredient at a time

The same image under each strong ingredient alone (probabilities set to 1 so that each
panel shows its effect).
'''),
    ("code", '''
def only(**changes):
    c = copy.deepcopy(ip)
    for k, v in changes.items():
        setattr(c, k, v)
    return c

img = u_w[:1]
g = lambda: torch.Generator().manual_seed(seed + 1)
variants = {
    "colour jitter": strong_view(img, only(blur=False, jitter_p=1.0), g()),
    "blur": strong_view(img, only(color_jitter=False, blur_p=1.0, blur_sigma=[1.5, 2.0]), g()),
    "CutMix": make_unlabeled_views(img, m_w[:1], only(color_jitter=False, blur=False, cutmix_p=1.0,
                                                      strong_views=1), g()),
}
cut = variants.pop("CutMix")
row = [(img[0], None, "weak view")] + [(v[0], None, k) for k, v in variants.items()]
row.append((cut.strong[0][0], None, "CutMix", cut.boxes[0][0]))
viz.show(viz.image_grid([row], "Strong ingredients one by one"), fig_dir, "ingredients")
'''),
    ("md", '''
## Sliders

Move the sliders to see jitter strength, blur width and box size (each ingredient applied
with probability 1, fixed random draws). Under papermill the widget renders once with its
default values; that picture is also saved.
'''),
    ("code", '''
def explore(brightness=0.5, contrast=0.5, blur_sigma=1.0, box_area=0.2, save=False):
    c = only(jitter_p=1.0, brightness=brightness, contrast=contrast, blur_p=1.0,
             blur_sigma=[max(0.1, blur_sigma), max(0.1, blur_sigma)], cutmix_p=1.0,
             cutmix_area=[box_area, box_area], strong_views=1)
    v = make_unlabeled_views(u_w, m_w, c, torch.Generator().manual_seed(seed))
    fig = viz.image_grid([[(u_w[i], None, "weak") for i in range(n_images)],
                          [(v.strong[0][i], None, "strong", v.boxes[0][i]) for i in range(n_images)]],
                         f"brightness ±{brightness:.2f}, contrast ±{contrast:.2f}, blur σ {blur_sigma:.1f}, "
                         f"box {100 * box_area:.0f} % of the image")
    if save:
        viz.save_figure(fig, fig_dir, "sliders")
    display(fig)

if sliders:
    import ipywidgets as widgets

    w = widgets.interactive(explore, brightness=(0.0, 1.0, 0.05), contrast=(0.0, 1.0, 0.05),
                            blur_sigma=(0.1, 4.0, 0.1), box_area=(0.02, 0.6, 0.02), save=False)
    display(w)
explore(save=True)
'''),
    ("md", "## Checks"),
    ("code", '''
for s, box in zip(views.strong, views.boxes):
    assert s.shape == u_w.shape and float(s.min()) >= 0.0 and float(s.max()) <= 1.0
    area = box.flatten(1).mean(1)
    drawn = area[area > 0]
    assert ((drawn > ip.cutmix_area[0] * 0.8) & (drawn < ip.cutmix_area[1] * 1.05)).all(), drawn
assert len(views.strong) == ip.strong_views
print("ok: box areas", [f"{100 * float(a):.0f}%" for b in views.boxes for a in b.flatten(1).mean(1)])
'''),
]

TRAIN_SHORT = '''
from crossmatch_lite.data import load_data

data = load_data(cfg.data, seed=cfg.train.seed)
run_dir = viz.prepare_run_dir(out / "model", resume)
t0 = time.perf_counter()
trainer, summary = viz.trained(cfg, run_dir, data=data)
model = trainer.eval_model()  # best.pt with BatchNorm statistics recomputed on clean images, as evaluation does
print(f"{cfg.preset} trained for {summary['iterations']} iterations ({time.perf_counter() - t0:.0f} s), "
      f"test Dice {100 * summary['test']['dice']['mean']:.1f} %")
'''

# =====================================================================================
NOTEBOOKS["03_feature_perturbations"] = [
    ("md", '''
# 03 · Feature perturbations: one encoder, three decodings

CrossMatch perturbs not only images but the network's *features*. The UNet is split into
`encode` and `decode`; the encoder features of an image are decoded three ways with the
same decoder:
- **clean**: `decode(f)`, the teacher `p_w`;
- **weak**: `decode(drop_features(f, 0.25))`, channel dropout (Dropout2d) on every
  encoder level;
- **strong**: `decode(drop_features(f, 0.75))`.

Where the perturbed decodings disagree with the clean one, the distillation losses
(notebook 04) push them back towards it. First we train a model briefly (so that its
predictions mean something), then look at one image's three decodings, where they
disagree, and how the dropout rate changes that.
'''),
    ("params", common_params("03_feature_perturbations", 150, extra='''n_images = 3  # validation slices shown
rates = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9]  # Dropout2d rates of the sweep
repeats = 4  # dropout draws per rate
''')),
    ("code", BOOTSTRAP),
    ("code", SETUP_CFG.format(name="03_feature_perturbations", smoke_it=30)),
    ("code", TRAIN_SHORT),
    ("md", '''
## Clean, weak and strong decodings

The model is in eval mode (BatchNorm statistics recomputed on clean training images and fixed,
the encoder's own dropout off);
`drop_features` is always active, as in the official code. The last column counts, per
pixel, how many of the two perturbed decodings disagree with the clean one (grey: one,
white: both).
'''),
    ("code", '''
import torch.nn.functional as F

from crossmatch_lite.unet import drop_features

fp = cfg.perturb.feature
weak_rate, strong_rate = fp.weak_rate, fp.strong_rate if fp.strong_rate is not None else 0.75
slices = viz.pick_slices(data.val_cases, n_images)
S = cfg.data.size  # slices are resized to the training size, as evaluation does
x = torch.cat([F.interpolate(torch.from_numpy(np.asarray(data.val_cases[i].image[z:z + 1], dtype=np.float32)),
                             (S, S), mode="bilinear", align_corners=False) for i, z in slices]).to(trainer.device)
y = [data.val_cases[i].label[z] for i, z in slices]
torch.manual_seed(seed)
with torch.no_grad():
    feats = model.encode(x)
    decoded = {"clean": model.decode(feats),
               f"weak (rate {weak_rate})": model.decode(drop_features(feats, weak_rate)),
               f"strong (rate {strong_rate})": model.decode(drop_features(feats, strong_rate))}
labels = {k: v.argmax(1).cpu() for k, v in decoded.items()}
clean = labels["clean"]
disagree = sum((v != clean).long() for k, v in labels.items() if k != "clean")
panels = []
for r in range(len(slices)):
    gt = torch.from_numpy(np.asarray(y[r]))[None, None].float()
    gt = F.interpolate(gt, (S, S), mode="nearest")[0, 0].long()
    row = [(x[r].cpu(), gt, "ground truth")] + [(x[r].cpu(), v[r], k) for k, v in labels.items()]
    row.append((disagree[r].float() / 2, None, f"disagree: {100 * (disagree[r] > 0).float().mean():.1f} % px"))
    panels.append(row)
viz.show(viz.image_grid(panels, "One encoder, three decodings (last column: grey = one stream "
                        "disagrees with the clean decoding, white = both)",
                        data.class_names), fig_dir, "three_decodings")
'''),
    ("md", '''
## What the dropout does to the features

Four channels of the second encoder level: clean, then the same channels under weak and
strong Dropout2d. Whole channels vanish (and the survivors are scaled up by 1/(1-rate)).
'''),
    ("code", '''
torch.manual_seed(seed)
level = feats[1][0, :4].cpu()
dropped = {"clean": level, "weak": drop_features([feats[1]], weak_rate)[0][0, :4].cpu(),
           "strong": drop_features([feats[1]], strong_rate)[0][0, :4].cpu()}
fig, axes = viz.new_figure(3, 4, figsize=(9, 7))
vmax = float(max(v.abs().max() for v in dropped.values()))
for r, (name, maps) in enumerate(dropped.items()):
    for c in range(4):
        axes[r][c].imshow(maps[c].numpy(), cmap="magma", vmin=0, vmax=vmax)
        axes[r][c].set_title(f"{name}, channel {c}", fontsize=8)
        axes[r][c].set_axis_off()
fig.suptitle("Encoder level 2 feature maps under channel dropout")
viz.show(fig, fig_dir, "feature_maps")
'''),
    ("md", '''
## How the rate changes the disagreement

For each rate, the share of pixels whose predicted class flips relative to the clean
decoding, and the mean confidence (max softmax), averaged over several dropout draws on
the validation slices above. The dashed lines mark CrossMatch's weak and strong rates.
'''),
    ("code", '''
sweep = viz.dropout_disagreement(model, x, rates, repeats=repeats, seed=seed)
import pandas as pd
display(pd.DataFrame(sweep).round(4))
fig, axes = viz.new_figure(1, 2, figsize=(10, 3.6))
axes[0][0].plot(sweep["rate"], [100 * v for v in sweep["flipped"]], "o-")
axes[0][0].set(title="Pixels whose class flips", xlabel="Dropout2d rate", ylabel="% of pixels")
axes[0][1].plot(sweep["rate"], sweep["confidence"], "o-", color="C2")
axes[0][1].set(title="Mean confidence of the prediction", xlabel="Dropout2d rate", ylabel="max softmax")
for ax in (axes[0][0], axes[0][1]):
    for r, name in ((weak_rate, "weak"), (strong_rate, "strong")):
        ax.axvline(r, ls="--", color="grey")
        ax.text(r, ax.get_ylim()[1], name, ha="center", va="bottom", fontsize=8)
fig.suptitle(f"Feature dropout sweep ({cfg.preset}, {summary['iterations']} iterations)")
viz.show(fig, fig_dir, "rate_sweep")
'''),
    ("md", "## Checks"),
    ("code", '''
assert sweep["rate"][0] == 0.0 and sweep["flipped"][0] == 0.0, "rate 0 must change nothing"
first = next(i for i, r in enumerate(sweep["rate"]) if r > 0)
assert sweep["flipped"][-1] >= sweep["flipped"][first] - 1e-6, sweep
print("ok: flipped pixels", [f"{100 * v:.2f}%" for v in sweep["flipped"]])
'''),
]

# =====================================================================================
NOTEBOOKS["04_distillation"] = [
    ("md", '''
# 04 · Self-distillation: who teaches whom

Every unlabeled loss term of CrossMatch is a *teacher → student* pair: the teacher's
prediction is detached, turned into a pseudo-label (argmax), and pixels where the teacher
is less confident than `pseudo.conf_thresh` (0.95) are ignored. The diagram shows every
pair; below we train a model briefly, look at its confidence masks at several
thresholds, compute every term on one batch with `crossmatch_step` (the function the
trainer calls), and compare hard labels (the official code: masked Dice on the argmax)
with soft ones (the paper's KL at a temperature, `distill.mode=soft`).
'''),
    ("params", common_params("04_distillation", 150, extra='''thresholds = [0.5, 0.7, 0.9, 0.95, 0.99]  # confidence thresholds compared
temperatures = [0.5, 1.0, 2.0, 4.0]  # soft-distillation temperatures shown
n_images = 3  # unlabeled images shown
''')),
    ("code", BOOTSTRAP),
    ("code", SETUP_CFG.format(name="04_distillation", smoke_it=30)),
    ("md", "## The graph of loss terms"),
    ("code", '''
fig, axes = viz.new_figure(1, 1, figsize=(10, 5.2))
viz.draw_crossmatch_graph(axes[0][0], eta=cfg.distill.eta)
fig.suptitle("CrossMatch: teacher → student pairs of every unlabeled loss term")
viz.show(fig, fig_dir, "loss_graph")
'''),
    ("code", TRAIN_SHORT),
    ("md", '''
## One training batch

Built exactly as `Trainer.train_step` builds it: a labeled batch `x`, the weak view `u_w`
of an unlabeled batch, and the strong views with CutMix boxes from a second batch `m`.
'''),
    ("code", '''
import copy

import pandas as pd

from crossmatch_lite.augment import make_unlabeled_views, quantize_8bit, weak_view
from crossmatch_lite.config import load_config
from crossmatch_lite.crossmatch_step import Teacher, crossmatch_step, plan_from

gen = torch.Generator().manual_seed(seed)
rng = np.random.default_rng(seed)
b = cfg.train.batch_size
batch = lambda idx: torch.from_numpy(np.asarray(data.train_images[np.sort(rng.choice(idx, b, replace=False))],
                                                dtype=np.float32))
lab = np.sort(rng.choice(data.labeled_idx, b, replace=False))
x, y = weak_view(torch.from_numpy(np.asarray(data.train_images[lab], dtype=np.float32)),
                 torch.from_numpy(np.asarray(data.train_labels[lab])), gen)
u_w = quantize_8bit(weak_view(batch(data.unlabeled_idx), None, gen)[0])
m_w = quantize_8bit(weak_view(batch(data.unlabeled_idx), None, gen)[0])
views = make_unlabeled_views(u_w, m_w, cfg.perturb.image, gen)
dev = trainer.device
x, y, u_w = x.to(dev), y.to(dev), u_w.to(dev)
views.u_w, views.m_w = views.u_w.to(dev), views.m_w.to(dev)
views.strong, views.boxes = [s.to(dev) for s in views.strong], [bx.to(dev) for bx in views.boxes]
print("x", tuple(x.shape), "| u_w", tuple(u_w.shape), "| strong views", len(views.strong))
'''),
    ("md", '''
## Confidence masks

The teacher `p_w` on the weak view; only pixels at or above the threshold teach. A high
threshold keeps few but reliable pixels (mostly easy background early in training).
Pink marks the ignored pixels; the confidence panel is white where the teacher is sure.
'''),
    ("code", '''
with torch.no_grad():
    teacher = Teacher(model(u_w))
conf, pseudo = teacher.confidence.cpu(), teacher.label.cpu()
kept = {t: float((conf >= t).float().mean()) for t in thresholds}
IGNORED = len(viz.CLASS_COLORS) - 1  # drawn in pink: pixels below the threshold teach nothing
panels = []
for i in range(min(n_images, len(u_w))):
    row = [(u_w[i].cpu(), pseudo[i], "pseudo-label p_w"), (conf[i], None, "confidence")]
    row += [(u_w[i].cpu(), torch.where(conf[i] >= t, pseudo[i], IGNORED), f"≥ {t}: {100 * (conf[i] >= t).float().mean():.0f} % kept")
            for t in thresholds]
    panels.append(row)
viz.show(viz.image_grid(panels, "Pseudo-labels kept at each confidence threshold (pink: ignored pixels)",
                        data.class_names), fig_dir, "confidence_masks")
fig, axes = viz.new_figure(1, 1, figsize=(5, 3.4))
axes[0][0].plot(thresholds, [100 * v for v in kept.values()], "o-")
axes[0][0].axvline(cfg.pseudo.conf_thresh, ls="--", color="grey")
axes[0][0].set(title="Share of unlabeled pixels that teach", xlabel="confidence threshold", ylabel="% of pixels")
viz.show(fig, fig_dir, "mask_ratio_vs_threshold")
'''),
    ("md", '''
## Every term on this batch, hard versus soft

`crossmatch_step` returns the loss and each term: `x` (supervised), `s1`, `s2` (image
consistency), `kd_w_*` (a, b), `kd_s_*` (c, d), `kd_cross_*` (e, f) and their combination
`kd`. The same batch and the same dropout draws under `distill.mode=hard` and `soft`;
the model is copied so that BatchNorm statistics are not touched.
'''),
    ("code", '''
results = {}
for mode in ("hard", "soft"):
    mcfg = viz.notebook_config(f"configs/{preset}.yaml", overrides, convenience + [f"distill.mode={mode}"])
    student = copy.deepcopy(model).train()
    torch.manual_seed(seed)
    with torch.no_grad():
        results[mode] = crossmatch_step(student, x, y, views, mcfg, plan_from(mcfg), mcfg.pseudo.conf_thresh)
terms = pd.DataFrame({m: {**r.terms, "loss": float(r.loss), "mask_ratio": r.mask_ratio} for m, r in results.items()})
display(terms.round(4))
viz.show(viz.plot_terms({m: r.terms for m, r in results.items()},
                        title=f"Loss terms on one batch (threshold {cfg.pseudo.conf_thresh})"), fig_dir, "terms_hard_vs_soft")
'''),
    ("md", '''
## Hard and soft targets for one pixel

A hard target is the teacher's argmax as a one-hot vector; a soft target is the teacher's
softmax at temperature T (higher T: flatter). The pixel shown is the unlabeled pixel whose
teacher is closest to the threshold.
'''),
    ("code", '''
logits = teacher.logits.float().cpu()
flat = (conf - cfg.pseudo.conf_thresh).abs().flatten()
n, rest = divmod(int(flat.argmin()), conf.shape[1] * conf.shape[2])
r_, c_ = divmod(rest, conf.shape[2])
pix = logits[n, :, r_, c_]
targets = {"hard (one-hot)": torch.nn.functional.one_hot(pix.argmax(), len(pix)).float()}
targets.update({f"soft T={t:g}": (pix / t).softmax(0) for t in temperatures})
fig, axes = viz.new_figure(1, 1, figsize=(7, 3.4))
width = 0.8 / len(targets)
for k, (name, p) in enumerate(targets.items()):
    axes[0][0].bar(np.arange(len(pix)) + k * width, p.numpy(), width, label=name)
axes[0][0].set_xticks(np.arange(len(pix)) + 0.4 - width / 2, data.class_names)
axes[0][0].set(title=f"Targets for one pixel (teacher confidence {float(conf[n, r_, c_]):.3f})", ylabel="probability")
axes[0][0].legend(fontsize=8)
viz.show(fig, fig_dir, "hard_vs_soft_targets")
'''),
    ("md", '''
## Checks: the loss is the sum the paper writes

`L_kd = (1-η)·mean(a, b, c, d) + η·mean(e, f)` and
`L = (w_x·L_x + w_s·mean(L_s1, L_s2) + w_kd·L_kd) / normalizer`, recomputed from the terms.
'''),
    ("code", '''
lw, eta = cfg.loss, cfg.distill.eta
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
'''),
]

# =====================================================================================
NOTEBOOKS["06_ablations"] = [
    ("md", '''
# 06 · Ablations: run a grid, read its results

An *ablation* switches parts of CrossMatch off to see what each part is worth. The
project's runner (`python -m ablations run GRID.yaml --out DIR`) expands a grid file
(variants × seeds × settings) into cells, executes `05_train.ipynb` once per cell with
papermill, skips finished cells when re-run, and writes `results.csv` (one row per cell,
split, metric and class), `summary.md` (paired differences to the baseline) and figures.

This notebook
1. runs a small grid through the runner (the quick grid by default; under
   `CROSSMATCH_LITE_SMOKE=1` a two-cell grid written here, trained by the runner's
   minimal stand-in notebook to stay within CI time), and
2. loads a finished grid's folder, from this run or any earlier one (`results`), and
   plots it.
'''),
    ("params", '''
dataset = ""  # "" keeps the grid's data.name; else e.g. "toy_isic"
data_root = ""  # real data folder for the grid ("" keeps the grid's)
labeled = 0.0  # 0 keeps the grid's data.labeled
iterations = 0  # 0 keeps the grid's train.iterations
seed = 0  # seed of the smoke grid (the other grids have their own seed axis)
preset = ""  # unused here: variants come from the grid
# overrides: extra "key=value" strings passed to the runner as --set
overrides = []
out_dir = "runs/06_ablations"  # grid results folder (relative: from the project root)
grid = "ablations/grids/quick.yaml"  # grid file (relative: from the project root)
run_grid = True  # False: only load and plot `results` (or out_dir)
results = ""  # a finished grid folder to plot instead of out_dir
cell_notebook = ""  # notebook run per cell; empty: notebooks/05_train.ipynb
jobs = 1  # cells trained at once
'''),
    ("code", BOOTSTRAP),
    ("code", '''
import shutil
import subprocess

import pandas as pd

root = viz.project_root() or Path.cwd()
out = viz.resolve_out_dir(out_dir)
grid_path = Path(grid) if Path(grid).is_absolute() else root / grid
if smoke_mode() and out_dir == "runs/06_ablations":
    # CI: two cells, a handful of iterations, the runner's minimal stand-in notebook.
    out = viz.resolve_out_dir("runs/smoke/06_ablations")
    if (out / "smoke_grid.yaml").exists():
        shutil.rmtree(out)  # a fresh grid each time, so CI really runs it
    out.mkdir(parents=True, exist_ok=True)
    grid_path = out / "smoke_grid.yaml"
    grid_path.write_text(f"""name: smoke
description: supervised vs CrossMatch on toy_acdc, a few iterations (CI)
base: configs/crossmatch.yaml
set: {{data.name: toy_acdc, data.labeled: 3, data.size: 32, train.batch_size: 2,
      train.iterations: 4, train.val_every: 2, train.seed: {seed}, eval.distances: false}}
axes:
  variant:
    supervised: {{preset: supervised, perturb.image.enabled: false, perturb.feature.enabled: false,
                 distill.enabled: false, loss.normalizer: 1.0}}
    crossmatch: {{}}
baseline: {{variant: supervised}}
""")
    if not cell_notebook:
        cell_notebook = "stand-in"
sets = [f"data.name={dataset}"] * bool(dataset) + [f"data.root={data_root}"] * bool(data_root)
sets += [f"data.labeled={labeled}"] * bool(labeled) + [f"train.iterations={int(iterations)}"] * bool(iterations)
sets += list(overrides)
print("grid:", grid_path, "| results folder:", out)
'''),
    ("md", '''
## Run the grid

The command the cell runs is printed first; the same command works from a terminal.
Finished cells are skipped, so re-running this notebook only trains what is missing.
'''),
    ("code", '''
have_runner = (root / "ablations" / "__main__.py").exists()
if run_grid and not results:
    if not have_runner:
        raise RuntimeError("the ablations runner (ablations/) is not in this checkout")
    cmd = [sys.executable, "-m", "ablations", "run", str(grid_path), "--out", str(out), "--jobs", str(jobs)]
    cmd += [a for s in sets for a in ("--set", s)]
    if cell_notebook:
        cmd += ["--notebook", cell_notebook]
    print("$", " ".join(cmd))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    tail = (proc.stdout + proc.stderr).strip().splitlines()
    print("\\n".join(tail[-15:]))
    print(f"({time.perf_counter() - t0:.0f} s)")
    assert proc.returncode == 0, f"the grid run failed (exit {proc.returncode})"
'''),
    ("md", '''
## Load a finished grid and plot it

`results.csv` is long: one row per cell × split × metric × class. `viz.grid_frame` cuts it
to the mean test Dice of each cell; the bar shows the mean over seeds, dots the cells.
'''),
    ("code", '''
folder = Path(results) if results else out
table = pd.read_csv(folder / "results.csv")
print(f"{folder}: {table['cell'].nunique()} cells; columns {list(table.columns)}")
per_cell = viz.grid_frame(table)
display(per_cell)
fig_dir = out / "notebook_figures"
viz.show(viz.plot_grid_results(table, title=f"Grid {folder.name}: mean test Dice per variant"),
         fig_dir, "grid_test_dice")
'''),
    ("md", '''
### Per class

The same cut for each foreground class.
'''),
    ("code", '''
classes = [c for c in table["class"].unique() if c != "mean"]
test_dice = table[(table["split"] == "test") & (table["metric"] == "dice") & (table["class"] != "mean")]
by = "variant" if "variant" in table.columns else per_cell.columns[1]
fig, axes = viz.new_figure(1, 1, figsize=(max(6, 1.2 * test_dice[by].nunique() + 3), 3.8))
import seaborn as sns
sns.barplot(data=test_dice.assign(dice=100 * test_dice["value"]), x=by, y="dice", hue="class", ax=axes[0][0],
            errorbar="sd")
axes[0][0].set(title=f"Grid {folder.name}: test Dice per class", ylabel="Dice (%)", xlabel=by)
viz.show(fig, fig_dir, "grid_test_dice_per_class")
'''),
    ("md", '''
### The runner's own report

`summary.md` compares each variant with the baseline, paired over seeds; the runner's
figures are in `figures/` of the results folder.
'''),
    ("code", '''
if (folder / "summary.md").exists():
    display(Markdown((folder / "summary.md").read_text()))
from IPython.display import Image
for png in sorted((folder / "figures").glob("*.png"))[:4]:
    print(png.name)
    display(Image(filename=str(png), width=520))
'''),
    ("md", "## Checks"),
    ("code", '''
assert len(per_cell) >= 2, per_cell
assert per_cell.filter(like="dice").apply(lambda c: c.between(0, 1)).all().all()
print("ok:", len(per_cell), "cells")
'''),
]
