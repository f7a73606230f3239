"""``python -m data_download check DEST``: is a prepared dataset whole and sane?

Returns a list of human-readable problems (empty when all is well), each
naming the file and what to do, so a user can repair a folder by re-running.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

from . import la, manifest, sources
from .fsutil import STATE_DIR, TMP_SUFFIX, Markers
from .http_fetch import sha256_of

VOLUME_RE = re.compile(r"^patient(\d{3})_frame0([12])\.h5$")
SLICE_RE = re.compile(r"^patient(\d{3})_frame0([12])_slice_(\d+)\.h5$")


def check(dest: Path, quick: bool = False) -> tuple[list[str], str]:
    dest = Path(dest)
    if not dest.is_dir():
        return [f"{dest} does not exist"], ""
    if (dest / "data").is_dir() or Markers(dest).read("acdc"):
        return check_acdc(dest, quick)
    if Markers(dest).read("la") or ((dest / "train.list").is_file()
                                    and any(dest.glob("*/mri_norm2.h5"))):
        return check_la(dest, quick)
    if any((dest / f"{s}.h5").exists() for s in sources.ISIC_SPLITS) or any(
            Markers(dest).read(f"isic-{s}") for s in sources.ISIC_SPLITS):
        return check_isic(dest, quick)
    return [f"{dest} holds no ACDC (data/), LA (<ID>/mri_norm2.h5, train.list) or ISIC "
            f"(<split>.h5) dataset; run 'python -m data_download acdc|la|isic2018 --dest {dest}'"], ""


def _leftovers(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return [f"{p}: leftover of an interrupted run (harmless; the next run removes it)"
            for p in folder.glob(f".*{TMP_SUFFIX}")]


def check_acdc(dest: Path, quick: bool) -> tuple[list[str], str]:
    problems: list[str] = []
    data = dest / "data"
    info = Markers(dest).read("acdc")
    redo = f"re-run 'python -m data_download acdc --dest {dest}'"
    if info is None:
        problems.append(f"{dest}: no completion marker ({STATE_DIR}/acdc.done): the preparation "
                        f"did not finish; {redo}")
        info = {}
    volumes = {p.name: p for p in data.glob("patient*.h5") if VOLUME_RE.match(p.name)}
    slices = {p.name: p for p in (data / "slices").glob("patient*.h5") if SLICE_RE.match(p.name)}
    for key, found in (("volumes", len(volumes)), ("slices", len(slices))):
        if key in info and info[key] != found:
            problems.append(f"{data}: expected {info[key]} {key}, found {found}; {redo}")
    if info.get("source") == "h5":
        problems += _check_against_manifest(
            manifest.load(), lambda e: dest / e.path[len(sources.CROSSMATCH_PREFIX):], quick)
        quick = True  # byte-identical to the published files: values need no re-check
    for name, path in sorted(volumes.items()):
        problems += _check_volume(path, slices, quick)
    problems += _leftovers(data) + _leftovers(data / "slices")
    summary = (f"ACDC OK: {len(volumes)} volumes, {len(slices)} slices in {data} "
               f"(source: {info.get('source', '?')})")
    return problems, summary


def _check_against_manifest(entries: list[manifest.Entry], target: Callable[[manifest.Entry], Path],
                            quick: bool) -> list[str]:
    problems = []
    for e in entries:
        p = target(e)
        if not p.is_file():
            problems.append(f"{p}: missing; re-run the download")
        elif p.stat().st_size != e.size:
            problems.append(f"{p}: size {p.stat().st_size}, expected {e.size}; delete it and re-run")
        elif not quick and sha256_of(p) != e.sha256:
            problems.append(f"{p}: SHA-256 differs from the published file; delete it and re-run")
    return problems


def _check_volume(path: Path, slices: dict[str, Path], quick: bool) -> list[str]:
    problems = []
    fix = "delete it and re-run the conversion"
    try:
        with h5py.File(path, "r") as f:
            if set(f.keys()) != {"image", "label"}:
                return [f"{path}: datasets {sorted(f.keys())}, expected image and label; {fix}"]
            img, lab = f["image"], f["label"]
            if img.dtype != np.float64 or lab.dtype != np.uint8 or img.ndim != 3 or img.shape != lab.shape:
                return [f"{path}: image {img.dtype}{img.shape} / label {lab.dtype}{lab.shape}, "
                        f"expected float64 and uint8 of equal (z, y, x) shape; {fix}"]
            z = img.shape[0]
            image = None if quick else img[:]
            label = None if quick else lab[:]
    except OSError as e:
        return [f"{path}: unreadable HDF5 ({e}); {fix}"]
    if image is not None:
        if not np.isfinite(image).all() or image.min() < 0 or image.max() > 1:
            problems.append(f"{path}: image values outside [0, 1]; {fix}")
        if label.max() > 3:
            problems.append(f"{path}: label values {np.unique(label).tolist()}, expected 0-3; {fix}")
    stem = path.stem
    for k in range(1, z + 1):
        sp = slices.get(f"{stem}_slice_{k}.h5")
        if sp is None:
            problems.append(f"{path.parent / 'slices' / f'{stem}_slice_{k}.h5'}: missing; {fix}")
            continue
        if quick:
            continue
        try:
            with h5py.File(sp, "r") as s:
                ok = (np.array_equal(s["image"][:], image[k - 1])
                      and np.array_equal(s["label"][:], label[k - 1]))
        except (OSError, KeyError) as e:
            problems.append(f"{sp}: unreadable ({e}); {fix}")
            continue
        if not ok:
            problems.append(f"{sp}: differs from slice {k - 1} of {path.name}; {fix}")
    extra = [n for n in slices if n.startswith(stem + "_slice_")
             and int(SLICE_RE.match(n).group(3)) > z]
    problems += [f"{slices[n]}: beyond the volume's {z} slices; delete it" for n in extra]
    return problems


def check_la(dest: Path, quick: bool, entries: list[manifest.Entry] | None = None
             ) -> tuple[list[str], str]:
    """The published LA files: all there (SHA-256 unless quick), lists consistent, HDF5 sane."""
    entries = manifest.load(manifest.LA_MANIFEST) if entries is None else entries
    problems: list[str] = []
    redo = f"re-run 'python -m data_download la --dest {dest}'"
    info = Markers(dest).read(la.STEP)
    if info is None:
        problems.append(f"{dest}: no completion marker ({STATE_DIR}/{la.STEP}.done): the download "
                        f"did not finish; {redo}")
    problems += _check_against_manifest(entries, lambda e: dest / la.local_name(e.path), quick)
    expected = set(la.volume_ids(entries))
    found = {p.parent.name for p in dest.glob(f"*/{la.VOLUME}")}
    problems += [f"{dest / i / la.VOLUME}: not a published volume (not in the manifest); remove it"
                 for i in sorted(found - expected)]
    lists: dict[str, list[str]] = {}
    for name in sources.LA_LISTS:
        p = dest / name
        if p.is_file():
            lists[name] = [line.strip() for line in p.read_text().splitlines() if line.strip()]
    train, test = set(lists.get("train.list", [])), set(lists.get("test.list", []))
    for i in sorted((train | test) - found - expected):
        problems.append(f"{dest / i / la.VOLUME}: listed but missing; {redo}")
    # The lists are tiny: always compare them byte for byte, so that an inconsistency in
    # lists exactly as published (see below) is a note, not a fault of this folder.
    published = {la.local_name(e.path): e.sha256 for e in entries if e.path.endswith(".list")}
    as_published = all(name in lists and sha256_of(dest / name) == sha
                       for name, sha in published.items())
    issues = []
    if train & test:
        issues.append(f"{len(train & test)} IDs are in both train.list and test.list")
    if train or test:
        missing = found - train - test
        if missing:
            issues.append(f"{len(missing)} volumes are in neither train.list nor test.list")
    for n in (4, 8, 16):
        lab, unl = lists.get(f"train_{n}_label.list"), lists.get(f"train_{n}_unlabel.list")
        if lab is None or unl is None:
            continue
        both, left = set(lab) & set(unl), train - set(lab) - set(unl)
        if len(lab) != n or both or left or (set(lab) | set(unl)) - train:
            issues.append(f"train_{n}_label.list ({len(lab)}) and train_{n}_unlabel.list "
                          f"({len(unl)}) do not split train.list: {len(both)} IDs in both, "
                          f"{len(left)} training IDs in neither")
    notes = []
    if as_published:
        notes = [f"{i} (as published)" for i in issues]
    else:
        problems += [f"{dest}: {i}; {redo}" for i in issues]
    for i in sorted(found):
        path = dest / i / la.VOLUME
        try:
            with h5py.File(path, "r") as f:
                img, lab = f.get("image"), f.get("label")
                if img is None or lab is None:
                    problems.append(f"{path}: datasets {sorted(f.keys())}, expected image and "
                                    f"label; delete it and {redo}")
                elif (img.dtype != np.float32 or lab.dtype != np.uint8 or img.ndim != 3
                      or img.shape != lab.shape):
                    problems.append(f"{path}: image {img.dtype}{img.shape} / label "
                                    f"{lab.dtype}{lab.shape}, expected float32 and uint8 of equal "
                                    f"3-D shape; delete it and {redo}")
        except OSError as e:
            problems.append(f"{path}: unreadable HDF5 ({e}); delete it and {redo}")
    parts = sorted(dest.glob("*.part")) + sorted(dest.glob("*/*.part"))
    problems += [f"{p}: partial download of an interrupted run; {redo} to finish it" for p in parts]
    problems += _leftovers(dest)
    summary = (f"LA OK: {len(found)} volumes in {dest}; train.list {len(train)}, test.list "
               f"{len(test)}; "
               + ("sizes" if quick else "SHA-256") + " match the published files")
    if notes:
        summary += "\nnote: " + "\nnote: ".join(notes)
    return problems, summary


def check_isic(dest: Path, quick: bool) -> tuple[list[str], str]:
    problems, parts = [], []
    markers = Markers(dest)
    for split in sources.ISIC_SPLITS:
        path = dest / f"{split}.h5"
        info = markers.read(f"isic-{split}")
        redo = f"re-run 'python -m data_download isic2018 --dest {dest} --splits {split}'"
        if not path.exists():
            if info is not None:
                problems.append(f"{path}: missing although marked done; {redo}")
            continue
        if info is None:
            problems.append(f"{path}: no completion marker; {redo}")
        try:
            with h5py.File(path, "r") as f:
                missing = {"images", "masks", "ids", "orig_sizes"} - set(f.keys())
                if missing:
                    problems.append(f"{path}: missing datasets {sorted(missing)}; {redo}")
                    continue
                im, mk, ids, orig = f["images"], f["masks"], f["ids"], f["orig_sizes"]
                n = im.shape[0]
                if (im.ndim != 4 or im.shape[3] != 3 or im.dtype != np.uint8
                        or mk.shape != im.shape[:3] or mk.dtype != np.uint8
                        or ids.shape != (n,) or orig.shape != (n, 2)):
                    problems.append(f"{path}: shapes images {im.shape} {im.dtype}, masks {mk.shape} "
                                    f"{mk.dtype}, ids {ids.shape}, orig_sizes {orig.shape} "
                                    f"do not match the documented layout; {redo}")
                    continue
                if info is not None and info.get("pairs") not in (None, n):
                    problems.append(f"{path}: {n} pairs, the marker says {info['pairs']}; {redo}")
                names = ids.asstr()[:]
                if len(set(names)) != n:
                    problems.append(f"{path}: duplicate ids; {redo}")
                if (orig[:] <= 0).any():
                    problems.append(f"{path}: non-positive orig_sizes; {redo}")
                if not quick:
                    for k in range(n):
                        if mk[k].max() > 1:
                            problems.append(f"{path}: mask {names[k]} is not binary; {redo}")
                            break
                parts.append(f"{split}: {n} pairs {im.shape[1]}x{im.shape[2]}")
        except OSError as e:
            problems.append(f"{path}: unreadable HDF5 ({e}); {redo}")
    problems += _leftovers(dest)
    if not parts and not problems:
        problems.append(f"{dest}: no split files found")
    return problems, f"ISIC 2018 OK in {dest}: " + "; ".join(parts)
