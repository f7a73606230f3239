"""The one typed configuration tree of a run.

Every knob of the method lives here, with the official CrossMatch ACDC value as its
default, so that `Config()` *is* the crossmatch preset. YAML presets and `--set`
overrides are applied on top and checked against these dataclasses: an unknown key is
an error that lists the valid ones, and a value of the wrong type is refused before
any training starts.
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml


@dataclass
class DataConfig:
    name: str = "acdc"  # toy_acdc | toy_isic | acdc | isic2018 | folder | toy_la | la
    root: str = "data/ACDC"  # prepared dataset folder (ignored by the toy datasets)
    labeled: float = 3  # ACDC/toy_acdc: labeled patients; ISIC: fraction (<1) or count
    size: int = 256  # square training size; official "crop_size" (a resize, not a crop)
    split_file: Optional[str] = None  # JSON split written by an earlier run, to reuse it
    cache: bool = True  # keep the resized training arrays in <root>/cache for fast reloads
    # 3D data (la, toy_la) only:
    patch: list = field(default_factory=lambda: [112, 112, 80])  # training crop (x, y, z) in voxels
    downsample: int = 1  # shrink every volume by this factor first (la_cpu: 2)
    val_count: int = 8  # training scans held out as val (LA has no official val split)


@dataclass
class ModelConfig:
    # SSL4MIS 2D UNet as the official CrossMatch ACDC code builds it; arch vnet is the 3D
    # V-Net of the official LA code (channels 16..256, encoder_dropout [0, 0, 0, 0, 0.5]).
    arch: str = "unet"  # unet | vnet
    channels: list = field(default_factory=lambda: [16, 32, 64, 128, 256])
    encoder_dropout: list = field(default_factory=lambda: [0.05, 0.1, 0.2, 0.3, 0.5])
    upsample: str = "bilinear"  # unet: bilinear (what the official code runs) | transpose (ConvTranspose2d)
    head_dropout: float = 0.0  # vnet: Dropout3d before the output convolution of a plain forward (official 0.5)


@dataclass
class ImagePerturbConfig:
    enabled: bool = True
    strong_views: int = 2  # 0, 1 or 2 strongly augmented copies of the unlabeled batch
    color_jitter: bool = True
    jitter_p: float = 0.8
    brightness: float = 0.5
    contrast: float = 0.5
    saturation: float = 0.5
    hue: float = 0.25
    blur: bool = True
    blur_p: float = 0.5
    blur_sigma: list = field(default_factory=lambda: [0.1, 2.0])
    cutmix: bool = True
    cutmix_p: float = 0.5
    cutmix_area: list = field(default_factory=lambda: [0.02, 0.4])
    cutmix_ratio: list = field(default_factory=lambda: [0.3, 1 / 0.3])
    cutmix_source: str = "second_batch"  # second_batch (official) | in_batch (batch rolled by one)
    # 3D strong views (torchio, as the official LA code): bias field then gamma with probability
    # bias_gamma_p, then the blur above. The colour jitter keys are 2D only.
    bias_gamma: bool = True
    bias_gamma_p: float = 0.8
    bias_coefficient: float = 0.5  # torchio RandomBiasField(coefficients)
    log_gamma: list = field(default_factory=lambda: [-0.5, 0.5])  # torchio RandomGamma(log_gamma)
    # 3D box placement: official (the LA code's axis mix-up, views3d.py) | clean (each axis its own range)
    cutmix_box_axes: str = "official"


@dataclass
class FeaturePerturbConfig:
    enabled: bool = True
    weak_rate: float = 0.25  # Dropout2d rate of the weak stream (official: 0.5 * 0.5)
    strong_rate: Optional[float] = 0.75  # of the strong stream (0.5 * 1.5); null: no strong stream
    on_strong_view: bool = True  # also decode the last strong view through the streams


@dataclass
class PerturbConfig:
    image: ImagePerturbConfig = field(default_factory=ImagePerturbConfig)
    feature: FeaturePerturbConfig = field(default_factory=FeaturePerturbConfig)


@dataclass
class DistillConfig:
    enabled: bool = True
    teacher_terms: bool = True  # a, b (weak view streams) and c, d (strong view streams) taught by p_w
    cross_terms: bool = True  # e, f: strong-view streams taught by the matching weak-view streams
    eta: float = 0.3
    mode: str = "hard"  # hard: masked Dice on argmax labels (official code) | soft: masked KL
    temperature: float = 1.0  # soft mode only


@dataclass
class PseudoConfig:
    conf_thresh: float = 0.95
    # fixed | ramp (linear from ramp_start to conf_thresh over ramp_fraction of training) |
    # sigmoid (the official LA schedule: sigmoid ramp-up from ramp_start to conf_thresh over
    # ramp_iterations, times thresh_scale; train.py conf_threshold says exactly)
    threshold_schedule: str = "fixed"
    ramp_start: float = 0.5
    ramp_fraction: float = 0.3
    ramp_iterations: Optional[int] = None  # sigmoid only; None: train.iterations
    thresh_scale: float = 1.0  # sigmoid only; the official LA code multiplies by ln 2 (0.693147)
    # Mode of the no-gradient pass on the CutMix source: official (train mode, as the official
    # code since 2025-12-10) | eval (official before that) | train | batch_stats (crossmatch_step.py)
    source_pass_mode: str = "official"


@dataclass
class LossConfig:
    # L = (supervised*L_x + strong*mean(L_s_i) + distill*L_kd) / normalizer
    supervised: float = 1.0
    strong: float = 0.5
    distill: float = 0.5
    normalizer: float = 2.0
    # Dice of every loss term: over all classes (official ACDC) or the foreground only (official LA)
    dice_background: bool = True
    dice_smooth: float = 1e-4  # official ACDC 1e-4, LA 1e-5


@dataclass
class TrainConfig:
    iterations: int = 30000
    optimizer: str = "sgd"  # sgd (official ACDC: momentum, nesterov) | adamw (official LA)
    batch_size: int = 12  # labeled images per iteration
    unlabeled_batch_size: Optional[int] = None  # default: batch_size (official)
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    poly_iterations: Optional[int] = None  # length of the poly decay; None: train.iterations (LA: 17000)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    threads: int = 0  # CPU threads for torch; 0: one per physical core
    val_every: int = 500
    log_every: int = 10
    amp: str = "auto"  # auto: bf16 on CUDA and on CPUs with native bf16, else fp32 | bf16 | off
    channels_last: str = "auto"  # auto (on for CUDA and CPU) | on | off
    compile: bool = False
    progress: bool = True


@dataclass
class EvalConfig:
    batch_slices: int = 32  # slices per forward pass at evaluation
    distances: bool = True  # HD95/ASD on the final val/test evaluation (slower than Dice)
    # BatchNorm statistics of the model that selects best.pt on val and gives the headline
    # numbers: running (the trained running averages, as the official code and the
    # literature) | precise (recomputed on clean training images; batchnorm.py says why).
    # summary.json reports both either way, for best.pt and for the latest weights.
    bn: str = "running"
    precise_bn_batches: int = 32
    precise_bn_batch_size: int = 16
    # 3D only: sliding-window step in voxels of the training resolution (official LA: 18, 18, 4)
    stride: list = field(default_factory=lambda: [18, 18, 4])


@dataclass
class Config:
    preset: str = "crossmatch"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    perturb: PerturbConfig = field(default_factory=PerturbConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


CHOICES = {
    "data.name": ("toy_acdc", "toy_isic", "acdc", "isic2018", "folder", "toy_la", "la"),
    "model.arch": ("unet", "vnet"),
    "train.optimizer": ("sgd", "adamw"),
    "perturb.image.cutmix_box_axes": ("official", "clean"),
    "perturb.image.cutmix_source": ("second_batch", "in_batch"),
    "perturb.image.strong_views": (0, 1, 2),
    "model.upsample": ("bilinear", "transpose"),
    "distill.mode": ("hard", "soft"),
    "pseudo.threshold_schedule": ("fixed", "ramp", "sigmoid"),
    "pseudo.source_pass_mode": ("official", "eval", "train", "batch_stats"),
    "train.amp": ("auto", "bf16", "off"),
    "eval.bn": ("running", "precise"),
    "train.channels_last": ("auto", "on", "off"),
}


DATASETS_3D = ("toy_la", "la")


class ConfigError(ValueError):
    """A config file or override that does not fit the Config tree."""


def valid_keys(node: Any = None, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the tree, e.g. 'distill.eta'."""
    node = Config() if node is None else node
    keys = []
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            keys += valid_keys(value, f"{prefix}{f.name}.")
        else:
            keys.append(f"{prefix}{f.name}")
    return keys


