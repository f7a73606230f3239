"""Left Atrium (2018 Atrial Segmentation Challenge, UA-MT preprocessing) into DEST.

The 100 preprocessed volumes and the 8 split lists published in AiEson/CrossMatch
under ``LA/data/2018LA_Seg_Training Set/`` at the pinned commit, each checked
against the shipped manifest ``manifests/la_crossmatch_h5.tsv``. DEST receives the
contents of that folder: ``DEST/<ID>/mri_norm2.h5`` and ``DEST/*.list``.
"""

from __future__ import annotations

import sys
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import manifest, sources
from .errors import DataDownloadError
from .fsutil import Markers, ensure_writable, human_bytes, write_text_atomic

STEP = "la"  # marker: DEST/.data_download/la.done
VOLUME = "mri_norm2.h5"


@dataclass
class Options:
    dest: Path
    mirror: str | None = None
    retries: int = 5
    backoff: float = 1.0
    threads: int = 8
    progress: bool = True
    log: Callable[[str], None] = field(default=lambda m: print(m, file=sys.stderr))


def default_base() -> str:
    return sources.CROSSMATCH_RAW_BASE + sources.CROSSMATCH_COMMIT + "/" + sources.LA_PREFIX


def base_url(mirror: str | None) -> str:
    """The base the manifest paths hang from: the raw URL of LA/data/ at the pinned commit,
    or a mirror of that folder. A local mirror may also be a clone of the whole repository
    or the '2018LA_Seg_Training Set' folder itself; anything else is refused here, before
    108 requests fail one by one."""
    if mirror is None:
        return default_base()
    parts = urllib.parse.urlsplit(mirror)
    if parts.scheme.lower() in ("http", "https"):
        return mirror
    folder = Path(urllib.request.url2pathname(parts.path)) if parts.scheme.lower() == "file" \
        else Path(mirror)
    set_dir = sources.LA_SET_DIR.rstrip("/")
    for candidate in (folder, folder / sources.LA_PREFIX):
        if (candidate / set_dir).is_dir():
            return str(candidate)
    if folder.name == set_dir and (folder / "train.list").is_file():
        return str(folder.parent)
    raise DataDownloadError(
        f"--mirror {mirror}: no '{set_dir}' folder in it. A mirror is a copy of CrossMatch's "
        f"LA/data/ folder, i.e. it holds '{set_dir}/<ID>/{VOLUME}' and "
        f"'{set_dir}/train.list'; point --mirror at that folder (or leave --mirror out to "
        f"download from GitHub)."
    )


def local_name(path: str) -> str:
    if not path.startswith(sources.LA_SET_DIR):
        raise DataDownloadError(f"manifest entry {path} is outside {sources.LA_SET_DIR}")
    return path[len(sources.LA_SET_DIR):]


def volume_ids(entries: list[manifest.Entry]) -> list[str]:
    return sorted(local_name(e.path).split("/")[0] for e in entries
                  if e.path.endswith("/" + VOLUME))


def citation_file(summary: dict) -> str:
    return (
        "# Left Atrium (2018 Atrial Segmentation Challenge)\n\n"
        + sources.LA_CITATION.replace("\n", "\n\n")
        + f"\n\nFiles: {summary['volumes']} volumes (<ID>/{VOLUME}: image float32, label uint8) "
          f"and {len(summary['lists'])} split lists, {human_bytes(summary['bytes'])}, as published "
          f"in AiEson/CrossMatch at commit {sources.CROSSMATCH_COMMIT} under "
          f"{sources.LA_PREFIX}{sources.LA_SET_DIR}, each verified against "
          f"data_download/manifests/la_crossmatch_h5.tsv (SHA-256).\n"
    )


def run(opt: Options, entries: list[manifest.Entry] | None = None) -> dict:
    dest = Path(opt.dest)
    entries = manifest.load(manifest.LA_MANIFEST) if entries is None else entries
    opt.log(sources.LA_CITATION)
    markers = Markers(dest)
    params = {"source": "crossmatch-h5", "commit": sources.CROSSMATCH_COMMIT,
              "files": len(entries), "manifest": manifest.digest(entries)}

    def target(e: manifest.Entry) -> Path:
        return dest / local_name(e.path)

    if markers.done(STEP, params) and all(manifest.present(e, target(e)) for e in entries):
        info = markers.read(STEP)
        opt.log(f"LA already prepared in {dest} ({info.get('volumes')} volumes, "
                f"{info.get('files')} files verified); nothing to do.")
        return info
    ensure_writable(dest)
    base = base_url(opt.mirror)
    got = manifest.fetch_entries(
        entries, base, target, what="the LA volumes", desc="LA", retries=opt.retries,
        backoff=opt.backoff, threads=opt.threads, progress=opt.progress, log=opt.log)
    ids = volume_ids(entries)
    lists = {}
    for e in entries:
        name = local_name(e.path)
        if name.endswith(".list"):
            lists[name] = sum(1 for line in target(e).read_text().splitlines() if line.strip())
    summary = {"source": "crossmatch-h5", "commit": sources.CROSSMATCH_COMMIT, "from": base,
               "files": len(entries), "volumes": len(ids), "lists": lists,
               "bytes": sum(e.size for e in entries), "fetched": got["fetched"]}
    write_text_atomic(dest / "LA_CITATION.md", citation_file(summary))
    markers.mark(STEP, params, **summary)
    opt.log(f"LA ready in {dest}: {len(ids)} volumes, {len(lists)} split lists (train.list "
            f"{lists.get('train.list')}, test.list {lists.get('test.list')}); {got['fetched']} "
            f"files fetched, {got['present']} already there, all SHA-256 verified.")
    return summary
