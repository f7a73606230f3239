"""The training loop: data, step, optimizer, schedule, validation, checkpoints, final evaluation.

The method itself lives in `crossmatch_step.py`; this file only feeds it. `Trainer.run`
reads as the loop; what the run folder guarantees (lock, identity, resume, atomic files,
metrics cut back to the checkpoint) is `run.folder.RunFolder`, which it calls. A run
folder holds everything needed to inspect or continue a run:

    config.yaml     the resolved config        split.json    the exact data split
    metrics.jsonl   one row per logged step    latest.pt     model, optimiser, RNG states
    best.pt         the best model on val      summary.json  val and test metrics of best.pt
    .lock           held while a process trains into the folder (run/folder.py)
    events.out.tfevents.*   the rows of metrics.jsonl and val pictures for TensorBoard
                    (train.tensorboard; run/tensorboard.py)

Before anything in the folder is written, the run is checked (`preflight`): it must have
val cases to choose best.pt on and unlabeled images if its terms need them; then the
folder must not be in use, and a run already there must be this one.
"""
from __future__ import annotations

import importlib.util
import math
import sys
import time
from pathlib import Path
from typing import Callable, Collection

import numpy as np
import torch
from tqdm.auto import tqdm

from .batchnorm import recompute_statistics
from .config import Config, load_config
from .crossmatch_step import StepOutput, crossmatch_step, plan_from
from .data import SegData, load_data
from .dims import Dims
from .evaluate import evaluate_cases
from .models import build_model
from .run.checkpoints import load_checkpoint, load_weights
from .run.folder import RESUME_FREE_KEYS, RunFolder, RunLocked, RunMismatch, TrainingDiverged
from .run.runtime import (FreeCores, bf16_autocast, available_cores, configure_threads, memory_bytes,
                          pick_device, precision, seed_everything, step_memory_bytes, use_channels_last)
from .run.sampling import EpochSampler
from .run.tensorboard import NoBoard, open_board
from .switches import contradiction_warning
from .views import UnlabeledViews, make_unlabeled_views, views_for

__all__ = ["RESUME_FREE_KEYS", "RunLocked", "RunMismatch", "RunRefused", "Trainer", "TrainingDiverged", "train"]


class RunRefused(RuntimeError):
    """A run that cannot work with these data and switches; refused before training."""


def _device(name: str) -> torch.device:
    """pick_device, with a missing accelerator turned into a refusal the CLI prints as one line."""
    try:
        dev = pick_device(name)
    except RuntimeError as e:
        raise RunRefused(str(e)) from None
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise RunRefused(f"train.device={name}: torch sees {torch.cuda.device_count()} CUDA GPU(s); "
                         "use cuda:0 .. cuda:N-1, or auto")
    mps = getattr(torch.backends, "mps", None)
    if dev.type == "mps" and not (mps is not None and mps.is_available()):
        raise RunRefused(f"train.device={name} was asked for, but MPS is not available here; use cpu or auto")
    return dev


def cpu_threads(device: torch.device, threads: int) -> FreeCores | None:
    """Set this process's CPU threads. train.threads=0 on a CPU: follow the cores other
    processes leave free (re-measured every 5 s, asked after each step: the FreeCores
    returned); a fixed count otherwise (bitwise-repeatable runs)."""
    if device.type != "cpu":
        return None
    if threads == 0:
        return FreeCores()
    configure_threads(threads)
    return None


def check_resources(cfg: Config, device: torch.device) -> None:
    """Refuse requests the machine cannot serve, before they freeze or exhaust it: more CPU
    threads than this process has cores, or a step whose network levels alone need more
    memory than the machine has."""
    cores = available_cores()
    if device.type == "cpu" and cfg.train.threads > cores:
        raise RunRefused(f"train.threads={cfg.train.threads} asks for more threads than the {cores} core(s) this "
                         f"process may use; use 0 (the free cores) or at most {cores}")
    need, have = step_memory_bytes(cfg), memory_bytes()
    if device.type == "cpu" and have and need > have:
        grid = f"data.patch={cfg.data.patch}" if Dims.of_dataset(cfg.data.name).volumetric else \
            f"data.size={cfg.data.size}"
        raise RunRefused(f"one training step would need at least {need / 2**30:.1f} GiB (train.batch_size="
                         f"{cfg.train.batch_size}, {grid}, model.channels={cfg.model.channels}) but "
                         f"the machine has {have / 2**30:.1f} GiB; lower them")


