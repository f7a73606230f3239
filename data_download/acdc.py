"""ACDC: fetch from Creatis (or the published HDF5 files) into DEST/data/.

Steps, each skipped on a re-run once its marker says it finished:
download -> extract -> convert (one marker per patient) -> final marker.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from . import acdc_convert, manifest, sources
from .archive import safe_extract
from .errors import DataDownloadError
from .fsutil import Markers, check_free_space, ensure_writable, remove_stale_tmp, write_text_atomic
from .http_fetch import fetch, join_url

# Bump when the conversion changes, so old per-patient outputs are redone.
FORMAT_VERSION = 1
ZIP_NAME = "ACDC-training.zip"
# Extraction plus HDF5 output per byte of archive, measured on the training zip
# (116 MB zip -> 116 MB extracted + 290 MB of HDF5); used before the download
# to refuse early when the disk is obviously too small.
SPACE_FACTOR = 3


@dataclass
class Options:
    dest: Path
    mirror: str | None = None
    retries: int = 5
    backoff: float = 1.0
    workers: int = 0  # 0: one per CPU, at most 4
    progress: bool = True
    cleanup: bool = False
    log: Callable[[str], None] = field(default=lambda m: print(m, file=sys.stderr))


def official_urls(mirror: str | None) -> list[str]:
    if mirror is None:
        return [join_url(sources.ACDC_HOST, sources.ACDC_API_PATH)]
    # A mirror of the site keeps the API path; a plain cache keeps the zip's name.
    return [join_url(mirror, sources.ACDC_API_PATH), join_url(mirror, sources.ACDC_SHORT_NAME)]


def run_official(opt: Options) -> dict:
    dest = Path(opt.dest)
    markers = Markers(dest)
    opt.log(sources.ACDC_CITATION)
    final_params = {"source": "official", "format": FORMAT_VERSION}
    if markers.done("acdc", final_params) and (dest / "data").is_dir():
        summary = markers.read("acdc")
        opt.log(f"ACDC already prepared in {dest} ({summary.get('volumes')} volumes, "
                f"{summary.get('slices')} slices); nothing to do.")
        return summary
    ensure_writable(dest)  # a read-only --dest fails here, with its name, not mid-download

    archive = dest / "downloads" / ZIP_NAME
    raw = dest / "raw"
    if not (markers.done("acdc-download") and archive.is_file()):
        markers.clear("acdc-extract")
        opt.log(f"downloading ACDC to {archive}")
        fetch(official_urls(opt.mirror), archive, retries=opt.retries, backoff=opt.backoff,
              register_hint=sources.ACDC_REGISTER, progress=opt.progress,
              extra_space=lambda total: SPACE_FACTOR * total, log=opt.log)
        markers.mark("acdc-download", size=archive.stat().st_size)

    if not (markers.done("acdc-extract") and raw.is_dir()):
        opt.log(f"extracting {archive.name} to {raw}")
        # The 4-D cine files are not used by the preprocessed layout; skipping
        # them saves most of the disk space of the full Creatis download.
        safe_extract(archive, raw, keep=lambda n: not n.endswith("_4d.nii.gz"),
                     progress=opt.progress)
        markers.mark("acdc-extract")

    summary = convert_all(raw, dest / "data", markers, opt)
    summary["source"] = "official"
    write_text_atomic(dest / "ACDC_CITATION.md", citation_file())
    markers.mark("acdc", final_params, **summary)
    if opt.cleanup:
        shutil.rmtree(raw, ignore_errors=True)
        shutil.rmtree(dest / "downloads", ignore_errors=True)
        markers.clear("acdc-download")
        markers.clear("acdc-extract")
    opt.log(f"ACDC ready in {dest / 'data'}: {summary['volumes']} volumes, {summary['slices']} "
            f"slices from {summary['patients']} patients.")
    opt.log(sources.ACDC_CITATION)
    return summary


def convert_all(raw: Path, out: Path, markers: Markers, opt: Options) -> dict:
    patients = acdc_convert.find_patients(raw)
    if not patients:
        raise DataDownloadError(
            f"no patientXXX/Info.cfg folders found in {raw}; the archive does not have the "
            f"official ACDC layout (database/training/patientXXX/). Delete {raw} and re-run."
        )
    for folder in (out, out / "slices"):
        remove_stale_tmp(folder)
    params = {"format": FORMAT_VERSION}

    def finished(p: Path) -> bool:
        return markers.done(f"acdc-{p.name}", params) and all(
            (out / f"{p.name}_frame0{i}.h5").is_file() for i in (1, 2))

    todo = [p for p in patients if not finished(p)]
    if len(todo) < len(patients):
        opt.log(f"{len(patients) - len(todo)} of {len(patients)} patients already converted")
    check_free_space(out, len(todo) * 2_000_000, "the HDF5 output")
    skipped = []
    workers = opt.workers or min(4, os.cpu_count() or 1)
    with tqdm(total=len(todo), desc="convert ACDC", unit="patient", disable=not opt.progress) as bar:
        def done(p: Path, n_slices: int) -> None:
            markers.mark(f"acdc-{p.name}", params, slices=n_slices)
            bar.update(1)

        if workers <= 1 or len(todo) <= 1:
            for p in todo:
                try:
                    done(p, convert_patient(p, out))
                except FileNotFoundError as e:
                    skipped.append(f"{p.name}: missing {Path(str(e)).name}")
        else:
            with cf.ProcessPoolExecutor(workers) as pool:
                futures = {pool.submit(convert_patient, p, out): p for p in todo}
                for fut in cf.as_completed(futures):
                    p = futures[fut]
                    try:
                        done(p, fut.result())
                    except FileNotFoundError as e:
                        skipped.append(f"{p.name}: missing {Path(str(e)).name}")
    for s in skipped:
        opt.log(f"skipped {s}")
    converted = [p for p in patients if markers.done(f"acdc-{p.name}", params)]
    slices = sum(markers.read(f"acdc-{p.name}")["slices"] for p in converted)
    return {"patients": len(converted), "volumes": 2 * len(converted), "slices": slices,
            "skipped": skipped}


def convert_patient(folder: Path, out: Path) -> int:
    # Module-level indirection so tests (and a killed-midway simulation) can wrap it.
    return acdc_convert.convert_patient(folder, out)


def citation_file() -> str:
    return ("# ACDC\n\n" + sources.ACDC_CITATION.replace("\n", "\n\n") + "\n\nSource: "
            + sources.ACDC_HOST + "\n")


# --- the published HDF5 files ----------------------------------------------

def h5_base(mirror: str | None) -> str:
    if mirror is not None:
        return mirror
    return sources.CROSSMATCH_RAW_BASE + sources.CROSSMATCH_COMMIT + "/"


def local_name(entry_path: str) -> str:
    if not entry_path.startswith(sources.CROSSMATCH_PREFIX):
        raise DataDownloadError(f"manifest entry {entry_path} is outside {sources.CROSSMATCH_PREFIX}")
    return entry_path[len(sources.CROSSMATCH_PREFIX):]


def run_h5(opt: Options, entries: list[manifest.Entry] | None = None, threads: int = 8) -> dict:
    dest = Path(opt.dest)
    markers = Markers(dest)
    opt.log(sources.ACDC_CITATION)
    entries = manifest.load() if entries is None else entries
    final_params = {"source": "h5", "commit": sources.CROSSMATCH_COMMIT, "files": len(entries)}
    if markers.done("acdc", final_params):
        opt.log(f"ACDC (published HDF5) already in {dest}; nothing to do.")
        return markers.read("acdc")
    ensure_writable(dest)

    manifest.fetch_entries(
        entries, h5_base(opt.mirror), lambda e: dest / local_name(e.path),
        what="the published ACDC HDF5 files", desc="ACDC h5", retries=opt.retries, backoff=opt.backoff,
        threads=threads, progress=opt.progress, register_hint=sources.ACDC_REGISTER, log=opt.log)
    volumes = sum(1 for e in entries if "/slices/" not in e.path)
    summary = {"source": "h5", "volumes": volumes, "slices": len(entries) - volumes,
               "patients": volumes // 2, "skipped": []}
    write_text_atomic(dest / "ACDC_CITATION.md", citation_file())
    markers.mark("acdc", final_params, **summary)
    opt.log(f"ACDC ready in {dest / 'data'}: {summary['volumes']} volumes, {summary['slices']} slices "
            f"(published files, SHA-256 verified).")
    opt.log(sources.ACDC_CITATION)
    return summary
