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
from typing import Any, Literal, Optional

import yaml

from .dims import DATASET_DIMS, Dims


@dataclass(frozen=True)
class Range:
    """The meaningful values of a number (or of each entry of a list of numbers); None is
    unbounded. pair: a two-number list read as [low, high]."""
    lo: float | None = None
    hi: float | None = None
    lo_in: bool = True
    hi_in: bool = True
    pair: bool = False


UNIT = Range(0, 1)  # probabilities and fractions
RATE = Range(0, 1, hi_in=False)  # dropout rates, momentum
NONNEG = Range(0)
POSITIVE = Range(0, lo_in=False)
COUNT = Range(1)  # at least one


def knob(default: Any, doc: str, range: Range | None = None) -> Any:
    """A config key, declared once: its default, its one-line doc and its range (the choices,
    where there are some, are its Literal type). `python -m crossmatch_lite keys` and the
    keys table of docs/configuration.md are derived from these."""
    meta = {"doc": doc, "range": range}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


DatasetName = Literal[tuple(DATASET_DIMS)]


@dataclass
class DataConfig:
    name: DatasetName = knob("acdc", "the dataset (toy_* are built in; folder: your own images)")
    root: str = knob("data/ACDC", "prepared dataset folder (ignored by the toy datasets)")
    labeled: float = knob(3, "labeled training cases: a count (ACDC: patients), or a fraction below 1 (ISIC, "
                          "FIVES)", Range(0, lo_in=False))
    size: int = knob(256, "square training size in pixels, a multiple of 16 (official crop_size: a resize)",
                     Range(16))
    split_file: Optional[str] = knob(None, "JSON split written by an earlier run (split.json), to reuse it")
    isic_split: Literal["carved", "official"] = knob(
        "carved", "isic2018 without split_file: carved (the committed 7:1:2 split of the training ids) or "
        "official (all of train.h5; val.h5 and test.h5 as val and test)")
    cache: bool = knob(True, "keep the resized training arrays in <root>/cache for fast reloads")
    patch: list = knob([112, 112, 80], "3D: training crop (x, y, z) in voxels, multiples of 16", Range(16))
    downsample: int = knob(1, "3D: shrink every volume by this factor first (la_cpu: 2)", COUNT)
    val_count: int = knob(8, "training cases held out as val where there is no official val split "
                          "(la, pancreas, fives)", COUNT)


@dataclass
class ModelConfig:
    arch: Literal["unet", "vnet"] = knob(
        "unet", "unet: the 2D UNet of the official ACDC code; vnet: the 3D V-Net of the official LA code")
    channels: list = knob([16, 32, 64, 128, 256], "channels of the five network levels", COUNT)
    encoder_dropout: list = knob([0.05, 0.1, 0.2, 0.3, 0.5], "dropout of the five encoder levels "
                                 "(vnet: bottleneck only, [0, 0, 0, 0, p])", RATE)
    upsample: Literal["bilinear", "transpose"] = knob(
        "bilinear", "unet up-step: bilinear (what the official code runs) or transpose (ConvTranspose2d)")
    head_dropout: float = knob(0.0, "vnet: Dropout3d before the output convolution of a plain forward "
                               "(official 0.5)", RATE)


