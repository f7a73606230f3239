"""Ground truth from the official CrossMatch code: one Left Atrium (3D) training step.

Runs the unmodified official `LA/code/train_cross_match.py` (its module-level training
loop, its `VNet` with `PertDropout`, its `dice_loss`, its AdamW) for exactly one iteration
(`--max_iterations 0`: the loop breaks after its first step) on a small fixed batch, and
writes what that iteration computed to `la_step.pt`, which
`tests/test_official_replay_la.py` replays through our step. The official code is read
from a checkout you fetch; none of it is copied here. Made with:

    git clone https://github.com/AiEson/CrossMatch ../CrossMatch   # commit 59772e0
    python tests/official/make_fixture_la.py --official ../CrossMatch

The command line is train.sh's (AdamW, base_lr 1e-3, conf_thresh 0.75, 8 labels). The
script runs in a temporary working directory, since it copies "." to ../model/<exp>/code
and saves its checkpoints there. What is patched at run time, and why (nothing of the
step itself):
- `.cuda()` of modules and tensors: one CPU process; identities here.
- modules that cannot be imported beside our torch: `tensorboardX` (a writer that
  writes nothing), `torchvision` (`transforms.Compose`, `utils.make_grid`, unused by the
  first iteration), and `medpy` (imported by test_util for the evaluation, which the
  first iteration does not reach) when it is absent.
- `dataloaders.la_heart.LAHeart` and `DataLoader`: each loader yields the fixture's
  batch once: labeled (image, label); unlabeled (weak, strong 1, strong 2, box 1, box 2);
  CutMix source (the same, from the sampler with replacement). The boxes are drawn by the
  official `obtain_cutmix_box` with `img_size` = the patch, so they have its axis layout.
- `networks.vnet.VNet`: a subclass of the official class built with n_filters=4 (channels
  4-8-16-32-64) and deterministic initial weights (lattice.py; the output convolution's
  weight bounds times LOGIT_GAIN, so that an untrained net is confident enough for the 0.75
  threshold to keep part of its pseudo-labels). At 592,218 parameters the weights are
  too large to store; the test regenerates them and checks their digest.
- dropout: a tape records every mask (tests/official/tape.py; the official VNet's
  Dropout3d of the bottleneck and the head, and its PertDropout streams), since the two
  codes draw from torch's random stream in different orders.

Inputs are stored as uint8 codes (value = (code - 128) / 32, exact in float32), labels and
boxes as bool; gradients and the AdamW update as per-tensor norm, sum and projection on
fixed signs (in full for tensors of at most FULL_NUMEL elements); BatchNorm buffers in
full; the strong views as the script pasted them, as digests; and the official dice_loss
on three small maps where its smoothing constant matters (dice_probes). The fixture stays under 0.5 MB.
"""
from __future__ import annotations

import argparse
import os
import random
import runpy
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1])]  # run as a script: its helpers and the project
from lattice import digest, lattice_init, signs  # noqa: E402
from tape import DropoutTape  # noqa: E402

from benchmarks.official import stub_modules  # noqa: E402

CHANNELS = [4, 8, 16, 32, 64]
N_FILTERS = 4
PATCH = (32, 32, 16)  # every axis a multiple of 16: four stride-2 steps
B = 2
LOGIT_GAIN = 4.0
FULL_NUMEL = 512
IMAGES = ("img_x", "img_u_w", "img_u_s1", "img_u_s2", "img_u_w_mix", "img_u_s1_mix", "img_u_s2_mix")
# Loss variables of the official script -> our term names.
TERMS = {
    "loss_x": "x", "loss_u_s1": "s1", "loss_u_s2": "s2",
    "loss_weak_dec_w_t": "kd_w_weak", "loss_strong_dec_w_t": "kd_w_strong",
    "loss_weak_dec_w_s2_t": "kd_s_weak", "loss_strong_dec_w_s2_t": "kd_s_strong",
    "loss_weak_dec_w_s2": "kd_cross_weak", "loss_strong_dec_w_s2": "kd_cross_strong",
    "loss_u_w_kd": "kd", "loss": "loss",
}
COMMAND = ["--exp", "fixture", "--conf_thresh", "0.75", "--label_num", "8", "--max_iterations", "0",
           "--optimizer", "AdamW", "--base_lr", "0.001"]


def decode_image(codes: torch.Tensor) -> torch.Tensor:
    return (codes.float() - 128) / 32


def tensor_stats(t: torch.Tensor, salt: int) -> list[float]:
    """norm, sum and the projection on fixed signs: a sign flip or a permutation of
    elements changes the last two even where the norm stays."""
    t = t.detach().double().cpu().flatten()
    return [float(t.norm()), float(t.sum()), float(t @ signs(t.numel(), salt))]


