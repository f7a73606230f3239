"""The plumbing every tutorial notebook shares, behind one call:

    from crossmatch_lite.tutorial.notebook import setup
    ctx = setup("03_feature_perturbations", preset=preset, iterations=iterations, out_dir=out_dir)

`setup` styles the figures, finds the config whether Jupyter started in the project root
or in notebooks/, turns the notebook's short parameters into config overrides, and under
CROSSMATCH_LITE_SMOKE=1 shrinks the default run and moves it to runs/smoke/ (CI). The
returned `Context` holds the config and output folders and trains, saves and shows. Nothing
here changes how a model trains: that is `crossmatch_lite.train`.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from .. import __version__
from ..config import Config, load_config
from ..data import load_data
from ..train import Trainer
from .figures import apply_style, show
from .smoke import scaled, smoke_mode

# Iterations of each notebook's default run under smoke mode: enough to run every code
# path (validation included), few enough for CI.
SMOKE_ITERATIONS = {"00_quickstart": 16, "03_feature_perturbations": 8, "04_distillation": 8,
                    "04b_one_iteration_by_hand": 8, "05_train": 12, "07_your_data_your_idea": 6,
                    "08_3d_left_atrium": 4}
# Under smoke mode, evaluation recomputes BatchNorm statistics from 4 batches instead of 32
# (the same code path at an eighth of the cost), and training uses one thread: CI runs the
# notebook's kernel beside pytest on two cores, where two threads each only wait on the other.
SMOKE_OVERRIDES = ["eval.precise_bn_batches=4", "train.threads=1"]


# ---------------------------------------------------------------- paths and parameters
def project_root() -> Path | None:
    """The checkout that holds this package (the folder with configs/), if there is one."""
    root = Path(__file__).resolve().parents[2]
    return root if (root / "configs").is_dir() else None


def resolve_config_path(path: str | Path) -> Path:
    """A preset or resolved config file, found as given (relative to the working directory),
    then relative to notebooks/ and to the project root, then as a bare preset name
    ("crossmatch" -> configs/crossmatch.yaml). Papermill runs a notebook with the notebook's
    folder as working directory, a user may start Jupyter at the project root: both work."""
    p = Path(path)
    candidates = [p]
    root = project_root()
    if root is not None and not p.is_absolute():
        candidates += [root / "notebooks" / p, root / p, root / "configs" / p,
                       root / "configs" / f"{p.name}.yaml"]
    for c in candidates:
        if c.is_file():
            return c.resolve()
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"config {path!s} not found (tried {tried}); presets live in configs/, "
                            "e.g. configs/crossmatch.yaml")


def resolve_out_dir(out_dir: str | Path) -> Path:
    """Absolute paths as given; relative ones under the project root (so runs land in the
    git-ignored runs/ wherever Jupyter was started), or the working directory outside a checkout."""
    p = Path(out_dir)
    if p.is_absolute():
        return p
    root = project_root()
    return (root / p) if root is not None else p.resolve()


def convenience_overrides(dataset: str | None = None, data_root: str | None = None,
                          labeled: float | None = None, iterations: int | None = None,
                          seed: int | None = None, size: int | None = None,
                          batch_size: int | None = None, validations: int = 6) -> list[str]:
    """The notebooks' short parameters as `key=value` overrides (None or "" leaves a key alone).

    `train.val_every` is set so that the run validates `validations` times: a short run still
    draws a validation curve and picks its best checkpoint on val."""
    values = {"data.name": dataset or None, "data.root": data_root or None, "data.labeled": labeled,
              "data.size": int(size) if size else None,
              "train.batch_size": int(batch_size) if batch_size else None,
              "train.seed": None if seed is None else int(seed)}
    if iterations:
        values["train.iterations"] = int(iterations)
        values["train.val_every"] = max(1, int(iterations) // max(1, int(validations)))
    return [f"{k}={v}" for k, v in values.items() if v is not None]


# Notebook 08: the LA recipe on the synthetic volumes, or on the real scans at 2-core CPU size.
LA_PRESETS = {"toy_la": "configs/toy_la.yaml", "la": "configs/la_cpu.yaml"}


def la_preset(dataset: str, data_root: str = "") -> tuple[str, str]:
    """(preset file, data root) of notebook 08's `dataset`: toy_la (built in, no root) or
    la (configs/la_cpu.yaml on data_root, default data/LA of the project), which must be
    prepared (`python -m data_download la --dest data/LA`)."""
    if dataset not in LA_PRESETS:
        raise ValueError(f"dataset {dataset!r}: choose one of {', '.join(LA_PRESETS)}")
    if dataset == "toy_la":
        return LA_PRESETS[dataset], ""
    root = Path(data_root) if data_root else (project_root() or Path.cwd()) / "data" / "LA"
    if not (root / "train.list").is_file():
        raise FileNotFoundError(f"{root} holds no prepared Left Atrium data; run "
                                f"`python -m data_download la --dest {root}` or keep dataset = \"toy_la\"")
    return LA_PRESETS[dataset], str(root.resolve())


def notebook_config(config: str | Path, overrides: Iterable[str] = (),
                    convenience: Iterable[str] = ()) -> Config:
    """Load a preset, apply the convenience overrides, then the user's (which win), then
    switch the progress bar off (papermill logs and nbval would fill with it)."""
    return load_config(resolve_config_path(config), [*convenience, *overrides, "train.progress=false"])


def prepare_run_dir(out_dir: str | Path, resume: bool = True) -> Path:
    """Resolve the run folder; with resume=False an earlier run there is removed first
    (only a folder that looks like a run: it holds config.yaml)."""
    out = resolve_out_dir(out_dir)
    if not resume and (out / "config.yaml").exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def trained(cfg: Config, run_dir: str | Path, data=None, on_log: Callable | None = None, trainer_cls=None):
    """Train (or resume, or reuse a finished run in run_dir) and return (trainer, summary)
    with the best-on-validation checkpoint loaded into trainer.model."""
    trainer = (trainer_cls or Trainer)(cfg, run_dir, data=data, on_log=on_log)
    return trainer, trainer.run()


# ---------------------------------------------------------------- the notebook context
@dataclass
class Context:
    """What `setup` resolved for one notebook: its config, folders, and helpers."""

    name: str
    out: Path  # the notebook's output folder (runs/<name>, runs/smoke/<name> under smoke mode)
    cfg: Config | None  # None for notebooks that train through a grid (06)
    resume: bool = True
    config_file: str | Path | None = None
    overrides: list[str] = field(default_factory=list)  # the user's, applied last
    convenience: list[str] = field(default_factory=list)  # from the short parameters
    _data: object = None

    @property
    def fig_dir(self) -> Path:
        return self.out / "figures"

    @property
    def smoke(self) -> bool:
        return smoke_mode()

    def show(self, fig, name: str) -> None:
        """Save the figure as fig_dir/name.png and .svg and display it once."""
        show(fig, self.fig_dir, name)

    def config(self, preset: str | None = None, extra: Iterable[str] = ()) -> Config:
        """The notebook's config, or another preset's with the same parameters, plus `extra`
        overrides (before the user's, which always win)."""
        source = f"configs/{preset}.yaml" if preset else self.config_file
        return notebook_config(source, self.overrides, [*self.convenience, *extra])

    @property
    def data(self):
        """The notebook's dataset (loaded once)."""
        if self._data is None:
            self._data = load_data(self.cfg.data, seed=self.cfg.train.seed)
        return self._data

    def train(self, preset: str | None = None, tag: str | None = None, extra: Iterable[str] = (),
              on_log: Callable | None = None, trainer_cls=None):
        """Train `preset` (default: the notebook's config) in out/<tag or preset> (out itself
        for the notebook's own config), or reuse a finished run there; returns
        (trainer, summary) with best.pt loaded into trainer.model."""
        cfg = self.config(preset, extra) if (preset or extra) else self.cfg
        run_dir = prepare_run_dir(self.out / (tag or preset or ""), self.resume)
        same_data = cfg.data == self.cfg.data and cfg.train.seed == self.cfg.train.seed
        return trained(cfg, run_dir, data=self.data if same_data else None, on_log=on_log,
                       trainer_cls=trainer_cls)


def setup(name: str, *, config: str | None = None, preset: str | None = None, overrides: Iterable[str] = (),
          dataset: str | None = None, data_root: str | None = None, labeled: float | None = None,
          iterations: int | None = None, seed: int | None = None, size: int | None = 64,
          batch_size: int | None = 4, out_dir: str | None = None, resume: bool = True,
          apply_convenience: bool = True) -> Context:
    """Everything a notebook needs before its first picture (see the module docstring).

    `config` (a file) or `preset` (a name from configs/) chooses the config; the short
    parameters become overrides unless apply_convenience is False (the ablation runner
    passes a fully resolved config); `overrides` ("key=value") are applied last."""
    apply_style()
    default_out = f"runs/{name}"
    out_dir = out_dir or default_out
    if smoke_mode():
        if iterations:
            iterations = min(int(iterations), SMOKE_ITERATIONS.get(name, 24))
        if out_dir == default_out:
            out_dir, resume = f"runs/smoke/{name}", False  # CI: always a fresh, tiny run
    config_file = f"configs/{preset}.yaml" if preset else config
    convenience = []
    if apply_convenience:
        convenience = convenience_overrides(dataset, data_root, labeled, iterations, seed, size, batch_size,
                                            validations=scaled(6, 2)) + scaled([], SMOKE_OVERRIDES)
    cfg = notebook_config(config_file, overrides, convenience) if config_file else None
    ctx = Context(name, resolve_out_dir(out_dir), cfg, resume, config_file, list(overrides), convenience)
    ctx.out.mkdir(parents=True, exist_ok=True)
    where = ctx.out.relative_to(project_root()) if project_root() and ctx.out.is_relative_to(project_root()) \
        else ctx.out
    about = f"{cfg.preset} on {cfg.data.name}, {cfg.train.iterations} iterations | " if cfg else ""
    print(f"crossmatch_lite {__version__} | {about}output {where}" + (" | smoke mode" if smoke_mode() else ""))
    return ctx