@dataclass
class ImagePerturbConfig:
    enabled: bool = knob(True, "strong views and their terms (s1, s2, c-f)")
    strong_views: Literal[0, 1, 2] = knob(2, "strongly augmented copies of the unlabeled batch "
                                          "(the last one gets the feature streams)")
    color_jitter: bool = knob(True, "2D strong view: colour jitter (brightness, contrast, saturation, hue)")
    jitter_p: float = knob(0.8, "probability of the colour jitter", UNIT)
    brightness: float = knob(0.5, "jitter brightness factor range 1 +- this", NONNEG)
    contrast: float = knob(0.5, "jitter contrast factor range 1 +- this", NONNEG)
    saturation: float = knob(0.5, "jitter saturation factor range 1 +- this (RGB only)", NONNEG)
    hue: float = knob(0.25, "jitter hue shift range +- this, in turns (RGB only)", Range(0, 0.5))
    blur: bool = knob(True, "strong view: Gaussian blur (2D and 3D)")
    blur_p: float = knob(0.5, "probability of the blur", UNIT)
    blur_sigma: list = knob([0.1, 2.0], "blur sigma range [low, high]", Range(0, lo_in=False, pair=True))
    cutmix: bool = knob(True, "CutMix: a box of each strong view taken from another image")
    cutmix_p: float = knob(0.5, "probability of a CutMix box", UNIT)
    cutmix_area: list = knob([0.02, 0.4], "box area range as a share of the image [low, high]",
                             Range(0, 1, lo_in=False, pair=True))
    cutmix_ratio: list = knob([0.3, 1 / 0.3], "box aspect ratio range [low, high]",
                              Range(0, lo_in=False, pair=True))
    cutmix_source: Literal["second_batch", "in_batch"] = knob(
        "second_batch", "where boxes come from: a second unlabeled batch (official) or the batch rolled by one")
    bias_gamma: bool = knob(True, "3D strong view: torchio RandomBiasField then RandomGamma")
    bias_gamma_p: float = knob(0.8, "3D: probability of the bias field and gamma", UNIT)
    bias_coefficient: float = knob(0.5, "3D: torchio RandomBiasField(coefficients)", NONNEG)
    log_gamma: list = knob([-0.5, 0.5], "3D: torchio RandomGamma(log_gamma) range", Range(-5, 5, pair=True))
    cutmix_box_axes: Literal["official", "clean"] = knob(
        "official", "3D box placement: official (the LA code's axis mix-up) or clean (each axis its own range)")


@dataclass
class FeaturePerturbConfig:
    enabled: bool = knob(True, "the channel-dropout streams (terms a-f)")
    weak_rate: float = knob(0.25, "Dropout2d/3d rate of the weak stream (official 0.5 * 0.5)", RATE)
    strong_rate: Optional[float] = knob(0.75, "rate of the strong stream (0.5 * 1.5); null: no strong stream",
                                        RATE)
    on_strong_view: bool = knob(True, "also decode the last strong view through the streams (terms c-f)")


@dataclass
class PerturbConfig:
    image: ImagePerturbConfig = field(default_factory=ImagePerturbConfig)
    feature: FeaturePerturbConfig = field(default_factory=FeaturePerturbConfig)


@dataclass
class DistillConfig:
    enabled: bool = knob(True, "self-distillation L_kd as a whole")
    teacher_terms: bool = knob(True, "terms a-d: the streams taught by p_w")
    cross_terms: bool = knob(True, "terms e-f: strong-view streams taught by the matching weak-view streams")
    eta: float = knob(0.3, "weight of the cross terms in L_kd", UNIT)
    mode: Literal["hard", "soft"] = knob(
        "hard", "hard: masked Dice on argmax labels (official code); soft: masked KL(teacher || student) * T^2")
    temperature: float = knob(1.0, "soft mode: temperature T", POSITIVE)


@dataclass
class PseudoConfig:
    conf_thresh: float = knob(0.95, "confidence below which a pseudo-label pixel is ignored", UNIT)
    threshold_schedule: Literal["fixed", "ramp", "sigmoid"] = knob(
        "fixed", "fixed; ramp: linear from ramp_start over ramp_fraction of training; "
        "sigmoid: the official LA schedule (train.conf_threshold)")
    ramp_start: float = knob(0.5, "threshold at the start of ramp and sigmoid", UNIT)
    ramp_fraction: float = knob(0.3, "ramp: share of training the ramp takes", UNIT)
    ramp_iterations: Optional[int] = knob(None, "sigmoid: length of the ramp; null: train.iterations", COUNT)
    thresh_scale: float = knob(1.0, "sigmoid: factor on the threshold (official LA: ln 2 = 0.693147)",
                               Range(0, 1, lo_in=False))
    source_pass_mode: Literal["official", "eval", "train", "batch_stats"] = knob(
        "official", "the no-gradient pass on the CutMix source: official (train mode, as the official code "
        "since 2025-12-10) or eval, train, batch_stats (batchnorm.source_pass_other_modes)")