def install_stubs() -> None:
    """One CPU process, and the modules that cannot be imported here."""
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self

    sys.modules.update(stub_modules())


def make_batch(seed: int, obtain_cutmix_box) -> tuple[dict[str, torch.Tensor], int]:
    """Images as uint8 codes, labels as bool; boxes from the official sampler, drawn as its
    dataset draws them (per sample: box 1, then box 2), from the first seed at or after
    `seed` for which the sampler does not fail at this patch size (a box edge longer than
    an axis makes its np.random.randint raise) and each of box 1 and box 2 is non-empty in
    some sample."""
    g = torch.Generator().manual_seed(seed)
    batch = {k: torch.randint(0, 256, (B, 1) + PATCH, generator=g, dtype=torch.uint8) for k in IMAGES}
    batch["mask_x"] = torch.rand((B,) + PATCH, generator=g) < 0.4
    for box_seed in range(seed, seed + 1000):
        random.seed(box_seed)
        np.random.seed(box_seed)
        try:
            pairs = [(obtain_cutmix_box(img_size=PATCH, p=0.5), obtain_cutmix_box(img_size=PATCH, p=0.5))
                     for _ in range(B)]
        except ValueError:
            continue
        box1 = torch.stack([p[0] for p in pairs])
        box2 = torch.stack([p[1] for p in pairs])
        if box1.sum() > 0 and box2.sum() > 0:
            batch["cutmix_box1"], batch["cutmix_box2"] = box1.bool(), box2.bool()
            return batch, box_seed
    raise RuntimeError("no box seed found")


def dice_probes(dice_loss, seed: int) -> list[dict]:
    """The official LA dice_loss on small maps where its smoothing constant shows: the
    step's own Dice terms have thousands of voxels in their denominators, where 1e-5 and
    1e-4 differ by ~1e-8, so they cannot tell them apart. Here the kept voxels have no
    foreground label and a foreground probability of about 1e-3 (the case of a confident
    background late in training), or one foreground voxel, or none kept at all."""
    g = torch.Generator().manual_seed(seed + 1)
    probes = []
    for n_fg, keep_share in ((0, 0.5), (1, 0.5), (0, 0.0)):
        logits = torch.randn(B, 2, 4, 4, 4, generator=g)
        logits[:, 0] += 7.0  # background confident: p(foreground) ~ 1e-3
        labels = torch.zeros(B, 4, 4, 4, dtype=torch.long)
        labels.view(-1)[:n_fg] = 1
        keep = torch.rand(B, 4, 4, 4, generator=g) < keep_share
        keep.view(-1)[:n_fg] = True
        value = dice_loss(logits.softmax(dim=1)[:, 1], labels == 1, ignore=(~keep).float())
        probes.append({"logits": logits, "labels": labels.bool(), "keep": keep, "loss": float(value)})
    return probes


def hand_in_vnet(vnet, subclass) -> None:
    """Make the script's `from networks.vnet import VNet` get `subclass`. The official
    class looks its own name up in its module (super(VNet, self)), so that module keeps it
    and the script is handed a copy of the module whose VNet is the subclass."""
    handed = types.ModuleType(vnet.__name__)
    handed.__dict__.update(vnet.__dict__)
    handed.VNet = subclass
    sys.modules[vnet.__name__] = handed