def _field_type(node: Any, name: str) -> Any:
    hints = typing.get_type_hints(type(node))
    return hints[name]


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the declared type, or explain why it cannot be."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or int(value) != value:
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        word = ("on" if value else "off") if isinstance(value, bool) else None
        if word is not None and word in CHOICES.get(key, ()):
            return word  # YAML 1.1 reads on/off as booleans
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return str(value)
    if tp is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return list(value)
    return value


def _unknown(key: str) -> ConfigError:
    # One line, so a refusal never scrolls the reason off screen: near matches, the keys
    # of the section the user aimed at, and where the full list is.
    keys = valid_keys()
    near = [k for k in keys if k.split(".")[-1] in key or key.split(".")[-1][:4] in k]
    hint = f" Did you mean: {', '.join(near[:5])}?" if near else ""
    section = key.rsplit(".", 1)[0] + "." if "." in key else ""
    siblings = [k for k in keys if section and k.startswith(section)]
    if siblings:
        hint += f" Keys of {section[:-1]}: {', '.join(k[len(section):] for k in siblings)}."
    return ConfigError(f"unknown config key '{key}'.{hint} "
                       f"Valid keys are listed by `python -m crossmatch_lite keys` ({len(keys)} keys, "
                       f"e.g. {', '.join(keys[:3])}, train.iterations).")