def poly_lr(cfg: Config, it: int) -> float:
    horizon = cfg.train.poly_iterations or cfg.train.iterations
    return cfg.train.lr * (1 - it / horizon) ** cfg.train.poly_power


def sigmoid_rampup(current: float, length: float) -> float:
    """exp(-5 (1 - t)^2) for t = current / length clipped to [0, 1] (Laine & Aila, 2017)."""
    if length == 0:
        return 1.0
    phase = 1.0 - min(max(current, 0.0), length) / length
    return math.exp(-5.0 * phase * phase)


def conf_threshold(cfg: Config, it: int) -> float:
    """The confidence threshold of iteration `it` (0-based).

    sigmoid is the official LA schedule. The official loop updates its threshold after
    each step from the step's own counter, so iteration it >= 1 uses
        thresh_scale * (ramp_start + (conf_thresh - ramp_start) * sigmoid_rampup(it - 1, R)),
    and iteration 0 uses the command-line value, ramp_start, without the scale.
    """
    p = cfg.pseudo
    if p.threshold_schedule == "fixed":
        return p.conf_thresh
    if p.threshold_schedule == "sigmoid":
        if it == 0:
            return p.ramp_start
        ramp = sigmoid_rampup(it - 1, p.ramp_iterations or cfg.train.iterations)
        return p.thresh_scale * (p.ramp_start + (p.conf_thresh - p.ramp_start) * ramp)
    ramp = max(1.0, p.ramp_fraction * cfg.train.iterations)
    return p.ramp_start + (p.conf_thresh - p.ramp_start) * min(1.0, it / ramp)


def make_optimizer(cfg: Config, params) -> torch.optim.Optimizer:
    t = cfg.train
    if t.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=t.lr, weight_decay=t.weight_decay)
    return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, nesterov=t.nesterov, weight_decay=t.weight_decay)


class CompiledSteps:
    """The model as the step calls it (forward, encode, decode), each method compiled:
    torch.compile(module) compiles forward() only, and the step mostly calls encode/decode."""

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.forward, self.encode, self.decode = (torch.compile(getattr(model, m)) for m in
                                                  ("forward", "encode", "decode"))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def __getattr__(self, name: str):
        return getattr(self.model, name)




def make_samplers(data: SegData, plan, t) -> dict[str, EpochSampler]:
    """Only the samplers the step draws from: a supervised run on every training image has
    no unlabeled pool, and must not need one. Seeds: labeled seed, unlabeled seed + 1,
    the CutMix source seed + 2 (the augmentations draw from seed + 3)."""
    bu = t.unlabeled_batch_size or t.batch_size
    wanted = {"labeled": (data.labeled_idx, t.batch_size, t.seed),
              "unlabeled": (data.unlabeled_idx, bu, t.seed + 1) if plan.unlabeled else None,
              "source": (data.unlabeled_idx, bu, t.seed + 2) if plan.second_batch_source else None}
    return {k: EpochSampler(*v) for k, v in wanted.items() if v is not None and len(v[0])}


def preflight(cfg: Config, data: SegData, plan, samplers: dict) -> None:
    """Refuse, before any file is written, a run that would fail or mislead later."""
    if not data.val_cases:
        raise RunRefused(
            f"{cfg.data.name}: the split has no val cases, so no checkpoint can be chosen on val "
            "and the run would stop at its first validation. Prepare the val data (ISIC: "
            "python -m data_download isic2018 --splits val --dest DATA_ROOT) or pass a "
            "data.split_file whose 'val' list is not empty.")
    if plan.unlabeled and "unlabeled" not in samplers:
        raise RunRefused(
            f"data.labeled={cfg.data.labeled:g} labels every training image, so the "
            f"{cfg.preset} terms have no unlabeled images to learn from. For a fully supervised "
            "run use --config configs/supervised.yaml; otherwise label fewer.")
    if "labeled" not in samplers:
        raise RunRefused("the split has no labeled training images: check data.labeled and the data")
    for name, sampler in samplers.items():
        if sampler.batch > len(sampler.indices):
            raise RunRefused(f"a batch of {sampler.batch} {name} images is larger than the {len(sampler.indices)} "
                             f"{name} training images there are; lower train.batch_size "
                             "(train.unlabeled_batch_size for the unlabeled ones)")
    if cfg.train.tensorboard and importlib.util.find_spec("tensorboard") is None:
        raise RunRefused("train.tensorboard=true needs the tensorboard package: pip install tensorboard "
                         "(it is in requirements.txt), or --set train.tensorboard=false")
    warning = contradiction_warning(cfg)
    if warning:
        print(warning, file=sys.stderr)


