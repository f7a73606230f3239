"""Ground truth from the official CrossMatch code: one ACDC training step on a fixed batch.

Runs the unmodified official `ACDC/train_cross_match.py` (its `main()`, its `UNet` with
`need_fp`, its `DiceLoss`) for exactly one iteration on a small fixed input, and writes
what that iteration computed to a fixture that `tests/test_official_replay.py` replays
through our step. The official code is read from a checkout you fetch; none of it is
copied here. Made with:

    git clone https://github.com/AiEson/CrossMatch ../CrossMatch   # commit 59772e0
    python tests/official/make_fixture.py --official ../CrossMatch

What is patched at run time, and why (nothing of the step itself):
- `.cuda()`, `torch.distributed`, `DistributedDataParallel`, `SyncBatchNorm`: one CPU
  process, no launcher; they are identities or no-ops here.
- the script's `dataset.acdc` module (absent from the repository) and `DataLoader`: the
  loaders yield the fixture's batch once (labeled, unlabeled with its strong views and
  CutMix boxes, CutMix source with its strong views); tensorboard's writer is a no-op.
- the script's `UNet`: the official class, whose encoder and decoder are rebuilt from the
  official `Encoder`/`Decoder` with narrow channels (4-8-16-32-64), so the fixture stays small.
- dropout: a tape records every mask (tests/official/tape.py), since the two codes draw
  from torch's random stream in different orders.
- the optimiser: the official SGD, whose `step()` first reads the finished iteration
  (every loss term from the script's own variables, the gradients, the BatchNorm running
  statistics) and then stops the script.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from tape import DropoutTape  # noqa: E402

CHANNELS = [4, 8, 16, 32, 64]
B, SIZE, NCLASS = 2, 32, 4
# Loss variables of the official script -> our term names.
TERMS = {
    "loss_x": "x", "loss_u_s1": "s1", "loss_u_s2": "s2",
    "loss_weak_dec_w_t": "kd_w_weak", "loss_strong_dec_w_t": "kd_w_strong",
    "loss_weak_dec_w_s2_t": "kd_s_weak", "loss_strong_dec_w_s2_t": "kd_s_strong",
    "loss_weak_dec_w_s2": "kd_cross_weak", "loss_strong_dec_w_s2": "kd_cross_strong",
    "loss_u_w_kd": "kd", "loss": "loss",
}


class _OneStepDone(Exception):
    pass


def make_batch(seed: int) -> dict[str, torch.Tensor]:
    """Images on the 8-bit grid in [0, 1], labels with every class, and CutMix boxes that
    are neither square nor symmetric, so a transposed or misplaced box changes the loss."""
    g = torch.Generator().manual_seed(seed)

    def img():
        return (torch.rand(B, 1, SIZE, SIZE, generator=g) * 255).round() / 255

    boxes = []
    for rows, cols in (((3, 13), (6, 27)), ((15, 30), (2, 9))):
        box = torch.zeros(B, SIZE, SIZE)
        box[0, rows[0]:rows[1], cols[0]:cols[1]] = 1
        box[1, cols[0]:cols[1], rows[0] + 1:rows[1] - 4] = 1
        boxes.append(box)
    return {
        "img_x": img(), "mask_x": torch.randint(0, NCLASS, (B, SIZE, SIZE), generator=g),
        "img_u_w": img(), "img_u_s1": img(), "img_u_s2": img(),
        "cutmix_box1": boxes[0], "cutmix_box2": boxes[1],
        "img_u_w_mix": img(), "img_u_s1_mix": img(), "img_u_s2_mix": img(),
    }


def run_official(official: Path, batch: dict, conf_thresh: float, tape: DropoutTape, seed: int) -> dict:
    acdc = official / "ACDC"
    sys.path.insert(0, str(acdc))
    torch.manual_seed(seed)
    got: dict = {}

    # One process on the CPU: no devices, no process group.
    torch.nn.Module.cuda = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.SyncBatchNorm.convert_sync_batchnorm = staticmethod(lambda module, *a, **k: module)
    torch.nn.parallel.DistributedDataParallel = lambda module, **kw: module
    torch.distributed.barrier = lambda *a, **k: None
    torch.distributed.get_world_size = lambda *a, **k: 1
    torch.distributed.get_rank = lambda *a, **k: 0
    os.environ["LOCAL_RANK"] = "0"

    class Sampler:
        def __init__(self, *a, **k):
            pass

        def set_epoch(self, epoch):
            pass

    # The script builds its loaders in this order: labeled, unlabeled, CutMix source, val.
    feeds = [
        [(batch["img_x"], batch["mask_x"])],
        [tuple(batch[k].clone() for k in ("img_u_w", "img_u_s1", "img_u_s2", "cutmix_box1", "cutmix_box2"))],
        [tuple(batch[k].clone() for k in ("img_u_w_mix", "img_u_s1_mix", "img_u_s2_mix",
                                          "cutmix_box1", "cutmix_box2"))],
        [],
    ]

    class Loader:
        def __init__(self, dataset, sampler=None, **kw):
            self.sampler, self.items = sampler, feeds.pop(0)

        def __iter__(self):
            return iter(self.items)

        def __len__(self):
            return 1

    torch.utils.data.DataLoader = Loader
    torch.utils.data.distributed.DistributedSampler = Sampler

    dataset_pkg, dataset_mod = types.ModuleType("dataset"), types.ModuleType("dataset.acdc")

    class ACDCDataset:
        def __init__(self, *a, **k):
            self.ids = list(range(B))

    dataset_mod.ACDCDataset = ACDCDataset
    sys.modules.update({"dataset": dataset_pkg, "dataset.acdc": dataset_mod})
    tb = types.ModuleType("torch.utils.tensorboard")
    tb.SummaryWriter = lambda *a, **k: types.SimpleNamespace(add_scalar=lambda *a, **k: None)
    sys.modules["torch.utils.tensorboard"] = tb

    import util.dist_helper
    util.dist_helper.setup_distributed = lambda *a, **k: (0, 1)

    import model.unet as official_unet

    class NarrowUNet(official_unet.UNet):
        def __init__(self, in_chns, class_num):
            super().__init__(in_chns, class_num)
            params = {"in_chns": in_chns, "feature_chns": CHANNELS, "dropout": [0.05, 0.1, 0.2, 0.3, 0.5],
                      "class_num": class_num, "bilinear": False, "acti_func": "relu"}
            self.encoder = official_unet.Encoder(params)
            self.decoder = official_unet.Decoder(params)
            got["model"] = self
            got["init"] = {k: v.detach().clone() for k, v in self.state_dict().items()}


    class ReadingSGD(torch.optim.SGD):
        def step(self, closure=None):
            frame = sys._getframe(1)
            while frame is not None and "loss_u_w_kd" not in frame.f_locals:
                frame = frame.f_back
            local = frame.f_locals
            got["terms"] = {ours: float(local[theirs]) for theirs, ours in TERMS.items()}
            got["mask_ratio"] = float((local["conf_u_w"] >= local["conf_thresh"]).float().mean())
            model = got["model"]
            got["grads"] = {k: p.grad.detach().clone() for k, p in model.named_parameters()}
            got["after"] = {k: v.detach().clone() for k, v in model.state_dict().items()}
            raise _OneStepDone

    torch.optim.SGD = ReadingSGD

    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "acdc.yaml"
        # The official ACDC values (ACDC/configs/acdc.yaml) at the fixture's size.
        cfg.write_text(f"dataset: acdc\nnclass: {NCLASS}\ncrop_size: {SIZE}\ndata_root: .\nepochs: 1\n"
                       f"batch_size: {B}\nlr: 0.01\nconf_thresh: {conf_thresh}\ndrop_rate: 0.5\n"
                       "use_threshold_relax: False\nT: 1.0\n")
        sys.argv = ["train_cross_match.py", "--config", str(cfg), "--labeled-id-path", "-",
                    "--unlabeled-id-path", "-", "--save-path", str(Path(tmp) / "run")]
        import train_cross_match
        train_cross_match.UNet = NarrowUNet  # the name the script builds its model from
        with tape.installed():
            try:
                train_cross_match.main()
            except _OneStepDone:
                pass
            else:
                raise RuntimeError("the official script ended without an optimiser step")
    return got


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--official", type=Path, required=True, help="a checkout of AiEson/CrossMatch")
    p.add_argument("--out", type=Path, default=HERE / "acdc_step.pt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--conf-thresh", type=float, default=0.35,
                   help="low, so that an untrained net's pseudo-labels are partly kept and partly ignored")
    args = p.parse_args()
    commit = subprocess.run(["git", "-C", str(args.official), "rev-parse", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "unknown"
    batch = make_batch(args.seed)
    tape = DropoutTape(seed=args.seed)
    got = run_official(args.official, {k: v.clone() for k, v in batch.items()}, args.conf_thresh, tape, args.seed)
    fixture = {
        "source": {"repository": "AiEson/CrossMatch", "commit": commit, "script": "ACDC/train_cross_match.py",
                   "command": "python tests/official/make_fixture.py --official PATH "
                              f"--seed {args.seed} --conf-thresh {args.conf_thresh}",
                   "torch": str(torch.__version__)},
        "channels": CHANNELS, "conf_thresh": args.conf_thresh, "eta": 0.3,
        "batch": batch, "init": got["init"], "dropout": tape.records,
        "terms": got["terms"], "mask_ratio": got["mask_ratio"],
        "grad_norms": {k: float(g.norm()) for k, g in got["grads"].items()},
        "after": {k: v for k, v in got["after"].items() if "running" in k or "num_batches" in k},
    }
    torch.save(fixture, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB) from {commit[:7]}: "
          + ", ".join(f"{k} {v:.6f}" for k, v in got["terms"].items()) + f", mask ratio {got['mask_ratio']:.3f}")


if __name__ == "__main__":
    main()