def set_key(cfg: Config, key: str, value: Any) -> None:
    """Set one dotted key, checking that it exists and that the value has its type."""
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        # Only declared fields: getattr alone would also walk into `__class__` and the like.
        is_field = dataclasses.is_dataclass(node) and part in {f.name for f in dataclasses.fields(node)}
        child = getattr(node, part) if is_field else None
        if not dataclasses.is_dataclass(child):
            raise _unknown(key)
        node = child
    leaf = parts[-1]
    if not dataclasses.is_dataclass(node) or leaf not in {f.name for f in dataclasses.fields(node)}:
        raise _unknown(key)
    if dataclasses.is_dataclass(getattr(node, leaf)):
        if not isinstance(value, dict):
            raise ConfigError(f"{key} is a section; set its keys, e.g. {valid_keys(getattr(node, leaf), key + '.')[0]}")
        for k, v in value.items():
            set_key(cfg, f"{key}.{k}", v)
        return
    coerced = _coerce(value, _field_type(node, leaf), key)
    allowed = CHOICES.get(key)
    if allowed is not None and coerced not in allowed:
        raise ConfigError(f"{key}: {coerced!r} is not one of {', '.join(map(str, allowed))}")
    setattr(node, leaf, coerced)


def apply_dict(cfg: Config, data: dict, prefix: str = "") -> None:
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            apply_dict(cfg, v, key + ".")
        else:
            set_key(cfg, key, v)


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def parse_override(text: str) -> tuple[str, Any]:
    """'distill.eta=0.3' -> ('distill.eta', 0.3); the value is read as YAML."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key=value, e.g. distill.eta=0.3")
    key, raw = text.split("=", 1)
    if not _KEY.match(key.strip()):
        raise ConfigError(f"override {text!r}: {key.strip()!r} is not a config key; keys are dotted names "
                          "like distill.eta (`python -m crossmatch_lite keys` lists them)")
    try:
        value = yaml_load(raw) if raw.strip() != "" else ""
    except yaml.YAMLError as e:
        raise ConfigError(f"override {text!r}: cannot read value {raw!r} ({_yaml_problem(e)}); "
                          "quote strings, write lists as [a, b]") from None
    return key.strip(), value


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | tuple = ()) -> Config:
    """Defaults, then the YAML file (if any), then the key=value overrides, in that order."""
    cfg = Config()
    if path is not None:
        _apply_file(cfg, Path(path), ())
    for text in overrides:
        set_key(cfg, *parse_override(text))
    validate(cfg)
    return cfg


def _apply_file(cfg: Config, p: Path, chain: tuple) -> None:
    """Apply one YAML file; a top-level `extends: other.yaml` (relative to this file) is
    applied first, so a preset states only how it differs from the one it builds on."""
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; presets live in configs/ (e.g. configs/crossmatch.yaml)")
    if p.resolve() in chain:
        raise ConfigError(f"{p}: `extends` loops back to itself ({' -> '.join(str(c) for c in chain + (p,))})")
    try:
        data = yaml_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{p} is not valid YAML ({_yaml_problem(e)}); fix that line, "
                          "or start again from a preset in configs/") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file {p}: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{p}: expected a mapping of sections at the top level")
    base = data.pop("extends", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"{p}: extends must be a file name, e.g. extends: la.yaml")
        _apply_file(cfg, p.parent / base, chain + (p.resolve(),))
    try:
        apply_dict(cfg, data)
    except ConfigError as e:
        raise ConfigError(f"{p}: {e}") from None


def validate(cfg: Config) -> None:
    """Cross-field checks that single-key typing cannot express."""
    if not 0.0 <= cfg.distill.eta <= 1.0:
        raise ConfigError(f"distill.eta must lie in [0, 1], got {cfg.distill.eta}")
    for key in ("weak_rate", "strong_rate"):
        rate = getattr(cfg.perturb.feature, key)
        if rate is not None and not 0.0 <= rate < 1.0:
            raise ConfigError(f"perturb.feature.{key} must lie in [0, 1), got {rate}")
    if cfg.train.iterations < 1:
        raise ConfigError("train.iterations must be at least 1")
    if cfg.train.poly_iterations is not None and cfg.train.poly_iterations < cfg.train.iterations:
        raise ConfigError(f"train.poly_iterations ({cfg.train.poly_iterations}) must be at least train.iterations "
                          f"({cfg.train.iterations}): the poly learning rate would turn negative; leave it unset "
                          "to decay over train.iterations")
    three_d = cfg.data.name in DATASETS_3D
    if three_d != (cfg.model.arch == "vnet"):
        raise ConfigError(f"data.name={cfg.data.name} is {'3D' if three_d else '2D'} data, but model.arch="
                          f"{cfg.model.arch}; use model.arch={'vnet' if three_d else 'unet'} "
                          f"(presets: configs/{'la' if three_d else 'crossmatch'}.yaml)")
    if not three_d and cfg.data.size % 16:
        raise ConfigError(f"data.size must be a multiple of 16 (the UNet halves it four times), got {cfg.data.size}")
    if three_d and (len(cfg.data.patch) != 3 or any(int(v) != v or v % 16 for v in cfg.data.patch)):
        raise ConfigError(f"data.patch must be three multiples of 16 (the VNet halves it four times), "
                          f"got {cfg.data.patch}")
    if three_d and len(cfg.eval.stride) != 3:
        raise ConfigError(f"eval.stride must be three step sizes (x, y, z), got {cfg.eval.stride}")
    if len(cfg.model.channels) != 5 or len(cfg.model.encoder_dropout) != 5:
        raise ConfigError("model.channels and model.encoder_dropout need 5 entries, one per network level")
    if cfg.model.arch == "vnet" and any(cfg.model.encoder_dropout[:4]):
        raise ConfigError("the VNet drops out its bottleneck only: model.encoder_dropout must be [0, 0, 0, 0, p], "
                          f"got {cfg.model.encoder_dropout}")
    check_ranges(cfg)


def to_dict(cfg: Config) -> dict:
    return dataclasses.asdict(cfg)


def save_config(cfg: Config, path: str | os.PathLike) -> None:
    from .run.files import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(to_dict(cfg), sort_keys=False))


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# ---------------------------------------------------------------------------- YAML reading
# PyYAML follows YAML 1.1, where a float needs a dot: `1e-3` is read as the string "1e-3".
# Users write learning rates that way, so exponent forms without a dot are floats here too.
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, list("-+0123456789."))


def yaml_load(text: str) -> Any:
    """yaml.safe_load, except that 1e-3 is a number."""
    return yaml.load(text, Loader=_Loader)


def _yaml_problem(e: yaml.YAMLError) -> str:
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None) or (str(e).splitlines() or [type(e).__name__])[0]
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())


# ---------------------------------------------------------------------------- value ranges
# Values of the right type can still be meaningless (a confidence threshold of 1.5 masks
# every pixel and quietly turns CrossMatch into a half-weight supervised run). Each rule:
# dotted key -> (low, high, low inclusive, high inclusive); None means unbounded. Lists are
# checked element by element. Kept apart from the dataclasses so presets stay readable.
RANGES: dict[str, tuple] = {
    "data.labeled": (0, None, False, True),
    "data.size": (16, None, True, True),
    "data.patch": (16, None, True, True),
    "data.downsample": (1, None, True, True),
    "data.val_count": (1, None, True, True),
    "model.head_dropout": (0, 1, True, False),
    "perturb.image.bias_gamma_p": (0, 1, True, True),
    "perturb.image.bias_coefficient": (0, None, True, True),
    "perturb.image.log_gamma": (-5, 5, True, True),
    "pseudo.ramp_iterations": (1, None, True, True),
    "pseudo.thresh_scale": (0, 1, False, True),
    "loss.dice_smooth": (0, None, False, True),
    "train.poly_iterations": (1, None, True, True),
    "eval.stride": (1, None, True, True),
    "model.channels": (1, None, True, True),
    "model.encoder_dropout": (0, 1, True, False),
    "perturb.image.jitter_p": (0, 1, True, True),
    "perturb.image.brightness": (0, None, True, True),
    "perturb.image.contrast": (0, None, True, True),
    "perturb.image.saturation": (0, None, True, True),
    "perturb.image.hue": (0, 0.5, True, True),
    "perturb.image.blur_p": (0, 1, True, True),
    "perturb.image.blur_sigma": (0, None, False, True),
    "perturb.image.cutmix_p": (0, 1, True, True),
    "perturb.image.cutmix_area": (0, 1, False, True),
    "perturb.image.cutmix_ratio": (0, None, False, True),
    "distill.temperature": (0, None, False, True),
    "pseudo.conf_thresh": (0, 1, True, True),
    "pseudo.ramp_start": (0, 1, True, True),
    "pseudo.ramp_fraction": (0, 1, True, True),
    "loss.supervised": (0, None, True, True),
    "loss.strong": (0, None, True, True),
    "loss.distill": (0, None, True, True),
    "loss.normalizer": (0, None, False, True),
    "train.batch_size": (1, None, True, True),
    "train.unlabeled_batch_size": (1, None, True, True),
    "train.lr": (0, None, True, True),
    "train.momentum": (0, 1, True, False),
    "train.weight_decay": (0, None, True, True),
    "train.poly_power": (0, None, True, True),
    "train.seed": (0, 2**32 - 1, True, True),
    "train.threads": (0, None, True, True),
    "train.val_every": (1, None, True, True),
    "train.log_every": (1, None, True, True),
    "eval.batch_slices": (1, None, True, True),
    "eval.precise_bn_batches": (0, None, True, True),
    "eval.precise_bn_batch_size": (1, None, True, True),
}
# Two-number lists read as [low, high].
PAIRS = ("perturb.image.blur_sigma", "perturb.image.cutmix_area", "perturb.image.cutmix_ratio", "perturb.image.log_gamma")
DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:[0-9]+|mps)$")


def _interval(lo, hi, lo_in, hi_in) -> str:
    if hi is None:
        return f"at least {lo:g}" if lo_in else f"above {lo:g}"
    return f"in {'[' if lo_in else '('}{lo:g}, {hi:g}{']' if hi_in else ')'}"


def _in_range(v, lo, hi, lo_in, hi_in) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return False
    if lo is not None and (v < lo or (v == lo and not lo_in)):
        return False
    return hi is None or v < hi or (v == hi and hi_in)


def _get(cfg: Config, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def check_ranges(cfg: Config) -> None:
    """Refuse the first value outside its meaningful range, with one line saying so."""
    for key, (lo, hi, lo_in, hi_in) in RANGES.items():
        value = _get(cfg, key)
        if value is None:
            continue  # optional keys (e.g. unlabeled_batch_size) left at their default
        for v in (value if isinstance(value, list) else [value]):
            if not _in_range(v, lo, hi, lo_in, hi_in):
                what = f"every entry of {key}" if isinstance(value, list) else key
                raise ConfigError(f"{what} must be {_interval(lo, hi, lo_in, hi_in)}, got {value!r}")
        if key in PAIRS and (len(value) != 2 or value[0] > value[1]):
            raise ConfigError(f"{key} must be two numbers [low, high] with low <= high, got {value!r}")
    labeled = cfg.data.labeled
    if labeled >= 1 and labeled != int(labeled):
        raise ConfigError(f"data.labeled must be a whole count (e.g. 3) or a fraction below 1 "
                          f"(e.g. 0.1, ISIC only), got {labeled}")
    if not DEVICE.match(str(cfg.train.device)):
        raise ConfigError(f"train.device must be auto, cpu, cuda, cuda:N or mps, got {cfg.train.device!r}")
