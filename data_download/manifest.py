"""Shipped lists of published files (path, size, SHA-256) and the one fetcher for them.

The checksums pin exactly what AiEson/CrossMatch published at the pinned commit,
so a download from any mirror is verified against the original, not against
whatever the mirror happens to serve. ``fetch_entries`` is shared by every
dataset that comes as such a list (ACDC ``--source h5``, LA).

Regenerate a manifest from a checkout or bare clone: ``python -m
data_download.make_manifest --help``.
"""

from __future__ import annotations

import concurrent.futures as cf
import csv
import hashlib
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from tqdm import tqdm

from .errors import DataDownloadError
from .fsutil import check_free_space, human_bytes
from .http_fetch import fetch, join_url

MANIFESTS = Path(__file__).with_name("manifests")
MANIFEST = MANIFESTS / "acdc_crossmatch_h5.tsv"  # paths from the repository root
LA_MANIFEST = MANIFESTS / "la_crossmatch_h5.tsv"  # paths from the repository's LA/data/
HEADER = ("path", "bytes", "sha256")


class _Cancelled(Exception):
    """Raised inside a download thread once the run was interrupted."""


@dataclass(frozen=True)
class Entry:
    path: str  # path below the source's base URL (see each manifest's comment above)
    size: int
    sha256: str

    def __post_init__(self):
        # Each entry becomes a file below --dest: an absolute path or a '..' would write
        # (and fetch) outside it, whatever manifest or mirror it came from.
        parts = self.path.replace("\\", "/").split("/")
        if not self.path or self.path.startswith(("/", "\\")) or ":" in parts[0] or ".." in parts:
            raise DataDownloadError(f"manifest entry {self.path!r} is an absolute path or climbs out with '..'; "
                                    "refused, since every file must land below --dest. Use a shipped manifest "
                                    "or fix the entry.")


def load(path: Path = MANIFEST) -> list[Entry]:
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.DictReader(f, delimiter="\t")
        return [Entry(r["path"], int(r["bytes"]), r["sha256"].lower()) for r in rows]


def dump(entries: Iterable[Entry], out) -> None:
    out.write("\t".join(HEADER) + "\n")
    for e in entries:
        out.write(f"{e.path}\t{e.size}\t{e.sha256}\n")


def digest(entries: Iterable[Entry]) -> str:
    """A short fingerprint of a file list, recorded in completion markers."""
    h = hashlib.sha256()
    for e in entries:
        h.update(f"{e.path}\t{e.size}\t{e.sha256}\n".encode())
    return h.hexdigest()[:16]


def present(entry: Entry, target: Path) -> bool:
    # Files are renamed into place only after their SHA-256 matched, so an
    # existing file of the right size is a finished one.
    try:
        return target.stat().st_size == entry.size
    except OSError:
        return False


def fetch_entries(
    entries: list[Entry],
    base: str,
    target: Callable[[Entry], Path],
    *,
    what: str,
    desc: str | None = None,
    retries: int = 5,
    backoff: float = 1.0,
    threads: int = 8,
    progress: bool = True,
    register_hint: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Fetch every entry from ``base`` (http(s) URL, file:// URL or folder) to ``target(entry)``.

    Files already in place are skipped; each other one goes through
    ``http_fetch.fetch``: ``NAME.part`` resumed with HTTP Range, retried with
    back-off, size- and SHA-256-checked, then renamed to ``NAME`` (atomic), so a
    killed run loses nothing verified. ``what`` names the files in messages,
    ``desc`` labels the progress bar. Failures are collected and reported
    together after the others finished. Returns counts and bytes.
    """
    log = log or (lambda m: print(m, file=sys.stderr))
    todo = [e for e in entries if not present(e, target(e))]
    need = sum(e.size for e in todo)
    result = {"files": len(entries), "present": len(entries) - len(todo), "fetched": 0,
              "bytes": need}
    if not todo:
        return result
    check_free_space(target(todo[0]).parent, need, what)
    log(f"{len(entries) - len(todo)} of {len(entries)} files present; fetching {len(todo)} "
        f"({human_bytes(need)}) from {base}")
    failures = []
    stop = threading.Event()

    def on_chunk(_: int) -> None:
        # Lets Ctrl-C stop the downloads in flight after their current chunk (the .part
        # stays for the next run) instead of waiting for every queued file.
        if stop.is_set():
            raise _Cancelled

    def one(e: Entry) -> None:
        fetch(join_url(base, e.path), target(e), expected_size=e.size, sha256=e.sha256,
              retries=retries, backoff=backoff, register_hint=register_hint,
              progress=False, on_chunk=on_chunk, log=log)

    pool = cf.ThreadPoolExecutor(max(1, threads))
    try:
        with tqdm(total=need, unit="B", unit_scale=True, unit_divisor=1024, desc=desc or what,
                  disable=not progress) as bar:
            futures = {pool.submit(one, e): e for e in todo}
            for fut in cf.as_completed(futures):
                e = futures[fut]
                try:
                    fut.result()
                except DataDownloadError as err:
                    failures.append(str(err))
                else:
                    result["fetched"] += 1
                bar.update(e.size)
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown()
    if failures:
        shown = "\n  ".join(failures[:5])
        more = f"\n  ... and {len(failures) - 5} more" if len(failures) > 5 else ""
        raise DataDownloadError(
            f"{len(failures)} of {len(todo)} files of {what} failed; the "
            f"{len(entries) - len(failures)} verified files are kept and a re-run fetches only "
            f"the rest (partial downloads resume):\n  {shown}{more}\nIf the same files fail "
            f"again with a size or SHA-256 mismatch, the source serves other files than the "
            f"published ones: check --mirror (or use the default public source)."
        )
    return result