def evaluate_weights(trainer: "Trainer", weights: dict) -> dict:
    """{which}_{bn}: {"val", "test"} for each of `weights` ("best", "latest") under running and
    precise BatchNorm statistics. Leaves the last evaluated weights in trainer.model."""
    evaluations = {}
    for which in ("best", "latest"):
        if which not in weights:
            continue
        if which == "latest" and "best" in weights and trainer.best_iteration == trainer.iteration:
            # best.pt was saved from these very weights: the same scores, computed once.
            for bn in ("running", "precise"):
                evaluations[f"latest_{bn}"] = evaluations[f"best_{bn}"]
            continue
        trainer.model.load_state_dict(weights[which])
        for bn in ("running", "precise"):
            model = trainer.eval_model(bn)
            evaluations[f"{which}_{bn}"] = {
                "val": trainer.evaluate(trainer.data.val_cases, distances=False, model=model),
                "test": trainer.evaluate(trainer.data.test_cases, distances=trainer.cfg.eval.distances, model=model),
            }
    return evaluations


def _run_folder(run_dir: str | Path, which: str) -> Path:
    """The run folder that Trainer.from_run reloads, refused in one line if it is none."""
    run = Path(run_dir)
    if not (run / "config.yaml").is_file():
        raise RunRefused(f"{run} is not a run folder (no config.yaml); pass the --out of a `train` run")
    if which not in ("best", "latest"):
        raise ValueError(f"which={which!r}: choose 'best' or 'latest'")
    return run