@dataclass
class LossConfig:
    supervised: float = knob(1.0, "weight of L_x in L = (w_x L_x + w_s mean L_s + w_kd L_kd) / normalizer",
                             NONNEG)
    strong: float = knob(0.5, "weight of the mean image-consistency term L_s", NONNEG)
    distill: float = knob(0.5, "weight of L_kd (official LA: 1)", NONNEG)
    normalizer: float = knob(2.0, "divisor of the weighted sum", POSITIVE)
    dice_background: bool = knob(True, "Dice over every class (official ACDC) or the foreground only (LA)")
    dice_smooth: float = knob(1e-4, "Dice smoothing constant (official ACDC 1e-4, LA 1e-5)", POSITIVE)


@dataclass
class TrainConfig:
    iterations: int = knob(30000, "training iterations", COUNT)
    optimizer: Literal["sgd", "adamw"] = knob("sgd", "sgd (official ACDC: momentum, nesterov) or adamw (LA)")
    batch_size: int = knob(12, "labeled images per iteration", COUNT)
    unlabeled_batch_size: Optional[int] = knob(None, "unlabeled images per iteration; null: batch_size", COUNT)
    lr: float = knob(0.01, "base learning rate of the poly schedule", NONNEG)
    momentum: float = knob(0.9, "SGD momentum", RATE)
    nesterov: bool = knob(True, "SGD Nesterov momentum")
    weight_decay: float = knob(1e-4, "weight decay", NONNEG)
    poly_power: float = knob(0.9, "lr = base * (1 - it / poly_iterations) ** poly_power", NONNEG)
    poly_iterations: Optional[int] = knob(None, "length of the poly decay; null: iterations (LA: 17000)", COUNT)
    seed: int = knob(0, "seed of the split's random parts, the samplers, views and weights", Range(0, 2**32 - 1))
    device: str = knob("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int = knob(0, "CPU threads for torch; 0: the cores other processes leave free, "
                       "re-checked every 5 s; N: exactly N (bitwise-repeatable runs)", NONNEG)
    val_every: int = knob(500, "iterations between validations (each saves latest.pt)", COUNT)
    log_every: int = knob(10, "iterations between rows of metrics.jsonl", COUNT)
    amp: Literal["auto", "bf16", "off"] = knob(
        "auto", "bf16 autocast; auto: on CUDA and on CPUs with native bf16 (AVX512-BF16 or AMX), else fp32 "
        "(and for a 3D patch whose VNet meets a feature map 2 voxels deep, e.g. 32 along X: docs/speed.md); "
        "summary.json records the choice")
    channels_last: Literal["auto", "on", "off"] = knob("auto", "NHWC memory layout for 2D; auto: on for CUDA and CPU")
    compile: bool = knob(False, "torch.compile the model for the training step")
    progress: bool = knob(True, "show a progress bar")
    tensorboard: bool = knob(True, "also write TensorBoard event files into the run folder (losses, lr, "
                             "val Dice, val pictures); off: no writer, no file, no picture")
    max_minutes: Optional[float] = knob(None, "stop at a checkpoint once this process has trained this many "
                                        "minutes (re-run to resume); null: no limit", POSITIVE)


@dataclass
class EvalConfig:
    batch_slices: int = knob(32, "slices per forward pass at evaluation", COUNT)
    distances: bool = knob(True, "HD95 and ASD at the final evaluation (slower than Dice)")
    bn: Literal["running", "precise"] = knob(
        "running", "BatchNorm statistics that choose best.pt and give the headline: running (as trained; "
        "official) or precise (recomputed on clean training images); summary.json reports both")
    precise_bn_batches: int = knob(32, "precise: batches to recompute the statistics on", NONNEG)
    precise_bn_batch_size: int = knob(16, "precise: images per batch", COUNT)
    stride: list = knob([18, 18, 4], "3D: sliding-window step in voxels (official LA: 18, 18, 4)", COUNT)


