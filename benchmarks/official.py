"""Import the official CrossMatch code for one block, and leave no trace of it afterwards.

    with official_code(Path(args.official) / "LA" / "code") as load:
        la_heart = load("dataloaders.la_heart")
        runpy.run_path(str(code / "train_cross_match.py"), run_name="__main__")

`--official` is the path of a checkout of AiEson/CrossMatch (git clone
https://github.com/AiEson/CrossMatch); nothing of it is copied into this repository.

Its code folders (`dataloaders`, `networks`, `utils`, `test_util.py`) are namespace
packages and modules with common names, imported by the scripts as top-level modules. So,
inside the block, the folder is first on sys.path and any module of the same name imported
before is set aside; on leaving, the folder and every module it provided are removed and
the set-aside ones put back. With `stubs=True` (the default) the scripts also run on a
CPU-only torch beside this package's dependencies: `.cuda()` of modules and tensors is a
no-op, `tensorboardX` and `torchvision` are modules that do nothing (the scripts use only
SummaryWriter, transforms.Compose and utils.make_grid), and `medpy` (imported for the final
evaluation only) is an empty module when it is not installed. These are undone on leaving.
`real=("torchvision",)` keeps the installed torchvision instead (the ACDC dataset's views
use its ColorJitter), and `real=("cuda",)` keeps `.cuda()` as it is, for a run on a GPU.
"""
from __future__ import annotations

import importlib
import subprocess
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import torch

__all__ = ["official_code", "hand_in_vnet", "checkout_commit"]


def checkout_commit(checkout: Path) -> str:
    """The checkout's commit, or "unknown" (an exported copy without .git)."""
    out = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def stub_modules(real: tuple[str, ...] = ()) -> dict[str, types.ModuleType]:
    """Stand-ins for the modules the official scripts import but never need on one CPU
    (tensorboardX, torchvision's transforms and grid, medpy where it is missing)."""
    tbx = types.ModuleType("tensorboardX")

    class SummaryWriter:
        def __init__(self, *a, **k):
            pass

        def __getattr__(self, name):  # add_scalar, add_image, close
            return lambda *a, **k: None

    tbx.SummaryWriter = SummaryWriter
    tv, tv_t, tv_u = (types.ModuleType(n) for n in ("torchvision", "torchvision.transforms", "torchvision.utils"))

    class Compose:
        def __init__(self, transforms):
            self.transforms = transforms

        def __call__(self, sample):
            for t in self.transforms:
                sample = t(sample)
            return sample

    tv_t.Compose = Compose
    tv_u.make_grid = lambda tensor, *a, **k: tensor
    tv.transforms, tv.utils = tv_t, tv_u
    stubs = {"tensorboardX": tbx, "torchvision": tv, "torchvision.transforms": tv_t, "torchvision.utils": tv_u}
    stubs = {k: m for k, m in stubs.items() if k.split(".")[0] not in real}
    try:
        import medpy.metric  # noqa: F401
    except ImportError:
        medpy, metric = types.ModuleType("medpy"), types.ModuleType("medpy.metric")
        medpy.metric = metric
        stubs.update({"medpy": medpy, "medpy.metric": metric})
    return stubs


def _own_names(code_dir: Path) -> set[str]:
    """Top-level module names the folder provides: its .py files and its sub-folders."""
    return {p.stem if p.is_file() else p.name for p in code_dir.iterdir()
            if (p.is_file() and p.suffix == ".py") or (p.is_dir() and p.name.isidentifier())}


def _pop(names: set[str]) -> dict[str, types.ModuleType]:
    taken = {k: m for k, m in sys.modules.items() if k.split(".")[0] in names}
    for k in taken:
        del sys.modules[k]
    return taken


@contextmanager
def official_code(code_dir: str | Path, stubs: bool = True,
                  real: tuple[str, ...] = ()) -> Iterator[Callable[[str], types.ModuleType]]:
    """Within the block, `load("networks.vnet")` imports from `code_dir` (e.g. <checkout>/LA/code)."""
    code_dir = Path(code_dir).resolve()
    if not code_dir.is_dir():
        raise FileNotFoundError(f"{code_dir} is not a folder; pass a checkout of AiEson/CrossMatch "
                                "(git clone https://github.com/AiEson/CrossMatch)")
    fakes = stub_modules(real) if stubs else {}
    names = _own_names(code_dir) | {k.split(".")[0] for k in fakes}
    set_aside = _pop(names)
    cuda = (torch.nn.Module.cuda, torch.Tensor.cuda)
    sys.modules.update(fakes)
    if stubs and "cuda" not in real:
        torch.nn.Module.cuda = lambda self, *a, **k: self
        torch.Tensor.cuda = lambda self, *a, **k: self
    sys.path.insert(0, str(code_dir))
    try:
        yield importlib.import_module
    finally:
        if str(code_dir) in sys.path:
            sys.path.remove(str(code_dir))
        _pop(names)
        sys.modules.update(set_aside)
        torch.nn.Module.cuda, torch.Tensor.cuda = cuda
        importlib.invalidate_caches()


def hand_in_vnet(vnet: types.ModuleType, subclass: type) -> None:
    """Make a later `from networks.vnet import VNet` get `subclass`. The official class looks
    its own name up in its module (super(VNet, self)), so that module keeps it and importers
    are handed a copy of the module whose VNet is the subclass (removed with the block)."""
    handed = types.ModuleType(vnet.__name__)
    handed.__dict__.update(vnet.__dict__)
    handed.VNet = subclass
    sys.modules[vnet.__name__] = handed