class Trainer:
    """One run: `Trainer(cfg, out_dir).run()` trains into `out_dir` (or resumes it, or returns its
    summary if finished); notebooks call `next_batch`, `train_step`, `evaluate` one at a time."""

    def __init__(self, cfg: Config, out_dir: str | Path, data: SegData | None = None,
                 on_log: Callable[[dict], None] | None = None):
        self.cfg, self.out, self.on_log = cfg, Path(out_dir), on_log
        t = cfg.train
        self.device = _device(t.device)
        check_resources(cfg, self.device)
        self.free_cores = cpu_threads(self.device, t.threads)
        seed_everything(t.seed)
        self.data = data if data is not None else load_data(cfg.data, seed=t.seed)
        self.folder = RunFolder(self.out, cfg, self.data)
        self.plan = plan_from(cfg)
        self.model = build_model(cfg.model, self.data.in_channels, self.data.num_classes).to(self.device)
        self.views = views_for(self.data.spatial_dims, cfg.data.patch)  # knows 2D or 3D (views.dims)
        self.channels_last = use_channels_last(self.device, t) and not self.views.dims.volumetric
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.step_model = CompiledSteps(self.model) if t.compile else self.model
        self.opt = make_optimizer(cfg, self.model.parameters())
        patch = self.views.patch if self.views.dims.volumetric else None  # some 3D patches rule bf16 out
        self.bf16, self.precision_why = precision(self.device, t, patch)  # what amp=auto chose, and why
        self.autocast = bf16_autocast(self.device, self.bf16)
        self.samplers = make_samplers(self.data, self.plan, t)
        self.aug_gen = torch.Generator().manual_seed(t.seed + 3)
        # The whole training set is small once resized: keep it on the device (3D: one
        # tensor per volume, as their sizes differ).
        self.images = self.views.store(self.data.train_images, self.device)
        self.labels = self.views.store(self.data.train_labels, self.device)
        self.iteration, self.best, self.best_iteration = 0, -1.0, -1
        self.seconds, self.cpu_seconds = 0.0, 0.0  # wall and process CPU time (comparable across load)
        self.board = NoBoard()  # a Board only while run() trains
        self.started: float | None = None  # time.monotonic() when run() began: train.max_minutes

    @classmethod
    def from_run(cls, run_dir: str | Path, which: str = "best", data: SegData | None = None,
                 overrides=()) -> "Trainer":
        """A Trainer for an existing run folder with its `which` checkpoint ("best" or
        "latest") loaded; nothing is trained. The one way to reload a run: the CLI's
        evaluate, the notebooks, predictions and the ablation report all come here, so
        they all score and picture the model the run's summary scored. The run's own
        split.json is used unless `data` or an override says otherwise."""
        run = _run_folder(run_dir, which)
        state = load_checkpoint(run / f"{which}.pt", "cpu")  # a bad checkpoint is refused before any data is read
        split = [f"data.split_file={run / 'split.json'}"] if data is None and (run / "split.json").is_file() else []
        cfg = load_config(run / "config.yaml", [*split, *overrides, "train.progress=false"])
        trainer = cls(cfg, run, data=data)
        trainer.load_weights(state["model"], run / f"{which}.pt")
        return trainer

    def load_weights(self, weights: dict, source: Path) -> None:
        """Load a state dict into the model, or say in one line why it does not fit."""
        load_weights(self.model, weights, source, f"{self.cfg.model.arch}, {self.data.num_classes} classes")

    @property
    def iteration_saved(self) -> int:
        """The iteration latest.pt holds (0: none yet)."""
        return self.folder.iteration_saved

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict:
        """Train (or resume, or reuse a finished run), evaluate, and return the summary, with
        the weights chosen on val (best.pt, or the latest without one) in self.model. A run
        stopped by train.max_minutes returns a summary marked "stopped" instead, without the
        final evaluation; running it again resumes."""
        self.started = time.monotonic()
        preflight(self.cfg, self.data, self.plan, self.samplers)
        with self.folder.locked():
            state, finished = self.folder.begin(self.device)
            if state is not None:
                restore_loop(self, state)
            summary = finished if finished is not None else self._train()
        if self.folder.best.exists():
            self.load_weights(load_checkpoint(self.folder.best, self.device)["model"], self.folder.best)
        return summary

    def _train(self) -> dict:
        """Train from self.iteration to the end (or the time limit), logging as it goes."""
        t = self.cfg.train
        # purge_step: TensorBoard drops what an interrupted process wrote past the checkpoint,
        # as the folder did for metrics.jsonl.
        self.board = open_board(t.tensorboard, self.out, self.iteration + 1, self.data.val_cases,
                                self.views.dims.volumetric)
        if t.progress:
            print(settings_line(self), file=sys.stderr)
        bar = tqdm(total=t.iterations, initial=self.iteration, disable=not t.progress,
                   desc=f"{self.cfg.preset} on {self.cfg.data.name}", dynamic_ncols=True,
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr)
        try:
            with self.folder.metrics(self.board.scalars, self.on_log) as log:
                while self.iteration < t.iterations:
                    row = self._timed_step()
                    if self.iteration % t.log_every == 0 or self.iteration == 1:
                        log(row)
                        bar.set_postfix({k: f"{row[k]:.3f}" for k in ("loss", "x", "s", "kd") if k in row},
                                        refresh=False)
                    bar.update(1)
                    if self.iteration % t.val_every == 0 or self.iteration == t.iterations:
                        self._validate_and_save(log)
                    if self.iteration < t.iterations and self._out_of_time():
                        break
        finally:
            bar.close()
            self.board.close()
            self.board = NoBoard()
        return self._stop() if self.iteration < t.iterations else self.finish()

    def _timed_step(self) -> dict:
        start, cpu_start = time.perf_counter(), time.process_time()
        row = self.train_step()
        self.seconds += time.perf_counter() - start
        self.cpu_seconds += time.process_time() - cpu_start
        row["seconds"] = round(self.seconds, 3)
        if self.free_cores is not None:
            row["threads"] = self.free_cores.update()
        return row

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor, UnlabeledViews | None]:
        """One iteration's inputs, as `train_step` feeds them to `crossmatch_step`: the weak
        view of a labeled batch `x` (B, C, *spatial) with its masks `y` (B, *spatial), and the
        unlabeled views (None for a supervised run). Draws from the run's samplers and
        augmentation generator, so notebooks that call it see exactly what training sees."""
        x, y = self.views.weak(*self._draw("labeled"), self.aug_gen)
        views = None
        if self.plan.unlabeled:
            u_w = self.views.weak_unlabeled(self._draw("unlabeled")[0], self.aug_gen)
            m_w = None
            if self.plan.second_batch_source:
                m_w = self.views.weak_unlabeled(self._draw("source")[0], self.aug_gen)
            views = make_unlabeled_views(u_w, m_w, self.cfg.perturb.image, self.aug_gen, self.views)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, y, views

    def _draw(self, name: str):
        """The next (images, labels) of sampler `name`, as stored (the views make them float)."""
        idx = self.samplers[name].next()
        return self.views.gather(self.images, idx), self.views.gather(self.labels, idx)

    def step_loss(self, x: torch.Tensor, y: torch.Tensor, views: UnlabeledViews | None,
                  thresh: float) -> StepOutput:
        """The loss of one iteration; a subclass may add its own terms (notebook 07)."""
        return crossmatch_step(self.step_model, x, y, views, self.plan, thresh)

    def train_step(self) -> dict:
        cfg, it = self.cfg, self.iteration
        lr = poly_lr(cfg, it)
        for g in self.opt.param_groups:
            g["lr"] = lr
        thresh = conf_threshold(cfg, it)
        x, y, views = self.next_batch()
        self.model.train()
        with self.autocast:
            out = self.step_loss(x, y, views, thresh)
        if not torch.isfinite(out.loss):
            raise self.folder.diverged(f"the loss became {out.loss.item()} at iteration {it} (terms: {out.terms})")
        self.opt.zero_grad(set_to_none=True)
        out.loss.backward()
        self.opt.step()
        self.iteration += 1
        row = {"iteration": self.iteration, "loss": out.loss.item(), **out.terms, "lr": lr}
        if self.plan.unlabeled:
            row.update(mask_ratio=out.mask_ratio, conf_thresh=thresh)
        return row

    # ------------------------------------------------------------------ validate and save
    def _validate_and_save(self, log) -> None:
        self._check_finite()
        # The board's few picture cases keep their predictions (none when it is off).
        val = self.evaluate(self.data.val_cases, keep_predictions=self.board.picture_ids)
        dice = val["dice"]["mean"] or 0.0
        row = {"iteration": self.iteration, "val_dice": dice,
               **{f"val_dice_{k}": v for k, v in val["dice"].items() if k != "mean"}}
        if dice > self.best:
            self.best, self.best_iteration = dice, self.iteration
            self.folder.save_best(self.model.state_dict(), self.iteration, dice)
        self.folder.save_latest(loop_state(self))
        log(row)
        self.board.pictures(val.get("_predictions", {}), self.iteration)

    def _check_finite(self) -> None:
        """Refuse to checkpoint non-finite weights: latest.pt must stay a state worth resuming."""
        if not all(torch.isfinite(v).all() for v in self.model.state_dict().values() if v.is_floating_point()):
            raise self.folder.diverged(f"the weights hold non-finite values at iteration {self.iteration}")

    def _out_of_time(self) -> bool:
        limit = self.cfg.train.max_minutes
        return limit is not None and self.started is not None and time.monotonic() - self.started >= 60 * limit

    def _stop(self) -> dict:
        """Stop at train.max_minutes: a checkpoint of this very iteration, without a validation
        (validations, and so best.pt, stay at the iterations an uninterrupted run has them),
        and where the run stands. summary.json is not written: it marks a finished run (and
        an ablation cell as done)."""
        t = self.cfg.train
        if self.iteration_saved != self.iteration:
            self._check_finite()
            self.folder.save_latest(loop_state(self))
        print(f"stopped at the time limit (train.max_minutes={t.max_minutes:g}) after iteration "
              f"{self.iteration} of {t.iterations}; {self.folder.latest} holds it: run the same command "
              "again to resume", file=sys.stderr)
        return {"stopped": "time limit", **summary_head(self), "iterations_planned": t.iterations,
                "best_val_dice": self.best if self.best_iteration >= 0 else None}

    def finish(self) -> dict:
        """Evaluate the weights chosen on val (never on test) and the latest weights, each
        with running and with recomputed ("precise") BatchNorm statistics. The headline
        `val`/`test` entries are best.pt under eval.bn, the evaluation that chose it."""
        weights = {"latest": {k: v.detach().clone() for k, v in self.model.state_dict().items()}}
        if self.folder.best.exists():
            weights["best"] = load_checkpoint(self.folder.best, self.device)["model"]
        evaluations = evaluate_weights(self, weights)
        chosen = "best" if "best" in weights else "latest"
        headline = f"{chosen}_{self.cfg.eval.bn}"
        self.model.load_state_dict(weights[chosen])
        summary = {**summary_head(self), "headline": headline, "val": evaluations[headline]["val"],
                   "test": evaluations[headline]["test"], "evaluations": evaluations}
        self.folder.write_summary(summary)
        return summary

    # ------------------------------------------------------------------ evaluation
    def eval_model(self, bn: str | None = None) -> torch.nn.Module:
        """The model as evaluated. bn "running" (default: eval.bn) uses the trained running
        statistics; "precise" recomputes BatchNorm statistics on a copy, from the training
        images this run learns from (labeled only for a supervised run). Training is not
        affected either way."""
        e = self.cfg.eval
        if (bn or e.bn) == "running":
            return self.model
        idx = self.data.labeled_idx if not self.plan.unlabeled else \
            np.concatenate([self.data.labeled_idx, self.data.unlabeled_idx])
        images = self.views.bn_images(self.images, idx)
        return recompute_statistics(self.model, images, e.precise_bn_batches, e.precise_bn_batch_size,
                                    seed=self.cfg.train.seed, autocast=bf16_autocast(self.device, self.bf16))

    def evaluate(self, cases, distances: bool = False, keep_predictions: bool | Collection[str] = False,
                 model: torch.nn.Module | None = None) -> dict:
        d = self.data
        return evaluate_cases(model if model is not None else self.eval_model(), cases, d.num_classes,
                              d.class_names, self.cfg.data.size, self.device, distances=distances,
                              batch=self.cfg.eval.batch_slices,
                              autocast=bf16_autocast(self.device, self.bf16),
                              keep_predictions=keep_predictions, window=self.window)

    @property
    def window(self) -> dict | None:
        """The sliding window of 3D evaluation (None for 2D data)."""
        return self.views.window(self.cfg.eval.stride, self.data.downsample)