@dataclass
class Config:
    preset: str = knob("crossmatch", "the preset's name, for logs and tables")
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    perturb: PerturbConfig = field(default_factory=PerturbConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    pseudo: PseudoConfig = field(default_factory=PseudoConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def key_fields(node_type: type = Config, prefix: str = "") -> dict[str, tuple[Any, dataclasses.Field]]:
    """{dotted key: (its type, its field)} of every leaf of the tree, in declaration order."""
    hints = typing.get_type_hints(node_type)
    out = {}
    for f in dataclasses.fields(node_type):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out.update(key_fields(tp, f"{prefix}{f.name}."))
        else:
            out[f"{prefix}{f.name}"] = (tp, f)
    return out


def _choices(tp: Any) -> tuple | None:
    if typing.get_origin(tp) is Literal:
        return typing.get_args(tp)
    return None


KEYS = key_fields()
CHOICES = {k: c for k, (tp, _) in KEYS.items() if (c := _choices(tp)) is not None}
RANGES = {k: f.metadata["range"] for k, (_, f) in KEYS.items() if f.metadata.get("range") is not None}
DATASETS_3D = tuple(name for name in DATASET_DIMS if Dims.of_dataset(name).volumetric)


def key_rows() -> list[tuple[str, Any, str, str]]:
    """(key, default, allowed values, doc) of every key: what `keys` prints and docs tabulate."""
    defaults = flatten(to_dict(Config()))
    rows = []
    for key, (tp, f) in KEYS.items():
        choices, rng = CHOICES.get(key), RANGES.get(key)
        allowed = " / ".join(map(str, choices)) if choices else (_interval(rng) if rng else "")
        rows.append((key, defaults[key], allowed, f.metadata.get("doc", "")))
    return rows


def keys_table() -> str:
    """The markdown table of every key (docs/configuration.md holds it; a test keeps it in sync)."""
    lines = ["| key | default | values | what it does |", "|---|---|---|---|"]
    for key, default, allowed, doc in key_rows():
        shown = yaml.safe_dump(default, default_flow_style=True).strip().removesuffix("...").strip()
        lines.append(f"| `{key}` | `{shown}` | {allowed} | {doc} |")
    return "\n".join(lines)


class ConfigError(ValueError):
    """A config file or override that does not fit the Config tree."""


def valid_keys(node: Any = None, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the tree (of `node`, a section, if given), e.g. 'distill.eta'."""
    if node is None:
        return list(KEYS)
    return list(key_fields(type(node), prefix))


def _field_type(node: Any, name: str) -> Any:
    hints = typing.get_type_hints(type(node))
    return hints[name]


def _short(value: Any, limit: int = 60) -> str:
    """repr(value), cut to `limit` characters: a message must stay one readable line."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Convert a YAML value to the declared type, or explain why it cannot be."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        value = _coerce(value, type(choices[0]), key)
        if value not in choices:
            raise ConfigError(f"{key}: {_short(value)} is not one of {', '.join(map(str, choices))}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {_short(value)}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or int(value) != value:
            raise ConfigError(f"{key}: expected an integer, got {_short(value)}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {_short(value)}")
        return float(value)
    if tp is str:
        word = ("on" if value else "off") if isinstance(value, bool) else None
        if word is not None and word in CHOICES.get(key, ()):
            return word  # YAML 1.1 reads on/off as booleans
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string, got {_short(value)}")
        return str(value)
    if tp is list:  # every list key holds numbers (sizes, rates, ranges)
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{key}: expected a list of numbers, got {_short(value)}")
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
    setattr(node, leaf, _coerce(value, _field_type(node, leaf), key))


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


MAX_EXTENDS = 16
# Presets are a few hundred bytes; a file far larger is a mistake (or an attack), and YAML
# builds its whole node tree before the first key could be refused.
MAX_CONFIG_BYTES = 1 << 20


def _apply_file(cfg: Config, p: Path, chain: tuple) -> None:
    """Apply one YAML file; a top-level `extends: other.yaml` (relative to this file) is
    applied first, so a preset states only how it differs from the one it builds on."""
    if p.is_dir():
        raise ConfigError(f"config {p} is a folder, not a file; name a preset, e.g. configs/crossmatch.yaml")
    if not p.is_file():
        raise ConfigError(f"config file {p} does not exist; presets live in configs/ (e.g. configs/crossmatch.yaml)")
    if p.stat().st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"config {p} is {p.stat().st_size / 2**20:.1f} MiB; a config is at most "
                          f"{MAX_CONFIG_BYTES >> 20} MiB (presets are a few hundred bytes): name a preset")
    if len(chain) >= MAX_EXTENDS:
        raise ConfigError(f"{p}: `extends` chains more than {MAX_EXTENDS} files; presets build on one or two")
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
    check_ranges(cfg)
    if cfg.train.poly_iterations is not None and cfg.train.poly_iterations < cfg.train.iterations:
        raise ConfigError(f"train.poly_iterations ({cfg.train.poly_iterations}) must be at least train.iterations "
                          f"({cfg.train.iterations}): the poly learning rate would turn negative; leave it unset "
                          "to decay over train.iterations")
    dims = Dims.of_dataset(cfg.data.name)
    three_d = dims.volumetric
    if cfg.model.arch != dims.arch:
        raise ConfigError(f"data.name={cfg.data.name} is {dims.name} data, but model.arch="
                          f"{cfg.model.arch}; use model.arch={dims.arch} "
                          f"(presets: configs/{'la' if three_d else 'crossmatch'}.yaml)")
    if not three_d and cfg.data.size % 16:
        raise ConfigError(f"data.size must be a multiple of 16 (the UNet halves it four times), got {cfg.data.size}")
    if three_d and (len(cfg.data.patch) != 3 or any(int(v) != v or v % 16 for v in cfg.data.patch)):
        raise ConfigError(f"data.patch must be three multiples of 16 (the VNet halves it four times), "
                          f"got {cfg.data.patch}")
    if three_d and len(cfg.eval.stride) != 3:
        raise ConfigError(f"eval.stride must be three step sizes (x, y, z), got {cfg.eval.stride}")
    if three_d and any(s > p for s, p in zip(cfg.eval.stride, cfg.data.patch)):
        raise ConfigError(f"eval.stride {cfg.eval.stride} steps further than the window data.patch "
                          f"{cfg.data.patch}: voxels between windows would get no prediction")
    if len(cfg.model.channels) != 5 or len(cfg.model.encoder_dropout) != 5:
        raise ConfigError("model.channels and model.encoder_dropout need 5 entries, one per network level")
    if three_d and any(cfg.model.encoder_dropout[:4]):  # model.arch is vnet: checked above
        raise ConfigError("the VNet drops out its bottleneck only: model.encoder_dropout must be [0, 0, 0, 0, p], "
                          f"got {cfg.model.encoder_dropout}")


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
    """yaml.SafeLoader that refuses aliases (`*name`: a few lines of nested aliases expand
    to billions of nodes), duplicate keys (the second would silently win) and keys that are
    not plain names (`? [a, b]`)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in configs; "
                                              "write the value out", mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(None, None, "a key must be a plain name, not a list or "
                                                        "mapping", key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


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
# every pixel and quietly turns CrossMatch into a half-weight supervised run): each key's
# Range, declared on its field, refuses them.
DEVICE = re.compile(r"^(auto|cpu|cuda|cuda:[0-9]+|mps)$")


def _interval(r: Range) -> str:
    if r.hi is None:
        return f"at least {r.lo:g}" if r.lo_in else f"above {r.lo:g}"
    return f"in {'[' if r.lo_in else '('}{r.lo:g}, {r.hi:g}{']' if r.hi_in else ')'}"


def _in_range(v, r: Range) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return False
    if r.lo is not None and (v < r.lo or (v == r.lo and not r.lo_in)):
        return False
    return r.hi is None or v < r.hi or (v == r.hi and r.hi_in)


def _get(cfg: Config, key: str) -> Any:
    node = cfg
    for part in key.split("."):
        node = getattr(node, part)
    return node


def check_ranges(cfg: Config) -> None:
    """Refuse the first value outside its meaningful range, with one line saying so."""
    for key, r in RANGES.items():
        value = _get(cfg, key)
        if value is None:
            continue  # optional keys (e.g. unlabeled_batch_size) left at their default
        for v in (value if isinstance(value, list) else [value]):
            if not _in_range(v, r):
                what = f"every entry of {key}" if isinstance(value, list) else key
                raise ConfigError(f"{what} must be {_interval(r)}, got {_short(value)}")
        if r.pair and (len(value) != 2 or value[0] > value[1]):
            raise ConfigError(f"{key} must be two numbers [low, high] with low <= high, got {_short(value)}")
    labeled = cfg.data.labeled
    if labeled >= 1 and labeled != int(labeled):
        raise ConfigError(f"data.labeled must be a whole count (e.g. 3) or a fraction below 1 "
                          f"(e.g. 0.1, ISIC only), got {labeled}")
    if not DEVICE.match(str(cfg.train.device)):
        raise ConfigError(f"train.device must be auto, cpu, cuda, cuda:N or mps, got {cfg.train.device!r}")
