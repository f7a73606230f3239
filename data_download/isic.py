"""ISIC 2018 Task 1: fetch the official zips and write DEST/<split>.h5.

Zips are read member by member, never extracted: the 10.4 GB training input
would otherwise need twice its size on disk.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import isic_convert, sources
from .errors import DataDownloadError, NotFound
from .fsutil import Markers, ensure_writable, remove_stale_tmp
from .http_fetch import fetch, join_url

FORMAT_VERSION = 1


@dataclass
class Options:
    dest: Path
    splits: list[str] = field(default_factory=lambda: ["train", "val", "test"])
    # Splits skipped, with one line, when the source lacks their zips: the default download
    # asks for val and test, but a Training-only mirror is enough (the reader's committed
    # split carves val and test from the training images).
    optional: tuple[str, ...] = ()
    size: int = 256
    mirror: str | None = None
    retries: int = 5
    backoff: float = 1.0
    progress: bool = True
    cleanup: bool = False
    log: Callable[[str], None] = field(default=lambda m: print(m, file=sys.stderr))


def urls(name: str, mirror: str | None) -> list[str]:
    if mirror is None:
        return [join_url(sources.ISIC_HOST, sources.ISIC_PREFIX + name)]
    # A copy of the bucket keeps the 2018/ prefix; a plain folder may not.
    return [join_url(mirror, sources.ISIC_PREFIX + name), join_url(mirror, name)]


def run(opt: Options) -> dict:
    bad = [s for s in opt.splits if s not in sources.ISIC_SPLITS]
    if bad or not opt.splits:
        raise DataDownloadError(f"unknown split(s) {bad or opt.splits}; choose from "
                                f"{', '.join(sources.ISIC_SPLITS)}")
    if opt.size < 8:
        raise DataDownloadError(f"--size {opt.size} is too small; use e.g. 256")
    dest = Path(opt.dest)
    if not dest.is_dir():
        ensure_writable(dest)
    remove_stale_tmp(dest)
    markers = Markers(dest)
    opt.log(sources.ISIC_CITATION)
    results = {}
    for split in opt.splits:
        try:
            results[split] = run_split(split, dest, markers, opt)
        except NotFound as e:
            if split not in opt.optional:
                raise
            opt.log(f"skipping {split}: {e.args[0].split('. Check')[0]}. The default split (carved from the "
                    f"training images) does not need it; --splits {split} makes it required")
    if not results:
        raise DataDownloadError(f"none of the splits {', '.join(opt.splits)} is on the source")
    opt.log("ISIC 2018 ready: " + ", ".join(
        f"{dest / (s + '.h5')} ({r['pairs']} pairs)" for s, r in results.items()))
    return results


def run_split(split: str, dest: Path, markers: Markers, opt: Options) -> dict:
    image_name, mask_name, image_size, mask_size = sources.ISIC_SPLITS[split]
    out = dest / f"{split}.h5"
    params = {"size": opt.size, "format": FORMAT_VERSION, "inputs": [image_name, mask_name]}
    step = f"isic-{split}"
    if markers.done(step, params) and out.is_file():
        summary = markers.read(step)
        opt.log(f"{out} already written ({summary.get('pairs')} pairs); skipping")
        return summary
    ensure_writable(dest)  # a read-only --dest fails here, with its name, not mid-download
    zips = []
    for name, approx in ((mask_name, mask_size), (image_name, image_size)):
        # Small ground truth first: a wrong mirror fails in seconds, not after 10 GB.
        path = dest / "downloads" / name
        if not path.is_file():
            opt.log(f"downloading {name}")
        fetch(urls(name, opt.mirror), path, retries=opt.retries, backoff=opt.backoff,
              register_hint=sources.ISIC_REGISTER, progress=opt.progress, log=opt.log,
              # Output is tiny next to the zip: size^2 * 4 bytes per image.
              extra_space=lambda total: total // 50)
        zips.append(path)
    mask_zip, image_zip = zips
    opt.log(f"writing {out} ({opt.size}x{opt.size})")
    summary = isic_convert.convert_split(
        image_zip, mask_zip, out, opt.size, progress=opt.progress, log=opt.log,
        attrs={"split": split, "source_images": image_name, "source_masks": mask_name,
               "citation": sources.ISIC_CITATION})
    markers.mark(step, params, **summary)
    if opt.cleanup:
        for z in zips:
            z.unlink(missing_ok=True)
    return summary