# The loop's own state, kept in latest.pt and restored from it: module functions beside
# the class so that Trainer reads as the loop; each names every attribute it touches.
def loop_state(trainer: Trainer) -> dict:
    """What latest.pt holds of the loop (the run folder adds the run's identity)."""
    t = trainer
    return {"model": t.model.state_dict(), "optimizer": t.opt.state_dict(), "iteration": t.iteration,
            "best": t.best, "best_iteration": t.best_iteration, "seconds": t.seconds,
            "cpu_seconds": t.cpu_seconds, "samplers": {k: s.state_dict() for k, s in t.samplers.items()},
            "aug_gen": t.aug_gen.get_state(), "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_loop(trainer: Trainer, state: dict) -> None:
    """The loop where `state` (a loop_state) left it: weights, optimiser, counters, every draw."""
    t = trainer
    t.model.load_state_dict(state["model"])
    t.opt.load_state_dict(state["optimizer"])
    t.iteration = state["iteration"]
    t.best, t.best_iteration = state["best"], state["best_iteration"]
    t.seconds, t.cpu_seconds = state.get("seconds", 0.0), state.get("cpu_seconds", 0.0)
    for k, s in t.samplers.items():
        s.load_state_dict(state["samplers"][k])
    t.aug_gen.set_state(state["aug_gen"])
    torch.set_rng_state(state["torch_rng"])
    if state.get("cuda_rng") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])


def settings_line(trainer: Trainer) -> str:
    """What the run computes in, e.g. "bf16 autocast (train.amp=auto: this CPU has native bf16
    (AVX512-BF16)), channels-last on": a run's speed depends on it more than on anything else."""
    t = trainer
    return (f"{'bf16 autocast' if t.bf16 else 'fp32'} ({t.precision_why}), "
            f"channels-last {'on' if t.channels_last else 'off'}")


def summary_head(trainer: Trainer) -> dict:
    """The entries every summary starts with, finished or stopped."""
    t = trainer
    return {"preset": t.cfg.preset, "dataset": t.cfg.data.name, "labeled": t.cfg.data.labeled,
            "iterations": t.iteration, "best_iteration": t.best_iteration,
            "train_seconds": round(t.seconds, 1), "train_cpu_seconds": round(t.cpu_seconds, 1),
            "device": str(t.device), "precision": "bf16" if t.bf16 else "fp32", "precision_why": t.precision_why,
            "channels_last": t.channels_last}


def train(cfg: Config, out_dir: str | Path, data: SegData | None = None,
          on_log: Callable[[dict], None] | None = None) -> dict:
    return Trainer(cfg, out_dir, data=data, on_log=on_log).run()