def run_official(code: Path, batch: dict, tape: DropoutTape, workdir: Path, vnet) -> dict:
    """The official script's globals after its first (and only) iteration."""
    got: dict = {}

    class NarrowVNet(vnet.VNet):
        def __init__(self, *a, **k):
            k["n_filters"] = N_FILTERS
            super().__init__(*a, **k)
            lattice_init(self, {"out_conv": LOGIT_GAIN})
            got["init"] = {n: v.detach().clone() for n, v in self.state_dict().items()}

    hand_in_vnet(vnet, NarrowVNet)

    f = {k: decode_image(batch[k]) for k in IMAGES}
    box1, box2 = batch["cutmix_box1"].float(), batch["cutmix_box2"].float()
    feeds = {
        "labeled": (f["img_x"], batch["mask_x"].long()),
        "unlabeled": (f["img_u_w"], f["img_u_s1"], f["img_u_s2"], box1, box2),
        # the source's own boxes are drawn by its dataset and discarded by the script
        "source": (f["img_u_w_mix"], f["img_u_s1_mix"], f["img_u_s2_mix"], box2, box1),
    }

    class LAHeart(torch.utils.data.Dataset):
        def __init__(self, base_dir=None, mode="train", num=None, transform=None, id_path=None):
            self.mode = mode

        def __len__(self):
            return B

    class Loader:
        def __init__(self, dataset, batch_size=1, sampler=None, **kw):
            assert batch_size == B
            if dataset.mode == "train_l":
                key = "labeled"
            else:
                key = "source" if getattr(sampler, "replacement", False) else "unlabeled"
            self.items = [tuple(t.clone() for t in feeds[key])]

        def __iter__(self):
            return iter(self.items)

        def __len__(self):
            return 1

    import dataloaders.la_heart as la_heart
    la_heart.LAHeart = LAHeart
    torch.utils.data.DataLoader = Loader

    run = workdir / "run"
    run.mkdir()
    cwd, argv = os.getcwd(), sys.argv
    os.chdir(run)
    sys.argv = ["train_cross_match.py", "--root_path", str(workdir / "data")] + COMMAND
    try:
        with tape.installed():
            g = runpy.run_path(str(code / "train_cross_match.py"), run_name="__main__")
    finally:
        os.chdir(cwd)
        sys.argv = argv
    if g["iter_num"] != 1:
        raise RuntimeError(f"the official script ran {g['iter_num']} iterations, not one")
    g["init"] = got["init"]
    return g


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, required=True, help="a checkout of AiEson/CrossMatch")
    p.add_argument("--out", type=Path, default=HERE / "la_step.pt")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    commit = subprocess.run(["git", "-C", str(args.official), "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    code = (args.official / "LA" / "code").resolve()
    install_stubs()
    sys.path.insert(0, str(code))
    import dataloaders.la_heart as la_heart
    import networks.vnet as vnet

    batch, box_seed = make_batch(args.seed, la_heart.obtain_cutmix_box)
    tape = DropoutTape(seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        g = run_official(code, batch, tape, Path(tmp), vnet)

    net = g["net"]
    params = dict(net.named_parameters())
    init = g["init"]
    grads, updates, full = {}, {}, {}
    for i, (name, prm) in enumerate(params.items()):
        update = prm.detach() - init[name]
        grads[name] = tensor_stats(prm.grad, 10_000 + i)
        updates[name] = tensor_stats(update, 20_000 + i)
        if prm.numel() <= FULL_NUMEL:
            full[name] = {"grad": prm.grad.detach().clone(), "after": prm.detach().clone()}
    buffers = {k: v.detach().clone() for k, v in net.state_dict().items() if k not in params}
    dice_loss = sys.modules["utils.losses"].dice_loss  # the function the script imported
    assert g["dice_loss"] is dice_loss
    terms = {ours: float(g[theirs].detach()) for theirs, ours in TERMS.items()}
    used_thresh = float(g["args"].conf_thresh)  # iteration 0 reads the command-line value
    fixture = {
        "source": {"repository": "AiEson/CrossMatch", "commit": commit, "script": "LA/code/train_cross_match.py",
                   "argv": COMMAND,
                   "command": f"python tests/official/make_fixture_la.py --official PATH --seed {args.seed}",
                   "torch": str(torch.__version__)},
        "channels": CHANNELS, "patch": list(PATCH), "logit_gain": LOGIT_GAIN, "box_seed": box_seed,
        "init_digest": digest(init),
        "batch": batch,  # uint8 codes, bool labels and boxes, as the official loaders got them
        # digests of the strong views as the official script pasted the source's into the boxes
        "pasted_digest": {k: digest({k: g[k]}) for k in ("img_u_s1", "img_u_s2")},
        "conf_thresh": used_thresh, "next_conf_thresh": float(g["conf_thresh"]),
        "optimizer": {"name": type(g["optimizer"]).__name__,
                      **{k: v for k, v in g["optimizer"].defaults.items() if isinstance(v, (int, float, bool))},
                      "lr_used": float(g["base_lr"]), "lr_next": float(g["lr_"])},
        "dropout": tape.records,
        "terms": terms,
        "mask_ratio": float((g["conf_u_w"] >= used_thresh).float().mean()),
        "mask_ratio_source": float((g["conf_u_w_mix"] >= used_thresh).float().mean()),
        "dice_probes": dice_probes(dice_loss, args.seed),
        "grad_stats": grads, "update_stats": updates, "full": full, "buffers": buffers,
    }
    torch.save(fixture, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB) from {commit[:7]}, box seed {box_seed}, "
          f"{len(tape.records)} dropout masks: " + ", ".join(f"{k} {v:.6f}" for k, v in terms.items())
          + f", mask ratio {fixture['mask_ratio']:.3f} (source {fixture['mask_ratio_source']:.3f}), "
          f"boxes {batch['cutmix_box1'].flatten(1).sum(1).tolist()} {batch['cutmix_box2'].flatten(1).sum(1).tolist()}")


if __name__ == "__main__":
    main()
