"""Grid files: a base config, axes of named override bundles or values, and exclusions.

A grid expands into cells. Each cell is one fully resolved `Config`; its identity is a
hash of that config with the keys that cannot change a result left out (device, CPU
threads, progress bar). Two grids that produce the same config produce the same cell,
and a cell folder can never hold the results of another config.

Format (every part but `axes` optional; paths are relative to the project root)::

    name: quick
    base: configs/crossmatch.yaml     # preset applied on top of the defaults
    set:                              # base overrides, dotted keys
      data.name: toy_acdc
      train.iterations: 300
    smoke:                            # extra overrides under CROSSMATCH_LITE_SMOKE=1
      train.iterations: 20
    axes:
      variant:                        # named bundles of overrides ...
        supervised: {perturb.image.enabled: false, ...}
        crossmatch: {}
      labeled: {key: data.labeled, values: [3, 7]}   # ... or one key over values
      seed: {key: train.seed, values: [0, 1]}
    exclude:                          # cells matching every listed axis are dropped
      - {variant: supervised, labeled: 7}
      - {variant: [supervised, crossmatch], seed: 1} # a list matches any of its values
    baseline: {variant: supervised}   # what the summary table compares against
                                      # (exclude/baseline values must be values of their axis)
    paired: seed                      # the axis differences are paired over
    resources: {cpus: 1, gpus: 0}     # per cell, for the Ray backend

Order of application: defaults < base preset < set < smoke (if on) < axis bundles, in
axis order < command-line --set.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from crossmatch_lite.config import (Config, ConfigError, load_config, parse_override, set_key, to_dict, validate,
                                    yaml_load)
from crossmatch_lite.tutorial.smoke import smoke_mode

# Keys that change how a cell runs but not what it computes: left out of the cell hash.
HASH_FREE_KEYS = ("train.threads", "train.device", "train.progress", "train.tensorboard", "train.max_minutes")
PROJECT_ROOT = Path(__file__).resolve().parents[1]
GRID_KEYS = {"name", "description", "base", "set", "smoke", "axes", "exclude", "baseline", "paired",
             "resources", "notebook"}


class GridError(ValueError):
    """A grid file that cannot be expanded."""


@dataclass
class Axis:
    name: str
    key: str | None  # a single config key (value axis) or None (bundle axis)
    values: list  # bundle names or key values, in file order
    bundles: dict = field(default_factory=dict)  # name -> {dotted key: value}

    def overrides(self, value) -> dict:
        return dict(self.bundles[value]) if self.key is None else {self.key: value}


@dataclass
class Cell:
    id: str
    axes: dict  # axis name -> value (bundle name or key value)
    config: Config

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.axes.items())


@dataclass
class Grid:
    name: str
    path: str
    spec: dict
    axes: list[Axis]
    cells: list[Cell]
    excluded: int
    baseline: dict
    paired: str | None
    resources: dict

    def axis_names(self) -> list[str]:
        return [a.name for a in self.axes]


def _resolve_path(p: str, grid_path: Path | None) -> Path:
    path = Path(p)
    if path.is_absolute():
        return path
    for base in ([Path.cwd(), PROJECT_ROOT] + ([grid_path.parent] if grid_path else [])):
        if (base / path).exists():
            return base / path
    return PROJECT_ROOT / path


def _flat_overrides(d: Any, where: str) -> dict:
    """Accept dotted keys and nested sections alike: {'train': {'seed': 1}} == {'train.seed': 1}."""
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise GridError(f"{where}: expected a mapping of config keys to values, got {d!r}")
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            for kk, vv in _flat_overrides(v, where).items():
                out[f"{k}.{kk}"] = vv
        else:
            out[str(k)] = v
    return out


def _parse_axes(spec: dict) -> list[Axis]:
    axes_spec = spec.get("axes")
    if not isinstance(axes_spec, dict) or not axes_spec:
        raise GridError("a grid needs `axes:`, a mapping of axis name to either "
                        "{key: some.config.key, values: [...]} or {bundle_name: {key: value, ...}, ...}")
    axes = []
    for name, a in axes_spec.items():
        if isinstance(a, dict) and "key" in a and "values" in a:
            values = a["values"]
            if not isinstance(values, list) or not values:
                raise GridError(f"axis {name}: `values` must be a non-empty list")
            axes.append(Axis(str(name), str(a["key"]), list(values)))
        elif isinstance(a, dict) and a:
            bundles = {str(b): _flat_overrides(o, f"axis {name}, bundle {b}") for b, o in a.items()}
            axes.append(Axis(str(name), None, list(bundles), bundles))
        else:
            raise GridError(f"axis {name}: expected {{key: ..., values: [...]}} or a mapping of named "
                            f"override bundles, got {a!r}")
    return axes


def _check_values(axes: list[Axis], rule: dict, where: str) -> None:
    """A misspelled value would match nothing and be silently ignored: refuse it."""
    by_name = {a.name: a for a in axes}
    for k, want in rule.items():
        known = [str(v) for v in by_name[k].values]
        for w in (want if isinstance(want, list) else [want]):
            if str(w) not in known:
                raise GridError(f"{where}: {k}={w!r} is not a value of axis {k}; its values are "
                                f"{', '.join(known)}")


def _matches(axes: dict, rule: dict) -> bool:
    for k, want in rule.items():
        wants = want if isinstance(want, list) else [want]
        if not any(str(axes[k]) == str(w) for w in wants):
            return False
    return True


def identity_dict(cfg: Config) -> dict:
    """The resolved config as it enters the hash: hash-free keys removed."""
    d = to_dict(cfg)
    for key in HASH_FREE_KEYS:
        section, leaf = key.split(".")
        d.get(section, {}).pop(leaf, None)
    return d


def cell_hash(cfg: Config) -> str:
    text = json.dumps(identity_dict(cfg), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def read_grid_spec(path: str | os.PathLike) -> dict:
    p = Path(path)
    if not p.is_file():
        raise GridError(f"grid file {p} does not exist; shipped grids live in ablations/grids/")
    try:
        spec = yaml_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise GridError(f"{p} is not valid YAML ({where}{problem}); fix that line "
                        "(shipped grids in ablations/grids/ show the format)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise GridError(f"cannot read grid file {p}: {e}") from None
    if not isinstance(spec, dict):
        raise GridError(f"{p}: expected a mapping at the top level")
    unknown = set(spec) - GRID_KEYS
    if unknown:
        raise GridError(f"{p}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(GRID_KEYS)}")
    return spec


def expand(spec: dict, cli_sets: list[str] = (), grid_path: str | os.PathLike | None = None,
           smoke: bool | None = None) -> Grid:
    """Every cell of the grid, in axis order, exclusions removed, duplicates merged."""
    gp = Path(grid_path) if grid_path else None
    axes = _parse_axes(spec)
    names = [a.name for a in axes]
    excludes = spec.get("exclude") or []
    if not isinstance(excludes, list):
        raise GridError("`exclude` must be a list of {axis: value or [values]} rules")
    for rule in excludes:
        if not isinstance(rule, dict) or not rule:
            raise GridError(f"exclusion {rule!r}: expected a mapping of axis names to values")
        bad = set(rule) - set(names)
        if bad:
            raise GridError(f"exclusion {rule}: unknown axis {sorted(bad)}; axes are {names}")
        _check_values(axes, rule, f"exclusion {rule}")
    baseline = spec.get("baseline") or {}
    if not isinstance(baseline, dict):
        raise GridError(f"baseline {baseline!r}: expected a mapping of axis name to value, e.g. {{variant: supervised}}")
    if set(baseline) - set(names):
        raise GridError(f"baseline {baseline}: unknown axis; axes are {names}")
    _check_values(axes, baseline, f"baseline {baseline}")
    paired = spec.get("paired", "seed" if "seed" in names else None)
    if paired is not None and paired not in names:
        raise GridError(f"paired: {paired} is not an axis; axes are {names}")

    base_path = spec.get("base")
    base = _resolve_path(base_path, gp) if base_path else None
    base_sets = _flat_overrides(spec.get("set"), "set")
    smoke_sets = _flat_overrides(spec.get("smoke"), "smoke")
    use_smoke = smoke_mode() if smoke is None else smoke
    cli = [parse_override(s) for s in cli_sets]

    cells, seen, excluded = [], {}, 0
    for combo in itertools.product(*[a.values for a in axes]):
        values = dict(zip(names, combo))
        if any(_matches(values, r) for r in excludes):
            excluded += 1
            continue
        try:
            cfg = load_config(base, [])
            for k, v in base_sets.items():
                set_key(cfg, k, v)
            if use_smoke:
                for k, v in smoke_sets.items():
                    set_key(cfg, k, v)
            for a in axes:
                for k, v in a.overrides(values[a.name]).items():
                    set_key(cfg, k, v)
            for k, v in cli:
                set_key(cfg, k, v)
            validate(cfg)
        except ConfigError as e:
            raise GridError(f"cell {values}: {e}") from None
        h = cell_hash(cfg)
        if h in seen:
            raise GridError(f"cells {seen[h]} and {values} resolve to the same config ({h}); "
                            "two axis values do not differ, fix the grid")
        seen[h] = values
        cells.append(Cell(h, values, cfg))
    if not cells:
        raise GridError("every cell of the grid is excluded")
    res = {"cpus": 1, "gpus": 0, **(spec.get("resources") or {})}
    return Grid(str(spec.get("name") or (gp.stem if gp else "grid")), str(gp) if gp else "", spec, axes,
                cells, excluded, dict(baseline), paired, res)


def load_grid(path: str | os.PathLike, cli_sets: list[str] = (), smoke: bool | None = None) -> Grid:
    return expand(read_grid_spec(path), cli_sets, grid_path=path, smoke=smoke)


__all__ = ["Axis", "Cell", "Grid", "GridError", "HASH_FREE_KEYS", "cell_hash", "expand", "identity_dict",
           "load_grid", "read_grid_spec"]
